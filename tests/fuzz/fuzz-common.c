/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Helpers of the decoder fuzz targets: see fuzz-common.h.
 */
#include "qemu/osdep.h"
#include <poll.h>
#include <sys/socket.h>
#include "qemu/main-loop.h"
#include "system/cpus.h"
#include "system/guest.h"
#include "system/hostmem.h"
#include "fuzz-common.h"

static int report_fd = STDERR_FILENO;
static bool verbose;
static char *last_result;

void fuzz_common_init(void)
{
    /* libFuzzer's -close_fd_mask=2 closes stderr after this. */
    report_fd = dup(STDERR_FILENO);
    verbose = g_getenv("VMIG_FUZZ_LOG") != NULL;
}

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    dprintf(report_fd, "vmig-fuzz: ");
    vdprintf(report_fd, fmt, ap);
    dprintf(report_fd, "\n");
    va_end(ap);
    abort();
}

void fuzz_machine_init(bool with_guest)
{
    Error *err = NULL;

    main_loop_init();
    if (!machine_ram_init(256 * KiB, NULL, &err) ||
        (with_guest && (!guest_program_create("stress,ws=16K", &err) ||
                        !cpus_init(1, &err)))) {
        fuzz_fail("building the machine: %s", error_get_pretty(err));
    }
}

bool fuzz_verbose(void)
{
    return verbose;
}

void fuzz_log(const char *fmt, ...)
{
    va_list ap;

    if (!verbose) {
        return;
    }
    va_start(ap, fmt);
    dprintf(report_fd, "vmig-fuzz: ");
    vdprintf(report_fd, fmt, ap);
    dprintf(report_fd, "\n");
    va_end(ap);
}

void fuzz_set_result(const char *result)
{
    g_free(last_result);
    last_result = g_strdup(result);
}

const char *fuzz_last_result(void)
{
    return last_result;
}

struct FuzzPeer {
    int fd;
    const uint8_t *data;
    size_t size;
    GByteArray *received;
    GThread *thread;
};

/*
 * Write and read at the same time: the code under test may answer while
 * we write (a return path, QMP replies, vfio-user requests), and would
 * block on a full socket while we block on ours.
 */
static gpointer peer_thread(gpointer opaque)
{
    FuzzPeer *p = opaque;
    struct pollfd pfd = { .fd = p->fd };
    size_t done = 0;
    uint8_t buf[4096];

    if (!p->size) {
        shutdown(p->fd, SHUT_WR);
    }
    for (;;) {
        pfd.events = POLLIN | (done < p->size ? POLLOUT : 0);
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
            fuzz_fail("poll on the peer's socket: %s", strerror(errno));
        }
        if (pfd.revents & POLLOUT) {
            /* No SIGPIPE when the code under test has closed its end. */
            ssize_t n = send(p->fd, p->data + done, p->size - done,
                             MSG_NOSIGNAL);

            if (n >= 0) {
                done += n;
            } else if (errno != EAGAIN && errno != EINTR) {
                /* The code under test stopped reading and closed. */
                done = p->size;
            }
            if (done == p->size) {
                shutdown(p->fd, SHUT_WR);
            }
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(p->fd, buf, sizeof(buf));

            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                break;
            }
            if (n > 0) {
                g_byte_array_append(p->received, buf, n);
            }
        }
    }
    close(p->fd);
    return NULL;
}

FuzzPeer *fuzz_peer_start(const uint8_t *data, size_t size, int *fd)
{
    FuzzPeer *p = g_new0(FuzzPeer, 1);
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        fuzz_fail("socketpair: %s", strerror(errno));
    }
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    p->fd = sv[0];
    p->data = data;
    p->size = size;
    p->received = g_byte_array_new();
    p->thread = g_thread_new("fuzz/peer", peer_thread, p);
    *fd = sv[1];
    return p;
}

GByteArray *fuzz_peer_join(FuzzPeer *peer)
{
    GByteArray *received;

    g_thread_join(peer->thread);
    received = peer->received;
    g_free(peer);
    return received;
}
