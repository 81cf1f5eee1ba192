/*
 * qemu_open(): open(), and "/dev/fdset/N" for fds passed with add-fd.
 */
#ifndef QEMU_OPEN_H
#define QEMU_OPEN_H

#include "qemu/error.h"

/*
 * Open @path with @flags (O_CLOEXEC added) and @mode; "/dev/fdset/N"
 * duplicates a member of fd set N whose access mode (and O_DIRECT, if
 * asked for) matches @flags.  -1 with @errp set on failure, naming @path.
 */
int qemu_open(const char *path, int flags, mode_t mode, Error **errp);

/* The monitor's fd sets, installed by vmig (a duplicate of a member). */
typedef int QemuFdsetDupFunc(int64_t fdset_id, int flags, Error **errp);
void qemu_open_set_fdset_dup(QemuFdsetDupFunc *fn);

#endif
