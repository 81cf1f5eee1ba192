/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer target for vmig's vfio-user client: the decoder of the
 * server's replies and of its requests (DMA_READ, DMA_WRITE, anything
 * else), and the checks each client call makes of the reply it gets.
 * One input is what a server sends on one connection.  The real client
 * (vfio_user_connect() on a UNIX socket, its receive thread and the
 * calls of hw/vfio-user/client.h) runs a fixed session, the one in
 * run_session(): VERSION, device, region and IRQ info, register reads,
 * a DMA map and two transfers that make the device DMA into and out of
 * client memory, then a whole device migration with DMA logging, and a
 * reset.  A thread plays the server: it sends each reply of the input
 * once the client has sent a request for it, and each request of the
 * input (server to client) as it comes.
 *
 * Byte 0 sets the client up (FUZZ_VU_* below), the rest is the server's
 * side.  Since the session is fixed, so are the message ids of its
 * requests, and a recorded server stream replays in step:
 *
 *   fuzz-vfio-user-client-replay --record SERVER_SOCKET OUTPUT \
 *       [OPTIONS [CLIENT_OUTPUT]]
 *
 * runs the same session against a real server (tests/fuzz/make-seeds.py
 * starts vfio-user-dma) through a relay that saves what the server sent,
 * as a seed; and what the client sent, as a seed of the vfio-user server
 * library's decoder target.
 */
#include "qemu/osdep.h"
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "hw/misc/vfio-user-dma-regs.h"
#include "hw/vfio/region-caps.h"
#include "hw/vfio-user/client.h"
#include "fuzz-common.h"

/* Byte 0 */
#define FUZZ_VU_NO_EXTENSIONS   0x01    /* offer none of vmig's extensions */

/* Client memory the device may DMA to and from. */
#define CLIENT_IOVA 0x100000
#define CLIENT_MEM_SIZE (64 * KiB)
#define TRANSFER_LEN (8 * KiB)
/* Bounds on the session's loops, whatever the server answers. */
#define MAX_REGIONS 10
#define MAX_IRQS 6
#define MAX_STATUS_POLLS 200
#define MAX_DATA_READS 64
#define DATA_READ_SIZE (16 * KiB)
/* A reply the client waits for longer than this is lost (ms). */
#define REPLY_TIMEOUT_MS 2000
/* The server thread waits this long for a request before it goes on. */
#define REQUEST_WAIT_MS 20

static char *socket_dir;
static char *socket_path;
static int listen_fd = -1;
static bool recording;

static uint8_t client_mem[CLIENT_MEM_SIZE];

/* ---- client memory, as the server's DMA sees it ---- */

static bool dma_range_ok(uint64_t iova, uint64_t len)
{
    return iova >= CLIENT_IOVA && len <= CLIENT_MEM_SIZE &&
           iova - CLIENT_IOVA <= CLIENT_MEM_SIZE - len;
}

static int dma_read(void *opaque, uint64_t iova, void *buf, uint64_t len)
{
    if (!dma_range_ok(iova, len)) {
        return EFAULT;
    }
    memcpy(buf, client_mem + (iova - CLIENT_IOVA), len);
    return 0;
}

static int dma_write(void *opaque, uint64_t iova, const void *buf,
                     uint64_t len)
{
    if (!dma_range_ok(iova, len)) {
        return EFAULT;
    }
    memcpy(client_mem + (iova - CLIENT_IOVA), buf, len);
    return 0;
}

/* ---- the session ---- */

/*
 * Keep the session's first error (*@err, which is cleared for the next
 * call) for the result; later ones are dropped.
 */
static void note(Error **first, Error **err)
{
    if (*err && !*first) {
        *first = *err;
    } else {
        error_free(*err);
    }
    *err = NULL;
}

static bool reg_write(VFIOUserProxy *p, uint64_t off, uint64_t val,
                      size_t len, Error **first)
{
    Error *err = NULL;
    bool ok = vfio_user_region_write(p, VDMA_REGS_BAR, off, &val, len, &err);

    note(first, &err);
    return ok;
}

/* One transfer of the device's DMA engine, then its completion polled. */
static void device_dma(VFIOUserProxy *p, uint64_t src, uint64_t dst,
                       uint32_t ctrl, Error **first)
{
    Error *err = NULL;
    uint32_t status = 0;

    if (!reg_write(p, VDMA_REG_SRC, src, 8, first) ||
        !reg_write(p, VDMA_REG_DST, dst, 8, first) ||
        !reg_write(p, VDMA_REG_LEN, TRANSFER_LEN, 8, first) ||
        !reg_write(p, VDMA_REG_CTRL, ctrl, 4, first) ||
        !reg_write(p, VDMA_REG_DOORBELL, VDMA_DOORBELL_GO, 4, first)) {
        return;
    }
    for (int i = 0; i < MAX_STATUS_POLLS; i++) {
        if (!vfio_user_region_read(p, VDMA_REGS_BAR, VDMA_REG_STATUS,
                                   &status, 4, &err)) {
            note(first, &err);
            return;
        }
        if (status & (VDMA_STATUS_DONE | VDMA_STATUS_ERROR)) {
            break;
        }
        if (recording) {
            g_usleep(1000);
        }
    }
    reg_write(p, VDMA_REG_STATUS, status, 4, first);
}

static void info_calls(VFIOUserProxy *p, Error **first)
{
    struct vfio_user_device_info info = { 0 };
    Error *err = NULL;
    uint64_t val = 0;

    if (!vfio_user_get_device_info(p, &info, &err)) {
        note(first, &err);
        return;
    }
    for (uint32_t i = 0; i < MIN(info.num_regions, MAX_REGIONS); i++) {
        struct vfio_region_sparse_mmap_area *areas = NULL;
        struct vfio_region_info *ri;
        int mmap_fd = -1;

        ri = vfio_user_get_region_info(p, i, &mmap_fd, &err);
        if (!ri) {
            note(first, &err);
            continue;
        }
        if (vfio_region_sparse_areas(ri, &areas, NULL, &err) < 0) {
            note(first, &err);
        }
        g_free(areas);
        g_free(ri);
        if (mmap_fd >= 0) {
            close(mmap_fd);
        }
    }
    for (uint32_t i = 0; i < MIN(info.num_irqs, MAX_IRQS); i++) {
        struct vfio_irq_info irq = { 0 };

        if (!vfio_user_get_irq_info(p, i, &irq, &err)) {
            note(first, &err);
        }
    }
    if (!vfio_user_region_read(p, VDMA_REGS_BAR, VDMA_REG_ID, &val, 4,
                               &err) ||
        !vfio_user_region_read(p, VDMA_REGS_BAR, VDMA_REG_MEM_SIZE, &val, 8,
                               &err)) {
        note(first, &err);
    }
}

static void dma_calls(VFIOUserProxy *p, Error **first)
{
    Error *err = NULL;

    if (!vfio_user_dma_map(p, CLIENT_IOVA, CLIENT_MEM_SIZE, -1, 0,
                           VFIO_USER_F_DMA_REGION_READ |
                           VFIO_USER_F_DMA_REGION_WRITE, &err)) {
        note(first, &err);
        return;
    }
    /* Device memory into client memory (DMA_WRITE requests), and back. */
    device_dma(p, 0, CLIENT_IOVA, VDMA_CTRL_DIR_TO_RAM, first);
    device_dma(p, CLIENT_IOVA, TRANSFER_LEN, 0, first);
}

/* Read the device's data until it says there is no more (or a bound). */
static GByteArray *read_state(VFIOUserProxy *p, Error **first)
{
    GByteArray *state = g_byte_array_new();
    g_autofree uint8_t *buf = g_malloc(DATA_READ_SIZE);
    Error *err = NULL;

    for (int i = 0; i < MAX_DATA_READS; i++) {
        ssize_t n = vfio_user_mig_data_read(p, buf, DATA_READ_SIZE, &err);

        if (n < 0) {
            note(first, &err);
            break;
        }
        g_byte_array_append(state, buf, n);
        if ((size_t)n < DATA_READ_SIZE) {
            break;
        }
    }
    return state;
}

static bool set_state(VFIOUserProxy *p, uint32_t state, Error **first)
{
    Error *err = NULL;
    bool ok = vfio_user_mig_set_state(p, state, NULL, &err);

    note(first, &err);
    return ok;
}

static void migration_calls(VFIOUserProxy *p, Error **first)
{
    struct vfio_device_feature_dma_logging_range range = {
        .iova = CLIENT_IOVA, .length = CLIENT_MEM_SIZE,
    };
    uint64_t bitmap[CLIENT_MEM_SIZE / 4096 / 64 + 1] = { 0 };
    g_autoptr(GByteArray) precopy = NULL;
    g_autoptr(GByteArray) state = NULL;
    uint64_t flags = 0, page_size = 4096, initial, dirty, size;
    uint32_t cur;
    Error *err = NULL;

    if (!vfio_user_mig_get_flags(p, &flags, &err) ||
        !vfio_user_mig_get_state(p, &cur, &err)) {
        note(first, &err);
        return;
    }
    if (!vfio_user_dma_logging_start(p, &page_size, &range, 1, &err)) {
        note(first, &err);
    }
    if (flags & VFIO_MIGRATION_PRE_COPY &&
        set_state(p, VFIO_DEVICE_STATE_PRE_COPY, first)) {
        /* Extensions: only asked for when offered, as hw/vfio does. */
        if (vfio_user_peer_caps(p)->precopy_info &&
            !vfio_user_mig_precopy_info(p, &initial, &dirty, &err)) {
            note(first, &err);
        }
        precopy = read_state(p, first);
    }
    if (!vfio_user_dma_logging_report(p, CLIENT_IOVA, CLIENT_MEM_SIZE,
                                      page_size, bitmap, &err)) {
        note(first, &err);
    }
    if (!set_state(p, VFIO_DEVICE_STATE_STOP_COPY, first)) {
        return;
    }
    if (vfio_user_peer_caps(p)->mig_data_size &&
        !vfio_user_mig_data_size(p, &size, &err)) {
        note(first, &err);
    }
    state = read_state(p, first);
    if (!set_state(p, VFIO_DEVICE_STATE_STOP, first)) {
        return;
    }
    if (!vfio_user_dma_logging_stop(p, &err)) {
        note(first, &err);
    }
    /* Load what was saved, as a destination would. */
    if (!set_state(p, VFIO_DEVICE_STATE_RESUMING, first)) {
        return;
    }
    if ((precopy && precopy->len &&
         !vfio_user_mig_data_write(p, precopy->data, precopy->len, &err)) ||
        (state->len &&
         !vfio_user_mig_data_write(p, state->data, state->len, &err))) {
        note(first, &err);
    }
    if (set_state(p, VFIO_DEVICE_STATE_STOP, first)) {
        set_state(p, VFIO_DEVICE_STATE_RUNNING, first);
    }
}

/* The whole session; the first error, or NULL. */
static Error *run_session(uint8_t opts)
{
    VFIOUserConnectOptions copts = {
        .timeout_ms = REPLY_TIMEOUT_MS,
        .no_extensions = opts & FUZZ_VU_NO_EXTENSIONS,
        .max_data_xfer_size = CLIENT_MEM_SIZE,
        .dma_read = dma_read,
        .dma_write = dma_write,
    };
    Error *first = NULL, *err = NULL;
    VFIOUserProxy *p;

    memset(client_mem, 0, sizeof(client_mem));
    p = vfio_user_connect(socket_path, &copts, &first);
    if (!p) {
        return first;
    }
    info_calls(p, &first);
    dma_calls(p, &first);
    migration_calls(p, &first);
    if (!vfio_user_device_reset(p, &err) ||
        !vfio_user_dma_unmap(p, CLIENT_IOVA, CLIENT_MEM_SIZE, &err)) {
        note(&first, &err);
    }
    vfio_user_disconnect(p);
    return first;
}

/* ---- the server's side ---- */

static bool read_full(int fd, void *buf, size_t len)
{
    while (len) {
        ssize_t n = read(fd, buf, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        buf = (uint8_t *)buf + n;
        len -= n;
    }
    return true;
}

static bool write_full(int fd, const void *buf, size_t len)
{
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        buf = (const uint8_t *)buf + n;
        len -= n;
    }
    return true;
}

/*
 * Read one whole message of the client into @hdr (its payload into
 * @payload when not NULL, else dropped).  false at its end of stream.
 */
static bool read_message(int fd, struct vfio_user_header *hdr,
                         GByteArray *payload)
{
    uint8_t buf[4096];
    size_t left;

    if (!read_full(fd, hdr, sizeof(*hdr)) || hdr->msg_size < sizeof(*hdr)) {
        return false;
    }
    for (left = hdr->msg_size - sizeof(*hdr); left;) {
        size_t chunk = MIN(left, sizeof(buf));

        if (!read_full(fd, buf, chunk)) {
            return false;
        }
        if (payload) {
            g_byte_array_append(payload, buf, chunk);
        }
        left -= chunk;
    }
    return true;
}

/*
 * Wait (briefly) for the client's next request, dropping its replies to
 * our requests on the way.  false once the client is gone.
 */
static bool wait_request(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    struct vfio_user_header hdr;

    for (;;) {
        /* A client that sends nothing waits for something we never send. */
        if (poll(&pfd, 1, REQUEST_WAIT_MS) == 0) {
            return true;
        }
        if (!read_message(fd, &hdr, NULL)) {
            return false;
        }
        if ((hdr.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_COMMAND) {
            return true;
        }
    }
}

typedef struct ServerSide {
    const uint8_t *data;
    size_t size;
    GThread *thread;
} ServerSide;

static gpointer server_thread(gpointer opaque)
{
    ServerSide *s = opaque;
    const uint8_t *p = s->data, *end = s->data + s->size;
    struct vfio_user_header hdr;
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0) {
        fuzz_fail("accept: %s", strerror(errno));
    }
    while (p < end) {
        size_t len = end - p;

        if (len >= sizeof(hdr)) {
            memcpy(&hdr, p, sizeof(hdr));
            if (hdr.msg_size >= sizeof(hdr) && hdr.msg_size <= len) {
                len = hdr.msg_size;
            }
            if ((hdr.flags & VFIO_USER_F_TYPE_MASK) ==
                VFIO_USER_F_TYPE_REPLY && !wait_request(fd)) {
                break;
            }
        }
        if (!write_full(fd, p, len)) {
            break;
        }
        p += len;
    }
    /* The rest of the session fails at once: the server is gone. */
    shutdown(fd, SHUT_WR);
    while (read_message(fd, &hdr, NULL)) {
        /* until the client closes */
    }
    close(fd);
    return NULL;
}

/* ---- recording a real server ---- */

typedef struct Relay {
    int client_fd;
    int server_fd;
    GByteArray *recorded[2];    /* what the client, the server sent */
    GThread *thread;
} Relay;

static gpointer relay_thread(gpointer opaque)
{
    Relay *r = opaque;
    struct pollfd pfd[2] = {
        { .fd = r->client_fd, .events = POLLIN },
        { .fd = r->server_fd, .events = POLLIN },
    };
    uint8_t buf[65536];
    bool open_ends[2] = { true, true };

    while (open_ends[0] || open_ends[1]) {
        for (int i = 0; i < 2; i++) {
            pfd[i].fd = open_ends[i] ? (i ? r->server_fd : r->client_fd) : -1;
        }
        if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
            fuzz_fail("relay: poll: %s", strerror(errno));
        }
        for (int i = 0; i < 2; i++) {
            int to = i ? r->client_fd : r->server_fd;
            ssize_t n;

            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                continue;
            }
            n = read(pfd[i].fd, buf, sizeof(buf));
            if (n <= 0) {
                shutdown(to, SHUT_WR);
                open_ends[i] = false;
                continue;
            }
            g_byte_array_append(r->recorded[i], buf, n);
            if (!write_full(to, buf, n)) {
                open_ends[i] = false;
            }
        }
    }
    close(r->client_fd);
    close(r->server_fd);
    return NULL;
}

static int connect_unix(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        fuzz_fail("connecting to %s: %s", path, strerror(errno));
    }
    return fd;
}

static gpointer relay_accept_thread(gpointer opaque)
{
    Relay *r = opaque;

    r->client_fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (r->client_fd < 0) {
        fuzz_fail("accept: %s", strerror(errno));
    }
    return relay_thread(r);
}

static void save_seed(const char *path, uint8_t opts, GByteArray *bytes)
{
    g_autoptr(GError) gerr = NULL;

    g_byte_array_prepend(bytes, &opts, 1);
    if (!g_file_set_contents(path, (char *)bytes->data, bytes->len, &gerr)) {
        fuzz_fail("%s", gerr->message);
    }
}

/*
 * Run the session against the server on @server and save what the
 * server sent as a seed of this target in @output; and what the client
 * sent in @client_output (if not NULL), as a seed of the vfio-user
 * server library's decoder target, whose options byte 0 means that
 * VERSION comes first.
 */
static void G_GNUC_NORETURN record(const char *server, const char *output,
                                   uint8_t opts, const char *client_output)
{
    Relay r = { .recorded = { g_byte_array_new(), g_byte_array_new() } };
    Error *err;

    recording = true;
    r.server_fd = connect_unix(server);
    r.thread = g_thread_new("fuzz/relay", relay_accept_thread, &r);
    err = run_session(opts);
    g_thread_join(r.thread);
    if (err) {
        fuzz_fail("recording against %s: %s", server, error_get_pretty(err));
    }
    save_seed(output, opts, r.recorded[1]);
    if (client_output) {
        save_seed(client_output, 0, r.recorded[0]);
    }
    g_byte_array_unref(r.recorded[0]);
    g_byte_array_unref(r.recorded[1]);
    exit(0);
}

/* ---- libFuzzer entry points ---- */

static void remove_socket(void)
{
    unlink(socket_path);
    rmdir(socket_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };

    fuzz_common_init();
    socket_dir = g_dir_make_tmp("vmig-fuzz-vu-XXXXXX", NULL);
    if (!socket_dir) {
        fuzz_fail("cannot make a temporary directory");
    }
    socket_path = g_build_filename(socket_dir, "s", NULL);
    atexit(remove_socket);
    g_strlcpy(addr.sun_path, socket_path, sizeof(addr.sun_path));
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0 ||
        bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(listen_fd, 4) < 0) {
        fuzz_fail("listening on %s: %s", socket_path, strerror(errno));
    }
    /*
     * --record SERVER OUTPUT [OPTIONS [CLIENT_OUTPUT]]: make a seed (see
     * the top, and record()).
     */
    if (*argc >= 4 && !strcmp((*argv)[1], "--record")) {
        record((*argv)[2], (*argv)[3],
               *argc > 4 ? strtoul((*argv)[4], NULL, 0) : 0,
               *argc > 5 ? (*argv)[5] : NULL);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ServerSide server;
    Error *err;

    fuzz_set_result(NULL);
    if (size < 1) {
        return -1;
    }
    server = (ServerSide) { .data = data + 1, .size = size - 1 };
    server.thread = g_thread_new("fuzz/server", server_thread, &server);
    err = run_session(data[0]);
    g_thread_join(server.thread);
    fuzz_log("options 0x%02x, %zu bytes: %s", data[0], size - 1,
             err ? error_get_pretty(err) : "ok");
    fuzz_set_result(err ? error_get_pretty(err) : "ok");
    error_free(err);
    return 0;
}
