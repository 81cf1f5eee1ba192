/*
 * A raw vfio-user client for the library's tests: it sends whatever
 * bytes and fds a test wants (malformed messages included) and reads
 * replies with a timeout, so that a server that hangs fails the test
 * instead of blocking it.
 */
#ifndef VUS_TEST_CLIENT_H
#define VUS_TEST_CLIENT_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "vfio-user/protocol.h"

#define VC_TIMEOUT_SEC 10

typedef struct VcMsg {
    struct vfio_user_header hdr;
    uint8_t *payload;
    size_t len;
    int fds[VFIO_USER_MAX_MAX_FDS];
    size_t nfds;
} VcMsg;

typedef struct VusClient {
    int fd;
    uint16_t next_id;
} VusClient;

/* Connects to @path (retrying briefly while the server starts). */
VusClient *vc_connect(const char *path);
void vc_close(VusClient *c);

/* Sends @len raw bytes with @nfds fds. Returns 0 or -errno. */
int vc_send_raw(VusClient *c, const void *buf, size_t len, const int *fds,
                size_t nfds);
/* Sends a command (header built here); returns the msg_id used. */
uint16_t vc_send(VusClient *c, uint16_t cmd, uint32_t flags,
                 const void *payload, size_t len, const int *fds,
                 size_t nfds);
/* Receives one message (fds included).  0, -ETIMEDOUT or -ECONNRESET. */
int vc_recv(VusClient *c, VcMsg *m);
void vc_msg_free(VcMsg *m);

/*
 * Sends a command and waits for its reply (asserting msg_id, cmd and the
 * reply type).  Returns 0 for a success reply (stored in @reply if not
 * NULL), -error_no for an error reply.
 */
int vc_call(VusClient *c, uint16_t cmd, const void *payload, size_t len,
            const int *fds, size_t nfds, VcMsg *reply);

/* VERSION with @json (NULL: none).  Returns 0 or -error_no. */
int vc_version(VusClient *c, const char *json, VcMsg *reply);
/* Connect + default VERSION. */
VusClient *vc_open(const char *path);

/* DEVICE_FEATURE helpers; return 0 or -error_no. */
int vc_feature(VusClient *c, uint32_t flags, const void *data, size_t len,
               VcMsg *reply);
int vc_set_state(VusClient *c, uint32_t state);
int vc_get_state(VusClient *c, uint32_t *state);
/* MIG_DATA_READ of up to @size bytes into @buf: bytes read or -error_no. */
ssize_t vc_mig_read(VusClient *c, void *buf, uint32_t size);
int vc_mig_write(VusClient *c, const void *buf, uint32_t size);
/* DMA_MAP / DMA_UNMAP */
int vc_dma_map(VusClient *c, uint64_t iova, uint64_t size, uint64_t offset,
               uint32_t flags, int fd);
int vc_dma_unmap(VusClient *c, uint64_t iova, uint64_t size, uint32_t flags);
/* REGION_READ / REGION_WRITE */
int vc_region_read(VusClient *c, uint32_t region, uint64_t offset,
                   void *buf, uint32_t count);
int vc_region_write(VusClient *c, uint32_t region, uint64_t offset,
                    const void *buf, uint32_t count);

/*
 * Serves one server-to-client DMA_READ / DMA_WRITE arriving on @fd
 * against @mem, which stands for IOVA [@base, @base + @size).
 * Returns the command served, or -errno.
 */
int vc_serve_dma(int fd, uint8_t *mem, uint64_t base, uint64_t size);

/* A unique socket path in a fresh temporary directory (g_free both). */
char *vc_tmp_socket_path(char **dir);

#endif
