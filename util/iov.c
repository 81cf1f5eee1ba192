/*
 * I/O vectors.  See include/qemu/iov.h.
 */
#include "qemu/osdep.h"
#include "qemu/iov.h"

void iov_consume(struct iovec **iov, int *iovcnt, size_t n)
{
    while (n > 0 && *iovcnt > 0) {
        if (n >= (*iov)->iov_len) {
            n -= (*iov)->iov_len;
            (*iov)++;
            (*iovcnt)--;
        } else {
            (*iov)->iov_base = (char *)(*iov)->iov_base + n;
            (*iov)->iov_len -= n;
            n = 0;
        }
    }
    while (*iovcnt > 0 && (*iov)->iov_len == 0) {
        (*iov)++;
        (*iovcnt)--;
    }
}
