/*
 * I/O vectors: stepping over what a readv/writev/sendmsg/recvmsg moved.
 */
#ifndef QEMU_IOV_H
#define QEMU_IOV_H

#include "qemu/osdep.h"
#include <sys/uio.h>

/*
 * Drop the first @n bytes from the front of *@iov (advancing *@iov and
 * *@iovcnt, shortening the entry that is cut), then any empty entries:
 * after a read or write of @n bytes, so that a finished transfer ends its
 * loop at *@iovcnt == 0.  @n 0 only skips leading empty entries.
 */
void iov_consume(struct iovec **iov, int *iovcnt, size_t n);

#endif
