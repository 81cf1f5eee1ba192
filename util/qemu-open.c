/*
 * qemu_open(): open() that also takes "/dev/fdset/N", an fd set that a
 * QMP client filled with add-fd (monitor/fds.c): the open then gets a
 * duplicate of a set member whose access mode matches, so that vmig can
 * work with files it may not open itself.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/qemu-open.h"

#define FDSET_PREFIX "/dev/fdset/"

static QemuFdsetDupFunc *fdset_dup;

void qemu_open_set_fdset_dup(QemuFdsetDupFunc *fn)
{
    fdset_dup = fn;
}

int qemu_open(const char *path, int flags, mode_t mode, Error **errp)
{
    int fd;

    if (g_str_has_prefix(path, FDSET_PREFIX)) {
        const char *num = path + strlen(FDSET_PREFIX);
        guint64 id;

        if (!g_ascii_string_to_unsigned(num, 10, 0, INT64_MAX, &id, NULL)) {
            error_setg(errp, "'%s': expected " FDSET_PREFIX "N, N the "
                       "fdset-id of add-fd", path);
            return -1;
        }
        if (!fdset_dup) {
            error_setg(errp, "'%s': no fd sets in this program", path);
            return -1;
        }
        return fdset_dup(id, flags, errp);
    }
    fd = open(path, flags | O_CLOEXEC, mode);
    if (fd < 0) {
        int err = errno;

        error_setg_errno(errp, err, "cannot open '%s'", path);
        errno = err;            /* callers may retry on EINVAL */
    }
    return fd;
}
