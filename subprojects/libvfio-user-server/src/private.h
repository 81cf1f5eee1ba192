/*
 * libvfio-user-server internals shared between the source files.
 *
 * Ownership of VusCtx fields, by group:
 *   setup:      written before vus_ctx_realize(), read-only afterwards.
 *   service:    touched only by the service thread (message handling).
 *   cfg_lock:   PCI config space (the service thread writes, any thread
 *               reads through vus_pci_config_read()).
 *   irq_lock:   IRQ eventfds and mask/pending bits.
 *   dma_lock:   the DMA mapping table and the dirty log (rwlock: the
 *               service thread takes it for writing on map/unmap/log
 *               changes, device threads for reading on translate/copy;
 *               dirty bits are set with atomics under the read lock).
 *   s2c_lock:   one server-to-client request (DMA_READ/WRITE) at a time.
 *   atomics:    mig_state, client_connected.
 */
#ifndef VUS_PRIVATE_H
#define VUS_PRIVATE_H

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>

#include "vfio-user/protocol.h"
#include "vfio-user-server/libvus.h"

#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif

#define VUS_PAGE_SIZE        4096u
#define VUS_SERVER_MAX_FDS   8u
#define VUS_MAX_LOG_RANGES   1024u
/*
 * Clients that connected while another is served: their first request
 * is refused with EBUSY, unless the served client leaves before it comes
 * (then the oldest is served next).  More are closed at once.
 */
#define VUS_MAX_WAITING      4
/* Slack on top of max_data_xfer_size for the fixed part of a message. */
#define VUS_MSG_OVERHEAD     4096u
/* How long a device thread waits for the client's DMA_READ/WRITE reply. */
#define VUS_S2C_TIMEOUT_MS   10000
/*
 * Socket buffers asked for on a client connection (the kernel caps them
 * at net.core.wmem_max / rmem_max).  The default (about 200 KiB) is
 * smaller than one MIG_DATA_READ reply, so each reply took several
 * send / poll rounds; 4 MiB holds the replies a pipelining client keeps
 * in flight.
 */
#define VUS_SOCKET_BUF_SIZE  (4 << 20)

/* next_state[from][to] for one device's flags; -1 where refused. */
typedef int8_t VusMigTable[VFIO_DEVICE_STATE_NR][VFIO_DEVICE_STATE_NR];

typedef struct VusRegion {
    bool present;
    uint64_t size;
    uint32_t flags;
    VusRegionAccessFn access;
    int mmap_fd;
    uint64_t mmap_fd_offset;
    VusMmapArea *areas;
    uint32_t nr_areas;
} VusRegion;

typedef struct VusIrqVector {
    int fd;             /* -1: not attached */
    bool masked;
    bool pending;
} VusIrqVector;

typedef struct VusIrqIndex {
    uint32_t count;
    VusIrqVector *vec;
} VusIrqIndex;

typedef struct VusDmaMapping {
    VusDmaRegion r;             /* what the device sees */
    void *mmap_base;            /* NULL if mapped without an fd */
    size_t mmap_len;
    unsigned long *dirty;       /* log bitmap or NULL, see dma.c */
    uint64_t dirty_first;       /* iova / log_pgsize of bit 0 */
    uint64_t dirty_nbits;
    bool dying;                 /* unmap in progress: no new translations */
    bool notified;              /* the device's unmap callback ran */
} VusDmaMapping;

/* One message as received, owning its payload and fds. */
typedef struct VusMsg {
    struct vfio_user_header hdr;
    uint8_t *payload;
    size_t len;                 /* payload bytes (msg_size - header) */
    int fds[VFIO_USER_MAX_MAX_FDS];
    size_t nfds;
} VusMsg;

/* A server-to-client request waiting for its reply (s2c_lock held). */
typedef struct VusS2cWait {
    uint16_t msg_id;
    bool done;
    int result;                 /* 0 or -errno */
    VusMsg reply;
} VusS2cWait;

typedef struct VusConn {
    VusCtx *ctx;
    int fd;
    int twin_fd;                /* -1 unless twin_socket was negotiated */
    bool versioned;             /* VERSION done */
    bool discard_replies;       /* fuzzing: decode only, send nothing */
    int msg_timeout_ms;         /* the context's limit */
    uint32_t client_max_fds;    /* fds we may send in one message */
    uint32_t max_xfer;          /* negotiated max_data_xfer_size */
    bool write_multiple;
    pthread_mutex_t send_lock;  /* replies vs device-thread requests */
    uint8_t *xfer_buf;          /* the context's, see VusCtx */
} VusConn;

struct VusCtx {
    /* setup */
    char *name;
    void *opaque;
    VusLogFn log_fn;
    VusLogLevel log_level;
    uint32_t max_xfer;
    uint32_t region_states;     /* 1 << state: region access allowed */
    VusClientLimits limits;     /* every field set (defaults filled in) */
    VusClientFn client_fn;
    bool is_pci;
    VusPciIds ids;
    VusConfigWriteFn config_write_fn;
    VusRegion regions[VUS_MAX_REGIONS];
    uint32_t nr_regions;
    VusIrqIndex irqs[VFIO_PCI_NUM_IRQS];
    VusIrqStateFn irq_state_fn;
    VusDmaMapFn dma_map_fn;
    VusDmaUnmapFn dma_unmap_fn;
    VusDmaLogFn dma_log_fn;
    VusResetFn reset_fn;
    bool migratable;
    VusMigrationOps mig;
    VusMigTable mig_next;       /* next_state[from][to], -1: refused */
    bool setup_finished;
    bool realized;
    char *socket_path;
    int listen_fd;
    int stop_fd;                /* eventfd: vus_ctx_stop() */
    pthread_t thread;
    bool thread_started;

    /* cfg_lock */
    pthread_mutex_t cfg_lock;
    uint8_t *cfg;               /* config space, ids.config_size bytes */
    uint8_t *cfg_wmask;
    uint32_t cfg_next_cap;      /* where the next capability goes */
    uint8_t cfg_last_cap;       /* offset of the last one, 0: none */

    /* irq_lock */
    pthread_mutex_t irq_lock;

    /* dma_lock */
    pthread_rwlock_t dma_lock;
    VusDmaMapping *dma;         /* sorted by iova, no overlaps */
    uint32_t nr_dma;
    uint64_t dma_total;         /* bytes mapped, <= limits.max_dma_bytes */
    bool log_active;
    uint64_t log_pgsize;
    struct vfio_device_feature_dma_logging_range *log_ranges;
    uint32_t nr_log_ranges;     /* 0: everything mapped is logged */

    /* s2c_lock */
    pthread_mutex_t s2c_lock;
    pthread_cond_t s2c_cond;    /* with s2c_wait_lock */
    pthread_mutex_t s2c_wait_lock;
    VusS2cWait *s2c_wait;       /* set while a device thread waits */
    uint16_t s2c_next_id;
    _Atomic uint32_t s2c_requests;  /* callers in vus_s2c_request() */

    /* service */
    uint8_t *xfer_buf;          /* max_xfer bytes, for the one client */
    VusConn *conn;
    pthread_t service_thread;
    _Atomic bool in_service;
    uint64_t client_log_pgsize; /* migration.pgsize from the client */
    struct {
        int fd;                 /* -1: free slot */
        int64_t since_ms;       /* accepted at; the oldest is served first */
    } waiting[VUS_MAX_WAITING];

    /* atomics */
    _Atomic uint32_t mig_state;
    _Atomic bool client_connected;
    _Atomic uint32_t conn_max_xfer;  /* negotiated, for DMA_READ/WRITE */
    _Atomic bool stopping;      /* vus_ctx_stop() was called */
};

/* ctx.c */
void vus_logv(VusCtx *ctx, VusLogLevel level, const char *fmt, va_list ap);
#define vus_err(ctx, ...)   vus_log(ctx, VUS_LOG_ERROR, __VA_ARGS__)
#define vus_warn(ctx, ...)  vus_log(ctx, VUS_LOG_WARN, __VA_ARGS__)
#define vus_info(ctx, ...)  vus_log(ctx, VUS_LOG_INFO, __VA_ARGS__)
#define vus_debug(ctx, ...) vus_log(ctx, VUS_LOG_DEBUG, __VA_ARGS__)
bool vus_on_service_thread(VusCtx *ctx);
int64_t vus_now_ms(void);
/*
 * Waits until @fd is ready for @events, a stop is requested (-ECANCELED)
 * or @deadline_ms (vus_now_ms() time, -1: none) passes (-ETIMEDOUT).  On
 * the service thread, waiting on the client's socket, it also refuses
 * clients that connect meanwhile.
 */
int vus_wait_fd(VusCtx *ctx, int fd, short events, int64_t deadline_ms);
/* The part of realize that needs no socket (the fuzzer uses it). */
int vus_ctx_finish_setup(VusCtx *ctx);

/* transport.c */
void vus_msg_init(VusMsg *msg);
void vus_msg_release(VusMsg *msg);
int vus_recv_msg(VusCtx *ctx, int fd, VusMsg *msg, uint32_t max_payload);
int vus_send_msg(VusConn *conn, int fd, const struct vfio_user_header *hdr,
                 const void *p1, size_t len1, const void *p2, size_t len2,
                 const int *fds, size_t nfds);
int vus_reply(VusCtx *ctx, VusConn *conn, const VusMsg *req,
              const void *p1, size_t len1, const void *p2, size_t len2,
              const int *fds, size_t nfds);
int vus_reply_error(VusCtx *ctx, VusConn *conn, const VusMsg *req, int err);
int vus_s2c_request(VusCtx *ctx, uint16_t cmd, const void *p1, size_t len1,
                    const void *p2, size_t len2, VusMsg *reply);
bool vus_s2c_deliver(VusCtx *ctx, VusMsg *msg);
void vus_s2c_abort(VusCtx *ctx);

/* dispatch.c */
int vus_dispatch(VusCtx *ctx, VusConn *conn, VusMsg *msg);
VusConn *vus_conn_new(VusCtx *ctx, int fd);
void vus_conn_close(VusCtx *ctx, VusConn *conn);

/* version.c */
int vus_handle_version(VusCtx *ctx, VusConn *conn, VusMsg *msg);

/* pci.c */
int vus_pci_finish(VusCtx *ctx);
ssize_t vus_pci_config_access(VusCtx *ctx, uint64_t offset, void *buf,
                              size_t count, bool is_write);

/* device.c */
int vus_handle_device_info(VusCtx *ctx, VusConn *conn, VusMsg *msg);
int vus_handle_region_info(VusCtx *ctx, VusConn *conn, VusMsg *msg);
int vus_handle_region_io_fds(VusCtx *ctx, VusConn *conn, VusMsg *msg);
int vus_handle_region_rw(VusCtx *ctx, VusConn *conn, VusMsg *msg);
int vus_handle_write_multi(VusCtx *ctx, VusConn *conn, VusMsg *msg);
int vus_handle_reset(VusCtx *ctx, VusConn *conn, VusMsg *msg);

/* irq.c */
int vus_handle_irq_info(VusCtx *ctx, VusConn *conn, VusMsg *msg);
int vus_handle_set_irqs(VusCtx *ctx, VusConn *conn, VusMsg *msg);
void vus_irq_detach_all(VusCtx *ctx);

/* dma.c */
int vus_handle_dma_map(VusCtx *ctx, VusConn *conn, VusMsg *msg);
int vus_handle_dma_unmap(VusCtx *ctx, VusConn *conn, VusMsg *msg);
void vus_dma_unmap_all(VusCtx *ctx);
int vus_dma_log_start(VusCtx *ctx, VusConn *conn, VusMsg *msg,
                      const uint8_t *data, size_t len);
int vus_dma_log_stop(VusCtx *ctx);
int vus_dma_log_report(VusCtx *ctx, VusConn *conn, VusMsg *msg,
                       const uint8_t *data, size_t len);

/* migration.c */
int vus_handle_device_feature(VusCtx *ctx, VusConn *conn, VusMsg *msg);
int vus_handle_mig_data_read(VusCtx *ctx, VusConn *conn, VusMsg *msg);
int vus_handle_mig_data_write(VusCtx *ctx, VusConn *conn, VusMsg *msg);
int vus_handle_precopy_info(VusCtx *ctx, VusConn *conn, VusMsg *msg);

void vus_mig_fill_table(uint64_t mig_flags, VusMigTable table);

/* json.c: just enough JSON for the VERSION capabilities. */
typedef enum VusJsonType {
    VUS_JSON_NULL,
    VUS_JSON_BOOL,
    VUS_JSON_NUMBER,
    VUS_JSON_STRING,
    VUS_JSON_ARRAY,
    VUS_JSON_OBJECT,
} VusJsonType;

typedef struct VusJson VusJson;
struct VusJson {
    VusJsonType type;
    char *key;                  /* member name inside an object */
    bool boolean;
    double number;
    char *string;
    VusJson *child;             /* first element / member */
    VusJson *next;              /* next sibling */
};

VusJson *vus_json_parse(const char *text, size_t len, const char **err);
void vus_json_free(VusJson *json);
const VusJson *vus_json_get(const VusJson *object, const char *key);
bool vus_json_get_u64(const VusJson *value, uint64_t *out);

#endif
