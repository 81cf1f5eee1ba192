/*
 * Multifd: guest RAM pages and device state over N extra connections,
 * each with a sending thread on the source and a receiving thread on the
 * destination, alongside the main migration stream.
 *
 * The layer is self-contained: the migration core passes in what it
 * needs (address, UUID, parameters, a MigCancel) and calls the functions
 * below from the places documented with each.  The wire format and the
 * threads are described in docs/devel/multifd.rst.
 *
 * Iteration boundaries.  RAM pages of one dirty-sync round may travel on
 * any channel, so a page sent again in the next round could overtake its
 * older copy.  The source therefore calls multifd_send_sync() at the end
 * of each round (a SYNC packet on every channel) and then puts a "multifd
 * flush" marker into the main stream; the destination calls
 * multifd_recv_sync_main() when it reads that marker, which returns once
 * every channel has received its SYNC packet, and only then lets the
 * channels go on with the next round.
 *
 * Errors carry the channel number ("multifd channel 2: ...").  The first
 * error on either side is kept: later calls fail with a copy of it, and
 * the error_notify callback of MultiFDParams (if any) is called once,
 * from the thread that hit it, so the core can fail the migration.
 */
#ifndef MIGRATION_MULTIFD_H
#define MIGRATION_MULTIFD_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "migration/channel.h"
#include "migration/misc.h"
#include "system/ramblock.h"

#define MULTIFD_MAX_CHANNELS 255

/*
 * Bytes send channel @i has written in the last multifd migration (also
 * after it ended); false when it had fewer channels.
 */
bool multifd_send_channel_bytes(unsigned i, uint64_t *bytes);
/* Pages in one RAM packet (512 KiB of data). */
#define MULTIFD_PAGES_PER_PACKET 128
/* Largest device state packet (header and data) multifd carries. */
#define MULTIFD_DEVICE_STATE_MAX_PACKET (16 * MiB)
/* Device state idstr: 1 to 255 bytes. */
#define MULTIFD_DEVICE_IDSTR_MAX 255

typedef enum MultiFDCompression {
    MULTIFD_COMPRESSION_NONE,
    MULTIFD_COMPRESSION_ZLIB,
    MULTIFD_COMPRESSION_ZSTD,
    MULTIFD_COMPRESSION__MAX,
} MultiFDCompression;

/* "none", "zlib", "zstd" (the multifd-compression parameter's values). */
const char *multifd_compression_name(MultiFDCompression method);
bool multifd_compression_parse(const char *name, MultiFDCompression *method,
                               Error **errp);

/*
 * Called once with the first error, from the channel thread that hit
 * it.  It may cancel the migration, but must not call
 * multifd_*_shutdown(), which joins that very thread.
 */
typedef void MultiFDErrorNotify(void *opaque, const Error *err);

typedef struct MultiFDParams {
    unsigned channels;              /* 1..MULTIFD_MAX_CHANNELS (default 2) */
    MultiFDCompression compression; /* must match on both sides */
    int zlib_level;                 /* 0..9 (default 1), source only */
    int zstd_level;                 /* 1..20 (default 1), source only */
    /*
     * Source: the channels are fds on the file: of the migration, RAM
     * pages go to their mapped-ram slots (no hello, no packets, and a
     * sync only waits for every write); device state is refused.
     */
    bool mapped_ram;
    MultiFDErrorNotify *error_notify;   /* or NULL */
    void *error_opaque;
} MultiFDParams;

/* The defaults of the migration parameters (2 channels, none, 1, 1). */
void multifd_params_init(MultiFDParams *params);
bool multifd_params_check(const MultiFDParams *params, Error **errp);

/* ---- Source ---- */

/*
 * Connect params->channels connections to @dest (tcp or unix), send each
 * its hello and start the "multifdsend_N" threads.  @uuid identifies the
 * migration to the destination; @cancel (not owned, must outlive the
 * layer) aborts blocked connects and sends.  Migration thread, before the
 * first page is queued.  On failure nothing is left running.
 */
bool multifd_send_setup(const MigrationAddress *dest, const uint8_t uuid[16],
                        const MultiFDParams *params, MigCancel *cancel,
                        Error **errp);

/*
 * Queue one dirty page (@offset page aligned, inside @rb) for sending,
 * zero or not: the send threads find zero pages (in parallel) and send
 * them as bare offsets, which the destination writes only over a page
 * multifd had filled before, so fresh destination memory is never
 * touched for them.  Pages are batched per block; a full batch goes to
 * the next idle channel (this waits while all are busy).  The page is
 * sent by reference: it must stay mapped until the next
 * multifd_send_sync(); a change meanwhile is fine as long as the dirty
 * log records it.  Only the sender reads rb->idstr, rb->host and
 * rb->size.  Migration thread only.
 */
bool multifd_queue_ram_page(RAMBlock *rb, uint64_t offset, Error **errp);

/*
 * End of a round: send the pending batch, then a SYNC packet on every
 * channel, and wait until all of them are written.  After it returns the
 * core writes its "multifd flush" marker into the main stream.
 * Migration thread only.
 */
bool multifd_send_sync(Error **errp);

/*
 * Send one device state packet {be32 version 0, be32 @idx, be32 @flags}
 * + @data to the consumer registered for (@idstr, @instance_id) on the
 * destination.  The channel writes @data in place: the call returns
 * once it is written (or the migration failed), and the caller may reuse
 * it then.  Thread-safe: several device save threads may call it
 * concurrently with each other and with the migration thread, each
 * keeping one channel busy.
 */
bool multifd_queue_device_state(const char *idstr, uint32_t instance_id,
                                uint32_t idx, uint32_t flags,
                                const void *data, size_t len, Error **errp);

/*
 * Stop the threads and close the channels.  Jobs still being written
 * are aborted (the connections are shut down first) unless the caller
 * synced before.  Safe when setup failed or never ran.  Migration thread
 * (or whoever called setup), after every producer has returned.
 */
void multifd_send_shutdown(void);

/*
 * For a core that polls: false with a copy of the first error (a channel
 * failed, or the migration was cancelled).  Any thread between setup
 * and shutdown.
 */
bool multifd_send_check(Error **errp);

/* Bytes written on every multifd channel (multifd-bytes).  Any thread. */
uint64_t multifd_bytes_transferred(void);
/* The part of it that carried device state, not RAM.  Any thread. */
uint64_t multifd_device_state_bytes_transferred(void);
/* The part that carried RAM (pages, syncs; not the hellos).  Any thread. */
uint64_t multifd_ram_bytes_transferred(void);
/*
 * Pages the send threads sent with data, and found zero (query-migrate's
 * "normal" and "duplicate").  Any thread; kept after shutdown.
 */
uint64_t multifd_ram_normal_pages(void);
uint64_t multifd_ram_zero_pages(void);

/* ---- Destination ---- */

/*
 * Prepare to receive.  Guest RAM must be zero where multifd has not
 * written yet (fresh memory) and its blocks must all exist: multifd
 * keeps a bitmap per block of the pages it wrote, to know which zero
 * pages need writing.  @uuid is the migration's UUID the hellos must
 * carry; NULL takes the first hello's and requires every other channel
 * to match it (the core may then compare it with multifd_recv_uuid()).
 * @cancel (not owned) aborts blocked reads and waits.  Incoming thread,
 * before the listener accepts multifd channels.
 */
bool multifd_recv_setup(const uint8_t *uuid, const MultiFDParams *params,
                        MigCancel *cancel, Error **errp);

/* Bytes of a connection's start that tell a multifd channel apart. */
#define MULTIFD_HELLO_PEEK_LEN 4
/* Whether @first_bytes start a multifd hello (not the main stream). */
bool multifd_is_channel_hello(
    const uint8_t first_bytes[MULTIFD_HELLO_PEEK_LEN]);

/*
 * Take over a new connection whose first @prefix_len bytes (0..40) were
 * already read into @prefix by the caller (for multifd_is_channel_hello),
 * read and check the rest of its hello, and start its "multifdrecv_N"
 * thread.  The channel is owned by the layer from here on, also on
 * failure.  The accepting thread (incoming thread or accept loop).
 */
bool multifd_recv_new_channel(MigChannel *ch, const uint8_t *prefix,
                              size_t prefix_len, Error **errp);

/* Whether every expected channel has connected.  Any thread. */
bool multifd_recv_all_channels_connected(void);

/* The UUID the channels carry (false before the first hello). */
bool multifd_recv_uuid(uint8_t uuid[16]);

/*
 * The main stream's "multifd flush" marker: wait until every channel
 * (connected or still to connect) has received the next SYNC packet,
 * then let them continue.  Fails on any channel error, on cancel, or
 * when a channel ends before its SYNC.  Incoming thread only.
 */
bool multifd_recv_sync_main(Error **errp);

/*
 * Stop the threads (connections are shut down to wake blocked reads),
 * close the channels and free.  Safe when setup failed or never ran.
 * Incoming thread, at the end of the load.
 */
void multifd_recv_shutdown(void);

/* As multifd_send_check(), for the receive side. */
bool multifd_recv_check(Error **errp);

/*
 * The core wrote page @offset of @rb itself (not through multifd) while
 * multifd receives: a zero page arriving for it later must be written.
 * Incoming thread; a no-op when multifd is not set up.
 */
void multifd_recv_note_page_written(RAMBlock *rb, uint64_t offset);

/* Bytes read on every multifd channel.  Any thread. */
uint64_t multifd_recv_bytes_received(void);

/* ---- Device state: consumers on the destination ---- */

/* The device state packet header (FACTS.md): all big-endian. */
#define MULTIFD_DEVICE_STATE_VERSION 0
#define MULTIFD_DEVICE_STATE_CONFIG_STATE 1u    /* flags: the last packet */
#define MULTIFD_DEVICE_STATE_HDR_LEN 12

/*
 * Called by a receive thread for each device state packet addressed to
 * the consumer: *@packet is the whole packet (header + data), @len bytes,
 * not yet checked, in a g_malloc()ed buffer.  A consumer that keeps the
 * buffer takes it by setting *@packet to NULL (and frees it later); the
 * caller frees whatever is left.  Multifd receive thread, no BQL;
 * several threads may call it at once.
 */
typedef bool MultiFDDeviceStateLoad(void *opaque, uint8_t **packet,
                                    size_t len, Error **errp);

/*
 * Register the consumer of (@idstr, @instance_id)'s packets; false if the
 * pair has one already.  Any thread.  A packet for a pair without a
 * consumer fails the receiving channel.
 */
bool multifd_device_state_consumer_add(const char *idstr,
                                       uint32_t instance_id,
                                       MultiFDDeviceStateLoad *load,
                                       void *opaque, Error **errp);
/* Any thread; waits for running calls of the consumer to return. */
void multifd_device_state_consumer_del(const char *idstr,
                                       uint32_t instance_id);
/*
 * Device state can overtake the main stream: a channel may bring a
 * device's packet before the loader has run that device's load_setup
 * (a migration that switches over at once, a slow destination).  The
 * receive side arms a gate when it is set up; receive threads hold
 * device state packets while it is armed.  The loader opens it once
 * every load_setup has run; the load's cleanup and the receive side's
 * shutdown shut it, which lets any holder go on (to find no consumer).
 */
void multifd_device_state_gate_open(void);
void multifd_device_state_gate_shut(void);

/*
 * A reassembly queue for one device: packets arrive out of order across
 * channels; a load thread takes them in idx order.  The last packet has
 * the CONFIG_STATE flag.  Checks: header length, version, idx UINT32_MAX,
 * duplicate idx (also one already taken), one CONFIG_STATE packet and no
 * idx after it, and a cap on the bytes queued but not yet taken.
 */
typedef struct MultiFDStateQueue MultiFDStateQueue;

typedef struct MultiFDStatePacket {
    uint32_t idx;
    uint32_t flags;
    uint8_t *data;              /* points into buf */
    size_t len;
    void *buf;                  /* the taker's: multifd_state_packet_free() */
} MultiFDStatePacket;

/* Free a taken packet's buffer (NULL-safe, idempotent). */
void multifd_state_packet_free(MultiFDStatePacket *pkt);

/* @name goes into error messages; @max_queued_bytes 0 means no cap. */
MultiFDStateQueue *multifd_state_queue_new(const char *name,
                                           uint64_t max_queued_bytes,
                                           MigCancel *cancel);
/*
 * Check and store one packet.  *@packet is a g_malloc()ed buffer that the
 * queue takes (setting *@packet to NULL) when the packet is stored, so
 * its data is never copied; after a failure it is still the caller's.
 * Receive threads; thread-safe.
 */
bool multifd_state_queue_take_buffer(MultiFDStateQueue *q, uint8_t **packet,
                                     size_t len, Error **errp);
/* The same for a packet the caller keeps: its bytes are copied. */
bool multifd_state_queue_insert(MultiFDStateQueue *q, const uint8_t *packet,
                                size_t len, Error **errp);
/*
 * Wait for the next packet in idx order and hand it over.  Fails when
 * the queue is aborted, the cancel fires, or every packet (through the
 * CONFIG_STATE one) was taken already.  One load thread.
 */
bool multifd_state_queue_take_next(MultiFDStateQueue *q,
                                   MultiFDStatePacket *pkt, Error **errp);
/*
 * The same without waiting: false when the next packet is not there yet
 * (or the queue failed or is complete: take_next says which).
 */
bool multifd_state_queue_take_ready(MultiFDStateQueue *q,
                                    MultiFDStatePacket *pkt);
/* Whether the CONFIG_STATE packet was taken (the device has it all). */
bool multifd_state_queue_complete(MultiFDStateQueue *q);
/* Wake the load thread with @err (copied); later inserts fail too. */
void multifd_state_queue_abort(MultiFDStateQueue *q, const Error *err);
void multifd_state_queue_free(MultiFDStateQueue *q);

#endif
