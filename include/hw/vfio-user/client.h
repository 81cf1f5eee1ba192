/*
 * vfio-user client commands: typed wrappers over vfio_user_request() for
 * every command vmig sends, with the replies checked.
 *
 * All functions are thread-safe (see proxy.h), take Error **errp last and
 * return false (or a negative value) on failure.  A refusal by the server
 * names the command and the server's errno; the numeric errno is also
 * returned through @server_errno where a caller can act on it.
 */
#ifndef HW_VFIO_USER_CLIENT_H
#define HW_VFIO_USER_CLIENT_H

#include "hw/vfio-user/proxy.h"
#include "hw/vfio/region-caps.h"

/* ---- Device, regions, interrupts (device.c) ---- */

bool vfio_user_get_device_info(VFIOUserProxy *proxy,
                               struct vfio_user_device_info *info,
                               Error **errp);

/*
 * Region @index.  Returns the info followed by its capability chain
 * (g_free it); *@mmap_fd gets the fd to map the region with, or -1.
 */
struct vfio_region_info *vfio_user_get_region_info(VFIOUserProxy *proxy,
                                                   uint32_t index,
                                                   int *mmap_fd,
                                                   Error **errp);

bool vfio_user_get_irq_info(VFIOUserProxy *proxy, uint32_t index,
                            struct vfio_irq_info *info, Error **errp);

/*
 * SET_IRQS.  With VFIO_IRQ_SET_DATA_EVENTFD, @fds holds @count eventfds
 * (-1 detaches one); messages are split to respect the server's fd limit.
 * With DATA_BOOL, @bools holds @count bytes.  DATA_NONE needs neither.
 */
bool vfio_user_set_irqs(VFIOUserProxy *proxy, uint32_t index, uint32_t flags,
                        uint32_t start, uint32_t count, const int *fds,
                        const uint8_t *bools, Error **errp);

/* Region access, split into pieces the server accepts. */
bool vfio_user_region_read(VFIOUserProxy *proxy, uint32_t region,
                           uint64_t offset, void *buf, size_t count,
                           Error **errp);
bool vfio_user_region_write(VFIOUserProxy *proxy, uint32_t region,
                            uint64_t offset, const void *buf, size_t count,
                            Error **errp);

/*
 * Several small writes (each at most 8 bytes) in one REGION_WRITE_MULTI
 * when the server offered write_multiple, else one REGION_WRITE each.
 */
typedef struct VFIOUserWrite {
    uint32_t region;
    uint32_t count;
    uint64_t offset;
    uint8_t data[VFIO_USER_MULTI_DATA];
} VFIOUserWrite;

bool vfio_user_region_write_multi(VFIOUserProxy *proxy,
                                  const VFIOUserWrite *writes, size_t nr,
                                  Error **errp);

/*
 * DMA_MAP [@iova, @iova + @size) with @fd at @offset (fd -1: the server
 * reaches it through DMA_READ / DMA_WRITE to us).  @prot is a mask of
 * VFIO_USER_F_DMA_REGION_READ / _WRITE.
 */
bool vfio_user_dma_map(VFIOUserProxy *proxy, uint64_t iova, uint64_t size,
                       int fd, uint64_t offset, uint32_t prot, Error **errp);
bool vfio_user_dma_unmap(VFIOUserProxy *proxy, uint64_t iova, uint64_t size,
                         Error **errp);
bool vfio_user_dma_unmap_all(VFIOUserProxy *proxy, Error **errp);

bool vfio_user_device_reset(VFIOUserProxy *proxy, Error **errp);

/* ---- Migration and dirty tracking (migration.c) ---- */

/*
 * DEVICE_FEATURE with @flags (feature index | GET/SET/PROBE): sends
 * @data (@len bytes) and fills @out (@out_len bytes) from the reply's
 * data, failing when the server sends back less than @out_len.
 */
bool vfio_user_device_feature(VFIOUserProxy *proxy, uint32_t flags,
                              const void *data, size_t len,
                              void *out, size_t out_len,
                              uint32_t *server_errno, Error **errp);

/* VFIO_MIGRATION_* flags; fails (ENOTTY) for a device without migration. */
bool vfio_user_mig_get_flags(VFIOUserProxy *proxy, uint64_t *flags,
                             Error **errp);
bool vfio_user_mig_get_state(VFIOUserProxy *proxy, uint32_t *state,
                             Error **errp);
/*
 * Ask for @state; the server takes the path.  On failure *@server_errno
 * (may be NULL) says why and the caller reads the state back to see
 * where the device ended up.
 */
bool vfio_user_mig_set_state(VFIOUserProxy *proxy, uint32_t state,
                             uint32_t *server_errno, Error **errp);
const char *vfio_user_mig_state_name(uint32_t state);
/* Parse "stop", "RUNNING", "pre-copy", "pre_copy_p2p", ... */
bool vfio_user_mig_state_parse(const char *str, uint32_t *state);

/*
 * Extensions: both fail with a message naming the missing extension when
 * the server did not offer it (vfio_user_peer_caps() tells in advance).
 */
bool vfio_user_mig_data_size(VFIOUserProxy *proxy, uint64_t *stop_copy_length,
                             Error **errp);
bool vfio_user_mig_precopy_info(VFIOUserProxy *proxy, uint64_t *initial_bytes,
                                uint64_t *dirty_bytes, Error **errp);

/*
 * Read at most @size bytes of migration data (one message: @size is
 * clamped to the server's max_data_xfer_size).  Returns the count, which
 * is below the clamped size when the server has no more for now, or -1.
 */
ssize_t vfio_user_mig_data_read(VFIOUserProxy *proxy, void *buf, size_t size,
                                Error **errp);
/* The largest @size a single vfio_user_mig_data_read() asks for. */
size_t vfio_user_mig_data_chunk(VFIOUserProxy *proxy);
/*
 * Read migration data with several MIG_DATA_READs in flight, handing it in
 * stream order to @sink, until the server has no more for now (a short
 * reply: *@end = true) or @max_bytes were asked for (UINT64_MAX: no
 * limit).  Returns the bytes delivered, or -1 (the sink's error or the
 * connection's).  Replies to requests already in flight when a short one
 * came are still delivered: the stream may have grown meanwhile.
 */
typedef bool VFIOUserMigSink(void *opaque, const void *data, size_t len,
                             Error **errp);
int64_t vfio_user_mig_data_drain(VFIOUserProxy *proxy, uint64_t max_bytes,
                                 VFIOUserMigSink *sink, void *opaque,
                                 bool *end, Error **errp);

/*
 * The same with buffers kept between calls (a VMM drains many times per
 * migration): @read_size bytes per MIG_DATA_READ (0: the default, and at
 * most the server's limit), @depth requests in flight (0: the default,
 * enough for VFIO_USER_MIG_READ_IN_FLIGHT bytes, from 2 to
 * VFIO_USER_MIG_READ_DEPTH requests).  Small reads that stay in the CPU
 * caches on both sides beat big ones, and so does a small total in
 * flight: each request has its own buffer, and a reply landing in a
 * buffer that left the cache costs as much as the copy itself.
 */
#define VFIO_USER_MIG_READ_SIZE (256 * KiB)
#define VFIO_USER_MIG_READ_DEPTH 8
#define VFIO_USER_MIG_READ_IN_FLIGHT (2 * MiB)
typedef struct VFIOUserMigReader VFIOUserMigReader;
VFIOUserMigReader *vfio_user_mig_reader_new(VFIOUserProxy *proxy,
                                            size_t read_size, unsigned depth);
void vfio_user_mig_reader_free(VFIOUserMigReader *r);
int64_t vfio_user_mig_reader_drain(VFIOUserMigReader *r, uint64_t max_bytes,
                                   VFIOUserMigSink *sink, void *opaque,
                                   bool *end, Error **errp);

/*
 * Write migration data, split into messages the server accepts (a
 * message never spans two of @iov's buffers), several in flight.
 */
bool vfio_user_mig_data_writev(VFIOUserProxy *proxy, const struct iovec *iov,
                               unsigned iov_cnt, Error **errp);
bool vfio_user_mig_data_write(VFIOUserProxy *proxy, const void *buf,
                              size_t size, Error **errp);

/*
 * DMA logging.  @nr_ranges 0 logs every mapped DMA region.  @page_size is
 * a hint; the page size the server picked is returned in *@page_size.
 */
bool vfio_user_dma_logging_start(VFIOUserProxy *proxy, uint64_t *page_size,
                                 const struct vfio_device_feature_dma_logging_range *ranges,
                                 uint32_t nr_ranges, Error **errp);
bool vfio_user_dma_logging_stop(VFIOUserProxy *proxy, Error **errp);
/*
 * The dirty bitmap of [@iova, @iova + @length) in pages of @page_size (a
 * power of two), one bit per page, bit n of word n / 64 (u64 words):
 * @bitmap must hold DIV_ROUND_UP(length / page_size, 64) words.  Reading
 * clears the server's log for the range.
 */
bool vfio_user_dma_logging_report(VFIOUserProxy *proxy, uint64_t iova,
                                  uint64_t length, uint64_t page_size,
                                  uint64_t *bitmap, Error **errp);

#endif
