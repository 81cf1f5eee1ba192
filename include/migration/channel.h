/*
 * Migration transports: byte streams over TCP, UNIX sockets, inherited
 * fds, a child process (exec:) and regular files.
 *
 * Every blocking call can be aborted from another thread through a
 * MigCancel: the I/O fds are non-blocking (except regular files) and a
 * thread that must wait polls its fd together with the canceller's
 * eventfd.  Once cancelled, every channel I/O using it fails.
 */
#ifndef MIGRATION_CHANNEL_H
#define MIGRATION_CHANNEL_H

#include <sys/uio.h>
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "migration/misc.h"

typedef struct MigCancel MigCancel;

MigCancel *mig_cancel_new(Error **errp);
/* Abort every blocked and future I/O of channels using @c (any thread). */
void mig_cancel_fire(MigCancel *c);
bool mig_cancel_fired(const MigCancel *c);
/*
 * The bound on a stalled peer (x-channel-timeout; 0: none): a write that
 * finds no room, a connect, or a bounded read (MigChannel.read_bounded)
 * fails after @timeout_ms without progress, and TCP sockets made from
 * then on get keepalive probes and a user timeout to match.
 */
void mig_cancel_set_timeout(MigCancel *c, unsigned timeout_ms);
/*
 * yank: shut down every socket of the channels using @c at once (any
 * thread); their blocked and later reads and writes fail, "yanked".
 */
void mig_cancel_yank(MigCancel *c);
void mig_cancel_free(MigCancel *c);

typedef struct TLSSession TLSSession;

typedef struct MigChannel {
    int fd;
    bool is_socket;             /* shutdown() works, data may go both ways */
    bool is_regular_file;       /* never blocks, poll is pointless */
    pid_t child;                /* exec: the command, reaped at close; or 0 */
    char *desc;                 /* "unix:/path", for messages */
    MigCancel *cancel;          /* not owned */
    bool read_bounded;          /* reads wait at most the cancel's timeout */
    bool timed_out;             /* a wait outlasted that timeout */
    /* Writer of a socket: guest RAM by reference (mig_channel_writev_ref) */
    int ref_pipe[2];            /* valid while ref_pipe_open */
    bool ref_pipe_open;
    bool ref_unavailable;       /* vmsplice refused here: copy instead */
    bool sent_by_ref;           /* the peer may still read our memory */
    /* TLS (mig_channel_tls_handshake): every byte goes through it */
    TLSSession *tls;            /* shared with a dup; or NULL */
    GByteArray *tls_peeked;     /* decrypted by a peek, not yet read */
    uint8_t *tls_out;           /* a record being gathered */
} MigChannel;

/*
 * Source side: connect to @addr (tcp, unix), open the file, spawn the
 * command with its stdin as our end, or take the fd (a getfd name, or a
 * number inherited by this process).  @cancel may abort a slow connect.
 */
MigChannel *mig_channel_connect(const MigrationAddress *addr,
                                MigCancel *cancel, Error **errp);

/*
 * Destination side.  A listener binds at once (tcp, unix) or prepares
 * its single stream (file, fd, exec); accept hands out the next stream.
 */
typedef struct MigListener MigListener;

MigListener *mig_listener_new(const MigrationAddress *addr, Error **errp);
/* The address actually bound (port 0 resolved), or the URI. */
char *mig_listener_describe(const MigListener *l);
/* For query-migrate: "inet"/"unix"/NULL, host, port or path. */
const char *mig_listener_socket_type(const MigListener *l);
const char *mig_listener_host(const MigListener *l);
const char *mig_listener_port_or_path(const MigListener *l);
MigChannel *mig_listener_accept(MigListener *l, MigCancel *cancel,
                                Error **errp);
void mig_listener_free(MigListener *l);

/* A channel over an fd the caller owned: used by tests and the return path. */
MigChannel *mig_channel_new_fd(int fd, const char *desc, MigCancel *cancel);
/*
 * Run the TLS handshake of @s (a session over ch->fd) and send every
 * later byte of @ch through it; @ch owns @s even when this fails.
 * Bounded like a read by the canceller's timeout.
 */
bool mig_channel_tls_handshake(MigChannel *ch, TLSSession *s, Error **errp);
/* Use @c (may be NULL) instead of the canceller @ch was made with. */
void mig_channel_set_cancel(MigChannel *ch, MigCancel *c);
/* A second channel on the same socket, for the other direction. */
MigChannel *mig_channel_dup(MigChannel *ch, Error **errp);

/*
 * Read up to @len bytes.  Returns the count (> 0), 0 at end of stream,
 * or -1 with errp set (error or cancel).
 */
ssize_t mig_channel_read(MigChannel *ch, void *buf, size_t len, Error **errp);
/* Write everything in @iov (modified as it goes).  false with errp set. */
bool mig_channel_writev_all(MigChannel *ch, struct iovec *iov, int iovcnt,
                            Error **errp);
/*
 * Write everything in @iov: the first @nr_copied entries are copied like
 * mig_channel_writev_all() does, the others (guest RAM) go into a socket
 * by reference, without a copy: vmsplice() into a pipe, splice() from it
 * to the socket.  The kernel then holds references to those pages until
 * the peer has read them (on loopback) or acknowledged them, so the
 * peer may see changes made after this returns: use it only for memory
 * whose changes are logged and sent again, and call
 * mig_channel_wait_peer_close() before such memory may change for good
 * (the source VM resuming after a completed migration).  Anything but a
 * socket, or a kernel that refuses, gets copies.
 */
bool mig_channel_writev_ref(MigChannel *ch, struct iovec *iov, int iovcnt,
                            int nr_copied, Error **errp);
/*
 * After data went by reference: wait until the peer closes the
 * connection (a vmig destination does once it loaded everything), so
 * that it read every page.  Bytes the peer sends meanwhile are dropped,
 * so never call it while a return path reads the same socket.  true at
 * once when nothing went by reference; false with errp set on cancel.
 */
bool mig_channel_wait_peer_close(MigChannel *ch, Error **errp);
/*
 * Move up to @len bytes of the stream into the pipe @pipe_wr without
 * copying them through user space.  Returns the count (> 0), 0 at end
 * of stream, -1 with errp set on failure, or -2 (errp untouched) when
 * this channel cannot splice, so that the caller reads instead.
 */
ssize_t mig_channel_splice_to_pipe(MigChannel *ch, int pipe_wr, size_t len,
                                   Error **errp);
/*
 * Look at the first @len bytes of a socket without consuming them (to
 * tell a multifd channel from the main stream).  false with errp set on
 * failure, cancel, or when the peer closes first.
 */
bool mig_channel_peek(MigChannel *ch, void *buf, size_t len, Error **errp);
/* Whether @ch's sockets were yanked (an end of stream is then an error). */
bool mig_channel_yanked(const MigChannel *ch);
/* Wake any thread blocked on this socket's reads (no-op for others). */
void mig_channel_shutdown(MigChannel *ch);
/* Free @ch but keep its fd open, for the caller: returns the fd. */
int mig_channel_steal_fd(MigChannel *ch);
/* Close the fd; for exec: wait briefly for the command, then kill it. */
void mig_channel_close(MigChannel *ch);

#endif
