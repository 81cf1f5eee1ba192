/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Listening UNIX sockets that only their owner can connect to.  libc only:
 * libvfio-user-server builds this file too (see unix-listen.h).
 */
#include "qemu/unix-listen.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Write the message for a failure; returns -@err. */
static int __attribute__((format(printf, 4, 5)))
fail(int err, char *msg, size_t msg_size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, msg_size, fmt, ap);
    va_end(ap);
    return -err;
}

/*
 * Clear the way to bind at @sun: remove a socket file that nobody listens
 * on any more.  Only a refused connect proves that; any other answer
 * leaves the file alone.
 */
static int remove_stale(const struct sockaddr_un *sun, char *msg,
                        size_t msg_size)
{
    const char *path = sun->sun_path;
    struct stat st;
    int fd, ret, err;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT) {
            return 0;
        }
        return fail(errno, msg, msg_size, "cannot check '%s': %s", path,
                    strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode)) {
        return fail(EEXIST, msg, msg_size, "'%s' exists and is not a socket",
                    path);
    }
    /* Non-blocking: a live server with a full backlog must not hang us. */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return fail(errno, msg, msg_size, "cannot create a socket: %s",
                    strerror(errno));
    }
    ret = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
    err = errno;
    close(fd);
    if (ret == 0 || err == EAGAIN) {
        return fail(EADDRINUSE, msg, msg_size,
                    "a server is already listening on '%s'", path);
    }
    if (err == ENOENT) {
        return 0;           /* removed meanwhile */
    }
    if (err != ECONNREFUSED) {
        return fail(err, msg, msg_size, "cannot tell whether a server "
                    "listens on '%s': %s", path, strerror(err));
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        return fail(errno, msg, msg_size, "cannot remove stale socket '%s': "
                    "%s", path, strerror(errno));
    }
    return 0;
}

int unix_listen_private(const char *path, int backlog, int type_flags,
                        char *msg, size_t msg_size)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    struct stat st;
    int fd, ret;

    if (!*path) {
        return fail(EINVAL, msg, msg_size, "empty socket path");
    }
    if (strlen(path) >= sizeof(sun.sun_path)) {
        return fail(ENAMETOOLONG, msg, msg_size, "socket path '%s' is too "
                    "long (at most %zu bytes)", path, sizeof(sun.sun_path) - 1);
    }
    strcpy(sun.sun_path, path);
    ret = remove_stale(&sun, msg, msg_size);
    if (ret < 0) {
        return ret;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | type_flags, 0);
    if (fd < 0) {
        return fail(errno, msg, msg_size, "cannot create a socket: %s",
                    strerror(errno));
    }
    /*
     * Linux creates the socket file with the mode of the socket's own
     * inode, less the umask.  Narrowing that mode before bind() closes the
     * window that a chmod() after bind() would leave, and unlike a
     * temporary umask it does not touch process-wide state that other
     * threads depend on.
     */
    if (fchmod(fd, 0600) < 0) {
        ret = fail(errno, msg, msg_size, "cannot restrict the socket for "
                   "'%s' to its owner: %s", path, strerror(errno));
        goto fail_close;
    }
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        ret = fail(errno, msg, msg_size, "cannot bind to '%s': %s", path,
                   strerror(errno));
        goto fail_close;
    }
    /* Fail closed on a kernel that ignored the mode set above. */
    if (lstat(path, &st) < 0 || (st.st_mode & 077)) {
        ret = fail(EPERM, msg, msg_size, "'%s' was not created private to "
                   "its owner; not listening on it", path);
        goto fail_unlink;
    }
    if (listen(fd, backlog) < 0) {
        ret = fail(errno, msg, msg_size, "cannot listen on '%s': %s", path,
                   strerror(errno));
        goto fail_unlink;
    }
    return fd;

fail_unlink:
    unlink(path);
fail_close:
    close(fd);
    return ret;
}
