/*
 * Multifd internals: wire layouts, the per-kind and per-method ops
 * tables, and the channel structures shared by the files of this folder.
 * See docs/devel/multifd.rst for the format in prose.
 */
#ifndef MIGRATION_MULTIFD_INTERNAL_H
#define MIGRATION_MULTIFD_INTERNAL_H

#include <sys/uio.h>
#include "migration/multifd.h"

/* ---- Wire ---- */

#define MULTIFD_HELLO_MAGIC 0x4d464448u     /* "MFDH" */
#define MULTIFD_HELLO_VERSION 1
#define MULTIFD_PACKET_MAGIC 0x4d464450u    /* "MFDP" */
#define MULTIFD_PACKET_VERSION 1

/*
 * Hello, the first bytes of every channel:
 *   be32 magic, be32 version, u8 uuid[16], be32 channel_id,
 *   be32 channel_count, be32 compression, be32 page_size
 */
#define MULTIFD_HELLO_LEN 40

typedef struct MultiFDHello {
    uint32_t magic;
    uint32_t version;
    uint8_t uuid[16];
    uint32_t channel_id;
    uint32_t channel_count;
    uint32_t compression;
    uint32_t page_size;
} MultiFDHello;

/*
 * Packet header:
 *   be32 magic, be32 version, be32 flags, be32 kind, be32 payload_size,
 *   be32 reserved (0), be64 packet_num (strictly increasing per channel)
 */
#define MULTIFD_PACKET_HDR_LEN 32
#define MULTIFD_FLAG_SYNC 1u
#define MULTIFD_FLAGS_KNOWN MULTIFD_FLAG_SYNC

typedef enum MultiFDPayloadKind {
    MULTIFD_PAYLOAD_NONE = 0,       /* no payload: a SYNC on its own */
    MULTIFD_PAYLOAD_RAM = 1,
    MULTIFD_PAYLOAD_DEVICE_STATE = 2,
    MULTIFD_PAYLOAD__MAX,
} MultiFDPayloadKind;

typedef struct MultiFDPacketHeader {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t kind;
    uint32_t payload_size;
    uint32_t reserved;
    uint64_t packet_num;
} MultiFDPacketHeader;

/*
 * RAM payload:
 *   be32 normal_pages, be32 zero_pages (1 to MULTIFD_PAGES_PER_PACKET
 *   together), be32 data_size, be32 ram_flags, u8 idstr_len (1..63),
 *   idstr (no NUL), be64 offset[normal_pages + zero_pages] (page
 *   aligned, inside the block; the normal pages' first),
 *   data: the normal pages raw, or data_size compressed bytes when
 *   ram_flags has COMPRESSED (then 0 < data_size < their size: a batch
 *   that does not shrink goes raw).  Zero pages carry no data.
 */
#define MULTIFD_RAM_FIXED_LEN 17
#define MULTIFD_RAM_COMPRESSED 1u
#define MULTIFD_RAM_IDSTR_MAX 63
#define MULTIFD_RAM_META_MAX (MULTIFD_RAM_FIXED_LEN + MULTIFD_RAM_IDSTR_MAX + \
                              8 * MULTIFD_PAGES_PER_PACKET)
#define MULTIFD_RAM_DATA_MAX (MULTIFD_PAGES_PER_PACKET * TARGET_PAGE_SIZE)

/*
 * Device state payload:
 *   be32 instance_id, u8 idstr_len (1..255), idstr (no NUL),
 *   the device packet (MULTIFD_DEVICE_STATE_HDR_LEN..
 *   MULTIFD_DEVICE_STATE_MAX_PACKET bytes), opaque to this layer.
 */
#define MULTIFD_DEVICE_FIXED_LEN 5
#define MULTIFD_DEVICE_META_MAX (MULTIFD_DEVICE_FIXED_LEN + \
                                 MULTIFD_DEVICE_IDSTR_MAX)

static inline void multifd_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

static inline void multifd_put_be64(uint8_t *p, uint64_t v)
{
    multifd_put_be32(p, v >> 32);
    multifd_put_be32(p + 4, (uint32_t)v);
}

static inline uint32_t multifd_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t multifd_get_be64(const uint8_t *p)
{
    return (uint64_t)multifd_get_be32(p) << 32 | multifd_get_be32(p + 4);
}

void multifd_hello_encode(const MultiFDHello *h,
                          uint8_t buf[MULTIFD_HELLO_LEN]);
void multifd_hello_decode(const uint8_t buf[MULTIFD_HELLO_LEN],
                          MultiFDHello *h);
void multifd_packet_header_encode(const MultiFDPacketHeader *h,
                                  uint8_t buf[MULTIFD_PACKET_HDR_LEN]);
void multifd_packet_header_decode(const uint8_t buf[MULTIFD_PACKET_HDR_LEN],
                                  MultiFDPacketHeader *h);
/*
 * Check a received header: magic, version, flags, kind, reserved, the
 * kind's payload limit, and that packet_num is above @last_packet_num
 * (unless @first).  The message names what is wrong.
 */
bool multifd_packet_header_check(const MultiFDPacketHeader *h,
                                 bool first, uint64_t last_packet_num,
                                 Error **errp);
/* Largest payload of each kind (0 for NONE). */
uint32_t multifd_payload_max(MultiFDPayloadKind kind);

/*
 * Read exactly the bytes @iov describes (modified as it goes), straight
 * into the buffers.  Returns 1 when done, 0 at a clean end of stream
 * before the first byte (only with @eof_ok), -1 with errp set (error,
 * truncation, cancel).
 */
int multifd_readv_full(MigChannel *ch, struct iovec *iov, int iovcnt,
                       bool eof_ok, Error **errp);
bool multifd_read_full(MigChannel *ch, void *buf, size_t len, Error **errp);

/* ---- Compression methods ---- */

typedef struct MultiFDCompressOps {
    const char *name;
    /* Source, per send channel: allocate the compressor. */
    void *(*send_setup)(int level, Error **errp);
    void (*send_cleanup)(void *state);
    /*
     * Compress the @n pages at @pages into @out (@cap bytes).  Returns
     * the compressed size, 0 when it would not fit in @cap (the caller
     * then sends the pages raw), or -1 with errp set.
     */
    ssize_t (*compress)(void *state, uint8_t *const *pages, uint32_t n,
                        uint8_t *out, size_t cap, Error **errp);
    /* Destination, per receive channel. */
    void *(*recv_setup)(Error **errp);
    void (*recv_cleanup)(void *state);
    /*
     * Decompress @in into exactly the @n pages at @pages.  Fails on
     * corrupt data, on too little, and on more than @n pages of output
     * (which is never written anywhere).
     */
    bool (*decompress)(void *state, const uint8_t *in, size_t len,
                       uint8_t *const *pages, uint32_t n, Error **errp);
} MultiFDCompressOps;

extern const MultiFDCompressOps multifd_zlib_ops;
extern const MultiFDCompressOps multifd_zstd_ops;
/* NULL for MULTIFD_COMPRESSION_NONE: pages go raw and zero-copy. */
const MultiFDCompressOps *multifd_compress_ops(MultiFDCompression method);

/* ---- Source ---- */

typedef struct MultiFDPages {
    RAMBlock *block;
    uint32_t num;
    uint64_t offsets[MULTIFD_PAGES_PER_PACKET];
} MultiFDPages;

typedef struct MultiFDSendJob {
    MultiFDPayloadKind kind;    /* NONE: a SYNC alone */
    uint32_t flags;             /* MULTIFD_FLAG_* */
    MultiFDPages *pages;        /* RAM; swapped with the producer's batch */
    /*
     * DEVICE_STATE: the producer's id and data, borrowed: it waits in
     * multifd_queue_device_state() until the channel has written them.
     */
    const char *dev_idstr;
    uint32_t dev_instance_id;
    uint8_t dev_hdr[MULTIFD_DEVICE_STATE_HDR_LEN];
    const void *dev_data;
    size_t dev_len;             /* of dev_data */
} MultiFDSendJob;

typedef struct MultiFDSendState MultiFDSendState;

typedef struct MultiFDSendChannel {
    unsigned id;
    char name[24];              /* thread name, "multifdsend_N" */
    MultiFDSendState *state;
    MigChannel *ch;
    GThread *thread;
    GCond job_cond;             /* has_job or quit changed */

    /* Under state->lock. */
    bool has_job;               /* job is waiting or being written */
    bool quit;
    uint64_t syncs_sent;
    uint64_t jobs_done;         /* written or failed */
    uint64_t failed_job;        /* jobs_done of the job that failed; 0: none */

    /*
     * The job: written by producers under the lock while !has_job, read
     * by the thread without the lock while has_job.
     */
    MultiFDSendJob job;

    /* Send thread only. */
    uint8_t meta[MULTIFD_PACKET_HDR_LEN + MULTIFD_RAM_META_MAX +
                 MULTIFD_DEVICE_META_MAX];
    struct iovec iov[1 + MULTIFD_PAGES_PER_PACKET];
    int iovcnt;
    uint8_t *zbuf;              /* compressed output, MULTIFD_RAM_DATA_MAX */
    void *compress_state;
    uint64_t packet_num_last;
} MultiFDSendChannel;

/*
 * Payload kinds, source side: describe @job as c->meta (after the
 * header, returned length) and c->iov[1..] (data), setting c->iovcnt.
 * Returns the payload size, or -1 with errp set.
 */
typedef ssize_t MultiFDSendPrepare(MultiFDSendChannel *c, MultiFDSendJob *job,
                                   const MultiFDCompressOps *compress,
                                   Error **errp);

/* ---- Destination ---- */

typedef struct MultiFDRecvState MultiFDRecvState;

typedef struct MultiFDRecvChannel {
    unsigned id;
    char name[24];              /* thread name, "multifdrecv_N" */
    MultiFDRecvState *state;
    MigChannel *ch;
    GThread *thread;

    /* Under state->lock. */
    uint64_t syncs_received;
    bool finished;              /* the thread ended (EOF or error) */

    /* Receive thread only. */
    bool seen_packet;
    uint64_t last_packet_num;
    RAMBlock *last_block;       /* lookup cache */
    unsigned long *last_written_map;
    uint8_t meta[MULTIFD_RAM_META_MAX + MULTIFD_DEVICE_META_MAX];
    uint8_t *zbuf;              /* compressed input, MULTIFD_RAM_DATA_MAX */
    uint8_t *pages[MULTIFD_PAGES_PER_PACKET];
    struct iovec iov[MULTIFD_PAGES_PER_PACKET];
    void *decompress_state;
    const MultiFDCompressOps *compress;
} MultiFDRecvChannel;

/*
 * Payload kinds, destination side: read and deliver @payload_size bytes
 * that follow the header.  Any failure names the problem; the caller
 * prefixes the channel.
 */
typedef bool MultiFDRecvPayload(MultiFDRecvChannel *c, uint32_t payload_size,
                                Error **errp);

/* ---- Payload kinds ---- */

typedef struct MultiFDPayloadOps {
    const char *name;
    /* Largest payload_size a packet of this kind may announce. */
    uint32_t max_payload;
    MultiFDSendPrepare *send_prepare;
    MultiFDRecvPayload *recv;
} MultiFDPayloadOps;

extern const MultiFDPayloadOps multifd_ram_ops;
extern const MultiFDPayloadOps multifd_device_state_ops;
/* The table of @kind, NULL for MULTIFD_PAYLOAD_NONE (and unknown kinds). */
const MultiFDPayloadOps *multifd_payload_ops(uint32_t kind);

/*
 * mapped-ram: write the batch of @job into its slots of the file through
 * the channel's fd (zero pages only clear their bits) and count them.
 * Returns the bytes written, or -1 with errp set.
 */
ssize_t multifd_ram_save_mapped(MultiFDSendChannel *c, MultiFDSendJob *job,
                                Error **errp);
/* Reset the source's page counters (at setup). */
void multifd_ram_counters_reset(void);
/*
 * Destination: the bitmap of @rb's pages that multifd wrote data into
 * (a zero page only needs writing over one of those), or NULL when @rb
 * is not known to the receive state.
 */
unsigned long *multifd_recv_written_map(MultiFDRecvState *s, RAMBlock *rb);

/* Destination setup: hold device state until the loader opens the gate. */
void multifd_device_state_gate_arm(void);

/* Wait on @cond for at most 100 ms (waits are sliced to notice cancel). */
void multifd_cond_wait_slice(GCond *cond, GMutex *lock);

#endif
