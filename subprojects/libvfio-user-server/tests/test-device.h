/*
 * A small device built on the library for its tests: BAR0 registers,
 * a mappable BAR2 (memfd, two sparse areas), INTx/MSI/MSI-X, and a
 * migration stream over a state blob with a checksum, recording every
 * FSM arc it is asked to take.  The server runs on the library's own
 * service thread, on a real UNIX socket.
 */
#ifndef VUS_TEST_DEVICE_H
#define VUS_TEST_DEVICE_H

#include <glib.h>

#include "vfio-user-server/libvus.h"

#define TD_BAR0_SIZE   4096
#define TD_BAR2_SIZE   (64 * 1024)
#define TD_STATE_SIZE  (48 * 1024 + 123)
#define TD_MSIX_VECS   4
/* Writing an IOVA here makes the device read 8 bytes from it (inside the
 * region callback) into TD_REG_DMA_VALUE. */
#define TD_REG_DMA_IOVA  0xff0
#define TD_REG_DMA_VALUE 0xff8

typedef struct TestArc {
    uint32_t from, to;
} TestArc;

typedef struct TestDev {
    VusCtx *ctx;
    char *dir;
    char *path;
    uint64_t mig_flags;
    int bar2_fd;

    GMutex lock;                /* everything below */
    uint8_t bar0[TD_BAR0_SIZE];
    GArray *arcs;               /* TestArc */
    bool accept_any_stream;     /* RESUMING -> STOP does not validate */
    uint32_t fail_from, fail_to;
    int fail_errno;             /* 0: no failure injected */
    int resets;
    int maps, unmaps;
    int clients_seen;
    bool connected;
    GString *log;               /* every line the library logged */

    /* Source side of the stream. */
    uint8_t state[TD_STATE_SIZE];
    size_t read_pos;            /* into state, then the checksum */
    uint8_t zc_buf[TD_STATE_SIZE + 8];  /* what read_data_zc points into */
    uint64_t dirty_bytes;
    /* Destination side. */
    GByteArray *incoming;
    bool loaded;
} TestDev;

/* Creates, realizes and starts a device with migration flags @mig_flags
 * (0: not migratable). */
TestDev *td_new(uint64_t mig_flags);
/* Same, with @max_xfer as the server's max_data_xfer_size (0: default)
 * and, with @zero_copy, the stream served through read_data_zc. */
TestDev *td_new_full(uint64_t mig_flags, uint32_t max_xfer, bool zero_copy);
/* Same, with per-client limits set before realize. */
TestDev *td_new_limits(uint64_t mig_flags, const VusClientLimits *limits);
void td_free(TestDev *td);
/*
 * Waits (bounded by VC_TIMEOUT_SEC) until the library logged a line
 * containing @needle; true if it did.
 */
bool td_wait_log(TestDev *td, const char *needle);
/* Clients the library has accepted and served so far. */
int td_clients_seen(TestDev *td);

/* Arcs recorded since the last call; the caller g_array_unrefs. */
GArray *td_take_arcs(TestDev *td);
/* Waits (bounded) until the library finished dropping the client. */
void td_wait_disconnected(TestDev *td);
void td_fail_arc(TestDev *td, uint32_t from, uint32_t to, int err);
/* The byte at @i of the state blob a fresh device starts with. */
uint8_t td_state_byte(size_t i);
/* Checksum of the stream (FNV-1a 64 over the state). */
uint64_t td_checksum(const uint8_t *p, size_t len);

#endif
