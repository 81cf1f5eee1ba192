/*
 * vfio-user client transport: one connection to a device server.
 *
 * A VFIOUserProxy owns a connected UNIX socket and a receive thread.  Any
 * number of threads may send requests at the same time; each request
 * carries a fresh msg_id and its caller sleeps until the reply with that
 * msg_id arrives, the connection dies, or the request's time runs out.
 * The receive thread also serves the server's own requests (DMA_READ and
 * DMA_WRITE into memory the client did not map with an fd) through
 * callbacks given at connect time.
 *
 * Locking: all functions are thread-safe.  Callbacks run on the receive
 * thread and must not issue requests on the same proxy (the reply they
 * would wait for could only be read by the thread they are blocking).
 */
#ifndef HW_VFIO_USER_PROXY_H
#define HW_VFIO_USER_PROXY_H

#include "qemu/osdep.h"
#include "qemu/error.h"

#include <sys/uio.h>

#include "vfio-user/protocol.h"

typedef struct VFIOUserProxy VFIOUserProxy;

/*
 * What the connection can do, after VERSION negotiation: the server's
 * capabilities, with the defaults of the protocol for anything it left
 * out and the extensions counted only when both sides offered them.
 */
typedef struct VFIOUserPeerCaps {
    uint16_t major;
    uint16_t minor;                 /* lowest common minor version */
    uint32_t max_msg_fds;           /* fds we may pass in one message */
    uint64_t max_data_xfer_size;    /* data bytes in one message to it */
    uint64_t pgsizes;
    uint32_t max_dma_maps;
    bool migration;                 /* it sent a "migration" object */
    uint64_t migration_pgsize;
    bool write_multiple;            /* REGION_WRITE_MULTI accepted */
    bool precopy_info;              /* extension: precopy-info query */
    bool mig_data_size;             /* extension: MIG_DATA_SIZE feature */
    char *json;                     /* the server's capabilities, verbatim */
} VFIOUserPeerCaps;

/*
 * Server-to-client DMA.  Called on the receive thread with a range the
 * server asked for; @len is at most the max_data_xfer_size we offered.
 * Return 0 or a positive errno, which the server receives as the error.
 */
typedef int VFIOUserDMAReadFn(void *opaque, uint64_t iova, void *buf,
                              uint64_t len);
typedef int VFIOUserDMAWriteFn(void *opaque, uint64_t iova, const void *buf,
                               uint64_t len);

typedef struct VFIOUserConnectOptions {
    /* Longest wait for one reply, in ms; 0 means VFIO_USER_DEF_TIMEOUT_MS. */
    unsigned timeout_ms;
    /* Offer none of vmig's extensions (to test peers without them). */
    bool no_extensions;
    /* Largest DMA_READ/DMA_WRITE we accept; 0 means the protocol default. */
    uint64_t max_data_xfer_size;
    /* Server-to-client DMA handlers; NULL refuses with EFAULT. */
    VFIOUserDMAReadFn *dma_read;
    VFIOUserDMAWriteFn *dma_write;
    void *dma_opaque;
    /*
     * Called once, on the receive thread, when a connection that
     * vfio_user_connect() returned ends for any reason other than
     * vfio_user_disconnect(): the server went away or broke the
     * protocol.  @reason says which.  Must not block.
     */
    void (*closed)(void *opaque, const char *reason);
    void *closed_opaque;
} VFIOUserConnectOptions;

#define VFIO_USER_DEF_TIMEOUT_MS 30000
/*
 * The socket buffers asked for on a connection (the kernel caps them at
 * net.core.wmem_max / rmem_max): room for several pipelined
 * MIG_DATA_READ replies, so the server sends each in one call.
 */
#define VFIO_USER_SOCKET_BUF_SIZE (4 * MiB)
/* The client's own limits, offered in VERSION. */
#define VFIO_USER_CLIENT_MAX_FDS 8
#define VFIO_USER_CLIENT_MIGR_PGSIZE 4096

/*
 * Connect to the server listening on @path, start the receive thread and
 * negotiate the version.  @opts may be NULL for defaults.
 */
VFIOUserProxy *vfio_user_connect(const char *path,
                                 const VFIOUserConnectOptions *opts,
                                 Error **errp);

/*
 * Close the connection: waiters fail, the receive thread is joined and
 * the proxy freed.  No other thread may use @proxy once this is called.
 */
void vfio_user_disconnect(VFIOUserProxy *proxy);

/* The socket path, for messages. */
const char *vfio_user_proxy_name(const VFIOUserProxy *proxy);
const VFIOUserPeerCaps *vfio_user_peer_caps(const VFIOUserProxy *proxy);
/* False once the server has gone away or the stream broke. */
bool vfio_user_proxy_alive(VFIOUserProxy *proxy);

/*
 * One request and its reply.  The reply payload (after the header) is
 * scattered into @reply_fixed then @reply_data; anything longer than both
 * is read and dropped (some servers pad), and @reply_len says how long it
 * really was.  fds that come with the reply are stored in @reply_fds (up
 * to @reply_max_fds; extras are closed) and the caller owns them.
 */
typedef struct VFIOUserRequest {
    uint16_t cmd;
    const struct iovec *iov;        /* payload to send */
    int iov_cnt;
    const int *fds;                 /* fds to pass with it */
    int nr_fds;

    void *reply_fixed;
    size_t reply_fixed_size;
    void *reply_data;
    size_t reply_data_size;
    int *reply_fds;
    int reply_max_fds;

    /* Out: */
    size_t reply_len;               /* payload bytes the server sent */
    int reply_nr_fds;
    uint32_t error_no;              /* set when the server refused */
} VFIOUserRequest;

/*
 * Send @req and wait for its reply.  Fails when the server replies with an
 * error (req->error_no says which), when the connection dies or when the
 * reply does not come within the timeout.
 */
bool vfio_user_request(VFIOUserProxy *proxy, VFIOUserRequest *req,
                       Error **errp);

/*
 * The same in two steps, so that one thread can keep several requests in
 * flight (replies still come in order of the server's processing): send
 * returns a handle (NULL and @errp set if nothing was sent); every handle
 * must be passed to vfio_user_request_wait() exactly once, which frees
 * it.  @req and its reply buffers must live until then.
 */
typedef struct VFIOUserPending VFIOUserPending;
VFIOUserPending *vfio_user_request_send(VFIOUserProxy *proxy,
                                        VFIOUserRequest *req, Error **errp);
bool vfio_user_request_wait(VFIOUserProxy *proxy, VFIOUserPending *pending,
                            Error **errp);

/* The command's name for messages ("REGION_READ"), or "command N". */
const char *vfio_user_cmd_name(uint16_t cmd);

/* Internal to hw/vfio-user: capabilities JSON (version.c). */
char *vfio_user_caps_build(const VFIOUserConnectOptions *opts);
bool vfio_user_caps_parse(const char *json, bool offered_extensions,
                          VFIOUserPeerCaps *caps, Error **errp);

#endif
