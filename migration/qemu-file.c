/*
 * Buffered migration stream.  See include/migration/qemu-file.h.
 */
#include "qemu/osdep.h"
#include "migration/trace.h"
#include <fcntl.h>
#include "migration/qemu-file.h"

#define QEMU_FILE_BUF_SIZE (256 * KiB)
#define QEMU_FILE_MAX_IOV 64
/* Reads at least this large skip the buffer and land in the caller's memory. */
#define QEMU_FILE_DIRECT_READ (32 * KiB)
/*
 * The refill after such a read: small, because what follows is most
 * likely the next record's header and then its data, which should land
 * straight in guest RAM too, not in the buffer to be copied again.
 */
#define QEMU_FILE_SMALL_FILL (4 * KiB)

struct QEMUFile {
    MigChannel *ch;
    int splice_pipe[2];         /* input, lazily created; -1 when unused */
    size_t splice_pipe_size;
    bool no_splice;             /* the channel or a file refused splice */
    bool writable;
    uint8_t *buf;
    size_t buf_index;           /* output: bytes used; input: read position */
    size_t buf_size;            /* input: valid bytes in buf */
    struct iovec iov[QEMU_FILE_MAX_IOV];
    bool iov_by_ref[QEMU_FILE_MAX_IOV];     /* guest RAM, not our buffer */
    int iovcnt;
    bool small_fill;            /* input: the last read went direct */
    uint64_t total;
    int last_error;
    Error *err;
    bool eof;
};

static QEMUFile *qemu_file_new(MigChannel *ch, bool writable)
{
    QEMUFile *f = g_new0(QEMUFile, 1);

    f->ch = ch;
    f->writable = writable;
    f->splice_pipe[0] = f->splice_pipe[1] = -1;
    f->buf = g_malloc(QEMU_FILE_BUF_SIZE);
    return f;
}

QEMUFile *qemu_file_new_output(MigChannel *ch)
{
    return qemu_file_new(ch, true);
}

QEMUFile *qemu_file_new_input(MigChannel *ch)
{
    return qemu_file_new(ch, false);
}

MigChannel *qemu_file_channel(QEMUFile *f)
{
    return f->ch;
}

void qemu_file_set_error(QEMUFile *f, int ret, Error *err)
{
    if (f->last_error) {
        error_free(err);
        return;
    }
    f->last_error = ret < 0 ? ret : -EIO;
    if (!err) {
        error_setg(&err, "%s: %s", f->ch ? f->ch->desc : "stream",
                   strerror(-f->last_error));
    }
    trace(qemu_file_error, "%s at %" PRIu64 ": %s",
          f->ch ? f->ch->desc : "stream", f->total, error_get_pretty(err));
    f->err = err;
}

int qemu_file_get_error(QEMUFile *f)
{
    return f->last_error;
}

const char *qemu_file_error_message(QEMUFile *f)
{
    return f->err ? error_get_pretty(f->err) : NULL;
}

bool qemu_file_check(QEMUFile *f, Error **errp)
{
    if (!f->last_error) {
        return true;
    }
    if (errp) {
        *errp = error_copy(f->err);
    }
    return false;
}

uint64_t qemu_file_transferred(QEMUFile *f)
{
    return f->total;
}

void qemu_file_account(QEMUFile *f, uint64_t bytes)
{
    f->total += bytes;
}

/* With the stream flushed (output) or its buffer counted (input). */
static bool qemu_file_check_regular(QEMUFile *f, Error **errp)
{
    if (!qemu_file_check(f, errp)) {
        return false;
    }
    if (!f->ch->is_regular_file) {
        error_setg(errp, "%s: not a regular file: cannot seek", f->ch->desc);
        return false;
    }
    if (f->writable && qemu_fflush(f) < 0) {
        qemu_file_check(f, errp);
        return false;
    }
    return true;
}

bool qemu_file_tell(QEMUFile *f, uint64_t *pos, Error **errp)
{
    off_t cur;

    if (!qemu_file_check_regular(f, errp)) {
        return false;
    }
    cur = lseek(f->ch->fd, 0, SEEK_CUR);
    if (cur < 0) {
        error_setg_errno(errp, errno, "%s: cannot tell the position",
                         f->ch->desc);
        return false;
    }
    /* Input: the buffered bytes were read from the file but not taken. */
    *pos = cur - (f->writable ? 0 : f->buf_size - f->buf_index);
    return true;
}

bool qemu_file_seek(QEMUFile *f, uint64_t pos, Error **errp)
{
    if (!qemu_file_check_regular(f, errp)) {
        return false;
    }
    if (pos > INT64_MAX || lseek(f->ch->fd, pos, SEEK_SET) < 0) {
        error_setg_errno(errp, pos > INT64_MAX ? EINVAL : errno,
                         "%s: cannot seek to %" PRIu64, f->ch->desc, pos);
        return false;
    }
    f->buf_index = f->buf_size = 0;
    f->small_fill = false;
    f->eof = false;
    return true;
}

int qemu_fflush(QEMUFile *f)
{
    Error *err = NULL;

    if (!f->writable || f->last_error) {
        return f->last_error;
    }
    /* Runs of buffer entries, each followed by its run of guest RAM. */
    for (int i = 0; i < f->iovcnt && !f->last_error; ) {
        int copied = 0, n = 0;

        while (i + copied < f->iovcnt && !f->iov_by_ref[i + copied]) {
            copied++;
        }
        while (i + copied + n < f->iovcnt && f->iov_by_ref[i + copied + n]) {
            n++;
        }
        if (!mig_channel_writev_ref(f->ch, &f->iov[i], copied + n, copied,
                                    &err)) {
            qemu_file_set_error(f, -EIO, err);
        }
        i += copied + n;
    }
    f->iovcnt = 0;
    f->buf_index = 0;
    return f->last_error;
}

static void add_iov(QEMUFile *f, const void *base, size_t len, bool by_ref)
{
    struct iovec *last = f->iovcnt ? &f->iov[f->iovcnt - 1] : NULL;

    if (last && f->iov_by_ref[f->iovcnt - 1] == by_ref &&
        (const uint8_t *)last->iov_base + last->iov_len ==
        (const uint8_t *)base) {
        last->iov_len += len;
        return;
    }
    if (f->iovcnt == QEMU_FILE_MAX_IOV) {
        qemu_fflush(f);
    }
    f->iov[f->iovcnt].iov_base = (void *)base;
    f->iov[f->iovcnt].iov_len = len;
    f->iov_by_ref[f->iovcnt] = by_ref;
    f->iovcnt++;
}

void qemu_put_buffer(QEMUFile *f, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    if (f->last_error) {
        return;
    }
    f->total += len;
    while (len) {
        size_t room = QEMU_FILE_BUF_SIZE - f->buf_index;
        size_t n = MIN(room, len);

        if (!room || f->iovcnt == QEMU_FILE_MAX_IOV) {
            if (qemu_fflush(f)) {
                return;
            }
            continue;
        }
        memcpy(f->buf + f->buf_index, p, n);
        add_iov(f, f->buf + f->buf_index, n, false);
        f->buf_index += n;
        p += n;
        len -= n;
    }
}

/* A caller's buffer, written at the next flush; false if nothing was. */
static bool put_external(QEMUFile *f, const void *buf, size_t len,
                         bool by_ref)
{
    if (f->last_error || !len) {
        return false;
    }
    f->total += len;
    add_iov(f, buf, len, by_ref);
    return true;
}

void qemu_put_buffer_borrowed(QEMUFile *f, const void *buf, size_t len)
{
    /* Copied by the kernel at the flush, like our own buffer. */
    put_external(f, buf, len, false);
}

void qemu_put_buffer_nocopy(QEMUFile *f, const void *buf, size_t len)
{
    if (put_external(f, buf, len, true) && f->iovcnt == QEMU_FILE_MAX_IOV) {
        qemu_fflush(f);
    }
}

void qemu_put_byte(QEMUFile *f, uint8_t v)
{
    qemu_put_buffer(f, &v, 1);
}

void qemu_put_be16(QEMUFile *f, uint16_t v)
{
    uint16_t be = GUINT16_TO_BE(v);

    qemu_put_buffer(f, &be, sizeof(be));
}

void qemu_put_be32(QEMUFile *f, uint32_t v)
{
    uint32_t be = GUINT32_TO_BE(v);

    qemu_put_buffer(f, &be, sizeof(be));
}

void qemu_put_be64(QEMUFile *f, uint64_t v)
{
    uint64_t be = GUINT64_TO_BE(v);

    qemu_put_buffer(f, &be, sizeof(be));
}

void qemu_put_counted_string(QEMUFile *f, const char *str)
{
    size_t len = strlen(str);

    assert(len < 256);
    qemu_put_byte(f, len);
    qemu_put_buffer(f, str, len);
}

/* Refill the input buffer.  Returns false at end of stream or on error. */
static bool fill_buffer(QEMUFile *f)
{
    Error *err = NULL;
    ssize_t n;

    if (f->last_error || f->eof) {
        return false;
    }
    f->buf_index = 0;
    f->buf_size = 0;
    n = mig_channel_read(f->ch, f->buf, f->small_fill ? QEMU_FILE_SMALL_FILL
                                                      : QEMU_FILE_BUF_SIZE,
                         &err);
    f->small_fill = false;
    if (n < 0) {
        qemu_file_set_error(f, -EIO, err);
        return false;
    }
    if (n == 0) {
        f->eof = true;
        return false;
    }
    f->buf_size = n;
    return true;
}

static void set_truncated(QEMUFile *f)
{
    Error *err = NULL;

    if (f->last_error) {
        return;
    }
    error_setg(&err, "%s: the stream ends early (truncated after %" PRIu64
               " bytes)", f->ch ? f->ch->desc : "stream", f->total);
    qemu_file_set_error(f, -EPIPE, err);
}

bool qemu_get_buffer(QEMUFile *f, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len) {
        size_t avail = f->buf_size - f->buf_index;

        if (f->last_error) {
            break;
        }
        if (avail) {
            size_t n = MIN(avail, len);

            memcpy(p, f->buf + f->buf_index, n);
            f->buf_index += n;
            f->total += n;
            p += n;
            len -= n;
            continue;
        }
        if (len >= QEMU_FILE_DIRECT_READ && !f->eof) {
            Error *err = NULL;
            ssize_t n = mig_channel_read(f->ch, p, len, &err);

            if (n < 0) {
                qemu_file_set_error(f, -EIO, err);
                break;
            }
            if (n == 0) {
                f->eof = true;
                set_truncated(f);
                break;
            }
            f->total += n;
            p += n;
            len -= n;
            f->small_fill = true;
            continue;
        }
        if (!fill_buffer(f)) {
            set_truncated(f);
            break;
        }
    }
    if (len) {
        memset(p, 0, len);
        return false;
    }
    return true;
}

static bool pwrite_all(QEMUFile *f, int fd, const uint8_t *buf, size_t len,
                       uint64_t offset)
{
    while (len) {
        ssize_t n = pwrite(fd, buf, len, offset);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            Error *err = NULL;

            error_setg_errno(&err, n < 0 ? errno : ENOSPC, "guest RAM: "
                             "write at offset %" PRIu64 " failed", offset);
            qemu_file_set_error(f, -EIO, err);
            return false;
        }
        buf += n;
        len -= n;
        offset += n;
    }
    return true;
}

static bool splice_setup(QEMUFile *f)
{
    int size;

    if (pipe2(f->splice_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        f->no_splice = true;
        return false;
    }
    /* A bigger pipe means fewer system calls; 1 MiB needs no privilege. */
    size = fcntl(f->splice_pipe[1], F_SETPIPE_SZ, 1024 * 1024);
    if (size < 0) {
        size = fcntl(f->splice_pipe[1], F_GETPIPE_SZ);
    }
    f->splice_pipe_size = size > 0 ? size : 64 * 1024;
    return true;
}

/* Drain @n bytes from the pipe into @fd at *@offset. */
static bool splice_pipe_to_fd(QEMUFile *f, int fd, uint64_t *offset, size_t n)
{
    while (n) {
        loff_t off = *offset;
        ssize_t w = splice(f->splice_pipe[0], NULL, fd, &off, n,
                           SPLICE_F_MOVE);

        if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (w <= 0) {
            Error *err = NULL;

            error_setg_errno(&err, w < 0 ? errno : EIO, "guest RAM: moving "
                             "data to offset %" PRIu64 " failed", *offset);
            qemu_file_set_error(f, -EIO, err);
            return false;
        }
        *offset += w;
        n -= w;
    }
    return true;
}

bool qemu_get_buffer_to_ram(QEMUFile *f, void *host, int fd,
                            uint64_t fd_offset, size_t len)
{
    uint8_t *p = host;
    size_t avail = f->buf_size - f->buf_index;

    if (fd < 0 || f->no_splice || f->last_error || len < QEMU_FILE_DIRECT_READ ||
        (f->splice_pipe[0] < 0 && !splice_setup(f))) {
        return qemu_get_buffer(f, host, len);
    }
    /* What the buffer holds already goes in with one pwrite. */
    if (avail) {
        size_t n = MIN(avail, len);

        if (!pwrite_all(f, fd, f->buf + f->buf_index, n, fd_offset)) {
            return false;
        }
        f->buf_index += n;
        f->total += n;
        p += n;
        fd_offset += n;
        len -= n;
    }
    while (len) {
        Error *err = NULL;
        ssize_t n = mig_channel_splice_to_pipe(f->ch, f->splice_pipe[1],
                                               MIN(len, f->splice_pipe_size),
                                               &err);

        if (n == -2) {
            /* This channel cannot splice: read the rest the usual way. */
            f->no_splice = true;
            return qemu_get_buffer(f, p, len);
        }
        if (n < 0) {
            qemu_file_set_error(f, -EIO, err);
            return false;
        }
        if (n == 0) {
            f->eof = true;
            set_truncated(f);
            return false;
        }
        if (!splice_pipe_to_fd(f, fd, &fd_offset, n)) {
            return false;
        }
        f->small_fill = true;
        f->total += n;
        p += n;
        len -= n;
    }
    return true;
}

void qemu_file_note_ref_elsewhere(QEMUFile *f)
{
    f->ch->sent_by_ref |= f->ch->is_socket;
}

bool qemu_file_wait_peer_done(QEMUFile *f, Error **errp)
{
    return qemu_fflush(f) == 0 ? mig_channel_wait_peer_close(f->ch, errp)
                               : qemu_file_check(f, errp);
}

bool qemu_file_can_splice(QEMUFile *f)
{
    return !f->no_splice;
}

bool qemu_skip(QEMUFile *f, size_t len)
{
    uint8_t scratch[4096];

    while (len) {
        size_t n = MIN(len, sizeof(scratch));

        if (!qemu_get_buffer(f, scratch, n)) {
            return false;
        }
        len -= n;
    }
    return true;
}

bool qemu_file_at_eof(QEMUFile *f)
{
    if (f->buf_size - f->buf_index) {
        return false;
    }
    return !fill_buffer(f) && f->eof && !f->last_error;
}

uint8_t qemu_get_byte(QEMUFile *f)
{
    uint8_t v;

    if (f->buf_index < f->buf_size) {
        f->total++;
        return f->buf[f->buf_index++];
    }
    qemu_get_buffer(f, &v, 1);
    return v;
}

uint16_t qemu_get_be16(QEMUFile *f)
{
    uint16_t be;

    qemu_get_buffer(f, &be, sizeof(be));
    return GUINT16_FROM_BE(be);
}

uint32_t qemu_get_be32(QEMUFile *f)
{
    uint32_t be;

    qemu_get_buffer(f, &be, sizeof(be));
    return GUINT32_FROM_BE(be);
}

uint64_t qemu_get_be64(QEMUFile *f)
{
    uint64_t be;

    qemu_get_buffer(f, &be, sizeof(be));
    return GUINT64_FROM_BE(be);
}

bool qemu_get_counted_string(QEMUFile *f, char buf[256])
{
    uint8_t len = qemu_get_byte(f);
    bool ok = qemu_get_buffer(f, buf, len);

    buf[ok ? len : 0] = '\0';
    /*
     * Names in the stream are printable ASCII; anything else is damage,
     * and must not reach messages (QMP wants valid UTF-8).
     */
    for (unsigned i = 0; ok && i < len; i++) {
        if (buf[i] < 0x20 || buf[i] > 0x7e) {
            Error *err = NULL;

            error_setg(&err, "%s: a name in the stream holds byte 0x%02x "
                       "(at byte %" PRIu64 ")", f->ch ? f->ch->desc : "stream",
                       (uint8_t)buf[i], f->total - len + i);
            qemu_file_set_error(f, -EINVAL, err);
            buf[0] = '\0';
            ok = false;
        }
    }
    return ok;
}

int qemu_fclose(QEMUFile *f)
{
    int ret;

    if (!f) {
        return 0;
    }
    if (f->writable) {
        qemu_fflush(f);
    }
    ret = f->last_error;
    if (f->splice_pipe[0] >= 0) {
        close(f->splice_pipe[0]);
        close(f->splice_pipe[1]);
    }
    mig_channel_close(f->ch);
    error_free(f->err);
    g_free(f->buf);
    g_free(f);
    return ret;
}
