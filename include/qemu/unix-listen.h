/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Listening UNIX sockets that only their owner can connect to.
 *
 * libc only, and BSD-licensed like libvfio-user-server, which builds it
 * too: vmig's QMP and migration listeners and the device servers create,
 * replace and refuse socket files in one way.
 */
#ifndef QEMU_UNIX_LISTEN_H
#define QEMU_UNIX_LISTEN_H

#include <stddef.h>

/* Room for any message of unix_listen_private(), path included. */
#define UNIX_LISTEN_MSG_SIZE 320

/*
 * unix_listen_private: listen on a new UNIX stream socket at @path.
 *
 * The socket file has mode 0600 (less what the umask removes) from the
 * moment it exists: nobody else can connect, not even during start-up.
 * The process umask is neither read nor changed, so other threads may
 * create files meanwhile.
 *
 * What is at @path already decides the outcome:
 *   - nothing: the socket is created there;
 *   - a socket nobody listens on (left by a process that died): it is
 *     removed and replaced;
 *   - a socket a live server listens on: -EADDRINUSE;
 *   - anything else (a file, a directory, a symlink): -EEXIST, and it is
 *     left alone.
 *
 * @backlog: as for listen(2).
 * @type_flags: added to SOCK_STREAM | SOCK_CLOEXEC (e.g. SOCK_NONBLOCK).
 * @msg, @msg_size: on failure, a message that names @path and the problem
 * (UNIX_LISTEN_MSG_SIZE is enough).
 *
 * Returns the listening fd, or a negative errno.  The caller unlinks @path
 * when it closes the fd.
 */
int unix_listen_private(const char *path, int backlog, int type_flags,
                        char *msg, size_t msg_size);

#endif
