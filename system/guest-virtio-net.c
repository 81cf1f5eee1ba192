/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The "virtio-net" guest program: a virtio 1.x network driver for
 * vfio-user-virtio-net devices (include/hw/virtio/virtio-net-pci.h), so
 * that a migration has real virtqueues, with descriptors in flight in
 * the device, to get right.
 *
 * At first use it finds the virtio capabilities in config space, resets
 * the device and follows the status handshake (ACKNOWLEDGE, DRIVER,
 * features with VERSION_1 and MAC, FEATURES_OK read back, the queues,
 * DRIVER_OK).  Its rings and buffers sit at the top of guest RAM.  Then
 * it keeps sending numbered frames to its own MAC address, which the
 * device loops back to the RX queue, and checks every frame that comes
 * back: sequence number (in order, none lost, none twice), length,
 * addresses and every payload byte, all derived from the number.  The
 * first wrong frame fails the program with what was wrong; x-guest-verify
 * reports it, and also checks the frames the device completed that were
 * not taken yet.
 *
 * The driver's own state (frames sent, completed, received, whether the
 * handshake is done) is migrated with the program; the rings are guest
 * RAM and the device's side of them is the device's migrated context.
 */
#include "qemu/osdep.h"
#include "system/cpus.h"
#include "system/guest.h"
#include "system/runstate.h"
#include "system/ramblock.h"
#include "hw/vfio/vfio-device.h"
#include "hw/virtio/virtio-net-pci.h"

#define TYPE_GUEST_VIRTIO_NET "guest-virtio-net"
#define VNETG_STATE_VERSION 1
#define VNETG_IDLE_NS (10 * 1000 * 1000)
#define VNETG_POLL_NS (200 * 1000)
#define VNETG_MAX_RATE 1000000ULL
#define VNETG_BUF_SIZE 2048
#define VNETG_ETHERTYPE 0x88b5      /* local experimental */
#define VNETG_ETH_HLEN 14
#define VNETG_MIN_FRAME 60
#define VNETG_MAX_FRAME 1514
/* Per queue: descriptor table, available ring, used ring, a page each. */
#define VNETG_QUEUE_AREA (3 * TARGET_PAGE_SIZE)

typedef struct VnetgDevice {
    VFIODevice *vdev;
    unsigned index;
    uint64_t base;              /* its RAM: two queue areas, then buffers */

    /* Where the virtio structures are (found in config space). */
    bool probed;
    uint8_t bar;
    uint32_t common, notify, notify_mult, devcfg;

    /*
     * The driver's state, migrated.  Written by the driving vCPU thread
     * (relaxed atomics where queries read them); plain while paused.
     */
    bool ready;                 /* handshake done, queues live */
    uint64_t sent;              /* frames made available on TX */
    uint64_t tx_done;           /* TX completions taken */
    uint64_t received;          /* RX frames taken: the next expected */
    uint64_t rx_bytes;
    uint8_t mac[6];
    bool failed;
    char *error;
    int64_t next_ns;
} VnetgDevice;

typedef struct GuestVirtioNet {
    GuestProgram parent_obj;

    /* properties */
    uint64_t queue_size;
    uint64_t rate;
    uint64_t seed;
    char *devices;

    GuestBinding binding;
    VnetgDevice *devs;
    unsigned nr_devs;
} GuestVirtioNet;

static GuestVirtioNet *GUEST_VNET(GuestProgram *prog)
{
    return (GuestVirtioNet *)prog;
}

static uint64_t area_size(GuestVirtioNet *g)
{
    return 2 * VNETG_QUEUE_AREA + 2 * g->queue_size * VNETG_BUF_SIZE;
}

static uint64_t q_desc(VnetgDevice *d, unsigned q)
{
    return d->base + q * VNETG_QUEUE_AREA;
}

static uint64_t q_avail(VnetgDevice *d, unsigned q)
{
    return q_desc(d, q) + TARGET_PAGE_SIZE;
}

static uint64_t q_used(VnetgDevice *d, unsigned q)
{
    return q_desc(d, q) + 2 * TARGET_PAGE_SIZE;
}

static uint64_t buf_addr(GuestVirtioNet *g, VnetgDevice *d, unsigned q,
                         unsigned slot)
{
    return d->base + 2 * VNETG_QUEUE_AREA +
           ((uint64_t)q * g->queue_size + slot) * VNETG_BUF_SIZE;
}

static inline uint64_t vnetg_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Frame @k of device @dev (without the virtio-net header); its length. */
static size_t make_frame(GuestVirtioNet *g, VnetgDevice *d, uint64_t k,
                         uint8_t *f)
{
    uint64_t key = vnetg_mix64(g->seed ^ vnetg_mix64(k + 1) ^
                               vnetg_mix64(d->index + 0x200));
    size_t len = VNETG_MIN_FRAME +
                 key % (VNETG_MAX_FRAME - VNETG_MIN_FRAME + 1);

    memcpy(f, d->mac, 6);
    memcpy(f + 6, d->mac, 6);
    f[12] = VNETG_ETHERTYPE >> 8;
    f[13] = VNETG_ETHERTYPE & 0xff;
    for (int i = 0; i < 8; i++) {
        f[VNETG_ETH_HLEN + i] = k >> (8 * i);
    }
    for (size_t i = VNETG_ETH_HLEN + 8; i < len; i++) {
        f[i] = (key >> (8 * (i & 7))) ^ i;
    }
    return len;
}

/* ---- Binding ---- */

static bool vnetg_bind_devices(void *opaque, Error **errp)
{
    GuestVirtioNet *g = opaque;
    g_autoptr(GPtrArray) found = vfio_device_lookup(g->devices, "virtio-net",
                                                    errp);
    RAMBlock *last = NULL;
    uint64_t need;

    if (!found) {
        return false;
    }
    RAMBLOCK_FOREACH(rb) {
        last = rb;
    }
    need = area_size(g) * found->len;
    if (!last || last->size < need) {
        error_setg(errp, "virtio-net: %u devices need %" PRIu64 " bytes at "
                   "the top of RAM, the last RAM block has %" PRIu64,
                   found->len, need, last ? last->size : 0);
        return false;
    }
    g->nr_devs = found->len;
    g->devs = g_new0(VnetgDevice, g->nr_devs);
    for (unsigned i = 0; i < g->nr_devs; i++) {
        g->devs[i].vdev = g_ptr_array_index(found, i);
        g->devs[i].index = i;
        g->devs[i].base = last->gpa + last->size - need + i * area_size(g);
    }
    return true;
}

static bool vnetg_bind(GuestVirtioNet *g, Error **errp)
{
    return guest_binding_bind(&g->binding, vnetg_bind_devices, g, errp);
}

static bool vnetg_setup(GuestProgram *prog, unsigned nr_vcpus, Error **errp)
{
    guest_binding_init(&GUEST_VNET(prog)->binding);
    return true;
}

static void vnetg_cleanup(GuestProgram *prog)
{
    GuestVirtioNet *g = GUEST_VNET(prog);

    for (unsigned i = 0; i < g->nr_devs; i++) {
        g_free(g->devs[i].error);
    }
    g_clear_pointer(&g->devs, g_free);
    g->nr_devs = 0;
    guest_binding_destroy(&g->binding);
}

/* ---- Register access ---- */

static bool reg_write(VnetgDevice *d, uint32_t off, uint64_t val,
                      unsigned size, Error **errp)
{
    uint8_t b[8];

    for (unsigned i = 0; i < size; i++) {
        b[i] = val >> (8 * i);
    }
    return vfio_device_region_write(d->vdev, d->bar, off, b, size, errp);
}

static bool reg_read(VnetgDevice *d, uint32_t off, unsigned size,
                     uint64_t *val, Error **errp)
{
    uint8_t b[8];

    if (!vfio_device_region_read(d->vdev, d->bar, off, b, size, errp)) {
        return false;
    }
    *val = 0;
    for (unsigned i = size; i-- > 0;) {
        *val = *val << 8 | b[i];
    }
    return true;
}

static uint32_t cfg_le32(const uint8_t *c, unsigned off)
{
    return c[off] | c[off + 1] << 8 | c[off + 2] << 16 |
           (uint32_t)c[off + 3] << 24;
}

/* Find the common, notify and device configuration in config space. */
static bool vnetg_probe(VnetgDevice *d, Error **errp)
{
    uint8_t c[sizeof(d->vdev->config)];
    unsigned found = 0, pos;
    int bar = -1;

    vfio_device_config_snapshot(d->vdev, c);
    if ((c[0] | c[1] << 8) != VIRTIO_PCI_VENDOR_ID ||
        (c[2] | c[3] << 8) != VIRTIO_PCI_DEVICE_ID_NET) {
        error_setg(errp, "%04x:%04x is not a modern virtio-net device "
                   "(%04x:%04x)", c[0] | c[1] << 8, c[2] | c[3] << 8,
                   VIRTIO_PCI_VENDOR_ID, VIRTIO_PCI_DEVICE_ID_NET);
        return false;
    }
    pos = c[0x34] & ~3u;
    for (unsigned n = 0; pos >= 0x40 && pos + 16 <= sizeof(c) && n < 48;
         n++, pos = c[pos + 1] & ~3u) {
        uint8_t type = c[pos + 3];

        if (c[pos] != PCI_CAP_ID_VNDR || type < VIRTIO_PCI_CAP_COMMON_CFG ||
            type > VIRTIO_PCI_CAP_DEVICE_CFG) {
            continue;
        }
        if (bar >= 0 && c[pos + 4] != bar) {
            error_setg(errp, "virtio structures in two BARs (%d, %u)", bar,
                       c[pos + 4]);
            return false;
        }
        bar = c[pos + 4];
        switch (type) {
        case VIRTIO_PCI_CAP_COMMON_CFG:
            d->common = cfg_le32(c, pos + 8);
            break;
        case VIRTIO_PCI_CAP_NOTIFY_CFG:
            if (pos + VIRTIO_PCI_NOTIFY_CAP_LEN > sizeof(c)) {
                continue;
            }
            d->notify = cfg_le32(c, pos + 8);
            d->notify_mult = cfg_le32(c, pos + 16);
            break;
        case VIRTIO_PCI_CAP_DEVICE_CFG:
            d->devcfg = cfg_le32(c, pos + 8);
            break;
        default:
            break;
        }
        found |= 1u << type;
    }
    if ((found & 0x16) != 0x16) {
        error_setg(errp, "no common, notify and device configuration "
                   "capabilities (found mask 0x%x)", found);
        return false;
    }
    d->bar = bar;
    d->probed = true;
    return true;
}

static bool set_status(VnetgDevice *d, uint8_t bits, Error **errp)
{
    uint64_t st;

    if (!reg_read(d, d->common + VIRTIO_COMMON_STATUS, 1, &st, errp)) {
        return false;
    }
    return reg_write(d, d->common + VIRTIO_COMMON_STATUS, st | bits, 1, errp);
}

static bool notify(VnetgDevice *d, unsigned q, Error **errp)
{
    return reg_write(d, d->notify + q * d->notify_mult, q, 2, errp);
}

static void ram_put16(uint64_t gpa, uint16_t v)
{
    uint8_t b[2] = { v & 0xff, v >> 8 };

    guest_ram_write(gpa, b, 2);
}

static uint16_t ram_get16(uint64_t gpa)
{
    const uint16_t *p = guest_ram_ptr(gpa, 2);

    /* The device updates it concurrently: one aligned load. */
    return p ? GUINT16_FROM_LE(__atomic_load_n(p, __ATOMIC_ACQUIRE)) : 0;
}

static void put_desc(uint64_t gpa, uint64_t addr, uint32_t len, uint16_t flags)
{
    uint8_t b[VRING_DESC_SIZE] = { 0 };

    for (int i = 0; i < 8; i++) {
        b[i] = addr >> (8 * i);
    }
    for (int i = 0; i < 4; i++) {
        b[8 + i] = len >> (8 * i);
    }
    b[12] = flags;
    guest_ram_write(gpa, b, sizeof(b));
}

/* Reset, handshake, rings; RX filled with every buffer.  vCPU thread. */
static bool vnetg_init(GuestVirtioNet *g, VnetgDevice *d, Error **errp)
{
    uint64_t lo, hi, st, max, want = 1ull << VIRTIO_F_VERSION_1 |
                                     1ull << VIRTIO_NET_F_MAC;
    unsigned qs = g->queue_size;
    g_autofree uint8_t *zero = g_malloc0(area_size(g));

    guest_ram_write(d->base, zero, area_size(g));
    if (!reg_write(d, d->common + VIRTIO_COMMON_STATUS, 0, 1, errp) ||
        !set_status(d, VIRTIO_STATUS_ACKNOWLEDGE, errp) ||
        !set_status(d, VIRTIO_STATUS_DRIVER, errp) ||
        !reg_write(d, d->common + VIRTIO_COMMON_DFSELECT, 0, 4, errp) ||
        !reg_read(d, d->common + VIRTIO_COMMON_DF, 4, &lo, errp) ||
        !reg_write(d, d->common + VIRTIO_COMMON_DFSELECT, 1, 4, errp) ||
        !reg_read(d, d->common + VIRTIO_COMMON_DF, 4, &hi, errp)) {
        return false;
    }
    if (((hi << 32 | lo) & want) != want) {
        error_setg(errp, "the device offers features 0x%" PRIx64 ", the "
                   "driver needs VERSION_1 and MAC", hi << 32 | lo);
        set_status(d, VIRTIO_STATUS_FAILED, NULL);
        return false;
    }
    if (!reg_write(d, d->common + VIRTIO_COMMON_GFSELECT, 0, 4, errp) ||
        !reg_write(d, d->common + VIRTIO_COMMON_GF, (uint32_t)want, 4, errp) ||
        !reg_write(d, d->common + VIRTIO_COMMON_GFSELECT, 1, 4, errp) ||
        !reg_write(d, d->common + VIRTIO_COMMON_GF, want >> 32, 4, errp) ||
        !set_status(d, VIRTIO_STATUS_FEATURES_OK, errp) ||
        !reg_read(d, d->common + VIRTIO_COMMON_STATUS, 1, &st, errp)) {
        return false;
    }
    if (!(st & VIRTIO_STATUS_FEATURES_OK)) {
        error_setg(errp, "the device refused features 0x%" PRIx64, want);
        set_status(d, VIRTIO_STATUS_FAILED, NULL);
        return false;
    }
    for (int i = 0; i < 6; i++) {
        if (!reg_read(d, d->devcfg + VIRTIO_NET_CFG_MAC + i, 1, &lo, errp)) {
            return false;
        }
        d->mac[i] = lo;
    }
    for (unsigned q = 0; q < VNET_NUM_QUEUES; q++) {
        if (!reg_write(d, d->common + VIRTIO_COMMON_Q_SELECT, q, 2, errp) ||
            !reg_read(d, d->common + VIRTIO_COMMON_Q_SIZE, 2, &max, errp)) {
            return false;
        }
        if (max < qs) {
            error_setg(errp, "queue %u holds at most %" PRIu64 " entries, "
                       "queue-size is %u", q, max, qs);
            return false;
        }
        /* The device interrupts are not needed: the driver polls. */
        ram_put16(q_avail(d, q) + VRING_AVAIL_FLAGS,
                  VRING_AVAIL_F_NO_INTERRUPT);
        if (!reg_write(d, d->common + VIRTIO_COMMON_Q_SIZE, qs, 2, errp) ||
            !reg_write(d, d->common + VIRTIO_COMMON_Q_MSIX,
                       VIRTIO_MSI_NO_VECTOR, 2, errp) ||
            !reg_write(d, d->common + VIRTIO_COMMON_Q_DESC, q_desc(d, q), 8,
                       errp) ||
            !reg_write(d, d->common + VIRTIO_COMMON_Q_DRIVER, q_avail(d, q),
                       8, errp) ||
            !reg_write(d, d->common + VIRTIO_COMMON_Q_DEVICE, q_used(d, q),
                       8, errp)) {
            return false;
        }
        for (unsigned j = 0; j < qs; j++) {
            bool rx = q == VIRTIO_NET_RXQ;

            put_desc(q_desc(d, q) + j * VRING_DESC_SIZE,
                     buf_addr(g, d, q, j), rx ? VNETG_BUF_SIZE : 0,
                     rx ? VRING_DESC_F_WRITE : 0);
            if (rx) {
                ram_put16(q_avail(d, q) + VRING_AVAIL_RING + 2 * j, j);
            }
        }
        if (!reg_write(d, d->common + VIRTIO_COMMON_Q_ENABLE, 1, 2, errp)) {
            return false;
        }
    }
    __atomic_thread_fence(__ATOMIC_RELEASE);
    ram_put16(q_avail(d, VIRTIO_NET_RXQ) + VRING_AVAIL_IDX, qs);
    if (!set_status(d, VIRTIO_STATUS_DRIVER_OK, errp) ||
        !notify(d, VIRTIO_NET_RXQ, errp)) {
        return false;
    }
    __atomic_store_n(&d->ready, true, __ATOMIC_RELEASE);
    return true;
}

/* ---- Frames ---- */

/* Whether the frame in RX buffer @id of @len bytes is frame @k; why not. */
static char *check_frame(GuestVirtioNet *g, VnetgDevice *d, uint64_t k,
                         uint32_t id, uint32_t len)
{
    uint8_t want[VNETG_MAX_FRAME];
    size_t flen = make_frame(g, d, k, want);
    const uint8_t *have;
    uint64_t seq = 0;

    if (id >= g->queue_size || len > VNETG_BUF_SIZE ||
        len < VIRTIO_NET_HDR_SIZE + VNETG_ETH_HLEN + 8) {
        return g_strdup_printf("RX completion of buffer %u with %u bytes, "
                               "impossible (expected frame %" PRIu64 ")", id,
                               len, k);
    }
    have = guest_ram_ptr(buf_addr(g, d, VIRTIO_NET_RXQ, id), VNETG_BUF_SIZE);
    if (!have) {
        return g_strdup("RX buffer is not RAM");
    }
    have += VIRTIO_NET_HDR_SIZE;
    for (int i = 0; i < 8; i++) {
        seq |= (uint64_t)have[VNETG_ETH_HLEN + i] << (8 * i);
    }
    if (seq != k) {
        return g_strdup_printf("frame %" PRIu64 " arrived where frame %"
                               PRIu64 " was due: %s", seq, k,
                               seq > k ? "frames were lost" :
                               "a frame came twice or out of order");
    }
    if (len - VIRTIO_NET_HDR_SIZE != flen || memcmp(have, want, flen)) {
        return g_strdup_printf("frame %" PRIu64 " arrived damaged (%u bytes, "
                               "%zu expected)", k,
                               len - VIRTIO_NET_HDR_SIZE, flen);
    }
    return NULL;
}

static void vnetg_fail(VnetgDevice *d, char *why)
{
    if (!d->failed) {
        d->error = g_strdup_printf("%s: %s", d->vdev->name, why);
        __atomic_store_n(&d->failed, true, __ATOMIC_RELEASE);
    }
    g_free(why);
}

/* The used entry @n of queue @q: id and length. */
static void used_elem(VnetgDevice *d, unsigned q, unsigned qs, uint64_t n,
                      uint32_t *id, uint32_t *len)
{
    uint8_t e[VRING_USED_ELEM_SIZE];

    guest_ram_read(q_used(d, q) + VRING_USED_RING +
                   (n % qs) * VRING_USED_ELEM_SIZE, e, sizeof(e));
    *id = e[0] | e[1] << 8 | e[2] << 16 | (uint32_t)e[3] << 24;
    *len = e[4] | e[5] << 8 | e[6] << 16 | (uint32_t)e[7] << 24;
}

/* Take the frames that came back, give their buffers again.  */
static bool take_rx(GuestVirtioNet *g, VnetgDevice *d, Error **errp)
{
    unsigned qs = g->queue_size;
    uint16_t used = ram_get16(q_used(d, VIRTIO_NET_RXQ) + VRING_USED_IDX);
    uint16_t n = used - (uint16_t)d->received;
    uint64_t rx = d->received;

    if (n > qs) {
        vnetg_fail(d, g_strdup_printf("RX used index %u is %u ahead of the "
                                      "%" PRIu64 " frames taken", used, n, rx));
        return true;
    }
    for (uint16_t i = 0; i < n; i++, rx++) {
        uint32_t id, len;
        char *why;

        used_elem(d, VIRTIO_NET_RXQ, qs, rx, &id, &len);
        why = check_frame(g, d, rx, id, len);
        if (why) {
            vnetg_fail(d, why);
            return true;
        }
        ram_put16(q_avail(d, VIRTIO_NET_RXQ) + VRING_AVAIL_RING +
                  2 * ((qs + rx) % qs), id);
        __atomic_store_n(&d->rx_bytes, d->rx_bytes + len, __ATOMIC_RELAXED);
        __atomic_store_n(&d->received, rx + 1, __ATOMIC_RELAXED);
    }
    if (!n) {
        return true;
    }
    __atomic_thread_fence(__ATOMIC_RELEASE);
    ram_put16(q_avail(d, VIRTIO_NET_RXQ) + VRING_AVAIL_IDX, qs + rx);
    return notify(d, VIRTIO_NET_RXQ, errp);
}

static void take_tx(GuestVirtioNet *g, VnetgDevice *d)
{
    unsigned qs = g->queue_size;
    uint16_t used = ram_get16(q_used(d, VIRTIO_NET_TXQ) + VRING_USED_IDX);
    uint16_t n = used - (uint16_t)d->tx_done;

    if (n > d->sent - d->tx_done) {
        vnetg_fail(d, g_strdup_printf("TX used index %u: %u completions for "
                                      "%" PRIu64 " frames outstanding", used,
                                      n, d->sent - d->tx_done));
        return;
    }
    for (uint16_t i = 0; i < n; i++) {
        uint32_t id, len;

        used_elem(d, VIRTIO_NET_TXQ, qs, d->tx_done, &id, &len);
        if (id != d->tx_done % qs) {
            vnetg_fail(d, g_strdup_printf("TX completion of descriptor %u "
                                          "where %" PRIu64 " was due", id,
                                          d->tx_done % qs));
            return;
        }
        d->tx_done++;
    }
}

static bool send_frame(GuestVirtioNet *g, VnetgDevice *d, Error **errp)
{
    unsigned qs = g->queue_size;
    unsigned slot = d->sent % qs;
    uint8_t f[VIRTIO_NET_HDR_SIZE + VNETG_MAX_FRAME] = { 0 };
    size_t len = VIRTIO_NET_HDR_SIZE +
                 make_frame(g, d, d->sent, f + VIRTIO_NET_HDR_SIZE);

    guest_ram_write(buf_addr(g, d, VIRTIO_NET_TXQ, slot), f, len);
    put_desc(q_desc(d, VIRTIO_NET_TXQ) + slot * VRING_DESC_SIZE,
             buf_addr(g, d, VIRTIO_NET_TXQ, slot), len, 0);
    ram_put16(q_avail(d, VIRTIO_NET_TXQ) + VRING_AVAIL_RING + 2 * slot, slot);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    ram_put16(q_avail(d, VIRTIO_NET_TXQ) + VRING_AVAIL_IDX, d->sent + 1);
    __atomic_store_n(&d->sent, d->sent + 1, __ATOMIC_RELAXED);
    return notify(d, VIRTIO_NET_TXQ, errp);
}

/* One step of device @d; false when there was nothing to do. */
static bool vnetg_drive(GuestVirtioNet *g, VnetgDevice *d, int64_t now,
                        int64_t *wait)
{
    uint64_t rate = __atomic_load_n(&g->rate, __ATOMIC_RELAXED);
    Error *err = NULL;
    bool worked = false;

    if ((!d->probed && !vnetg_probe(d, &err)) ||
        (!d->ready && !vnetg_init(g, d, &err))) {
        goto fail;
    }
    if (!take_rx(g, d, &err)) {
        goto fail;
    }
    take_tx(g, d);
    if (d->failed) {
        return true;
    }
    if (d->sent - d->tx_done < g->queue_size &&
        guest_pace_due(d->next_ns, now, rate, wait)) {
        if (!send_frame(g, d, &err)) {
            goto fail;
        }
        guest_pace_next(&d->next_ns, now, MIN(rate, VNETG_MAX_RATE),
                        VNETG_IDLE_NS);
        worked = true;
    }
    return worked;
fail:
    vnetg_fail(d, g_strdup(error_get_pretty(err)));
    error_free(err);
    return true;
}

static void vnetg_step(GuestProgram *prog, unsigned cpu)
{
    GuestVirtioNet *g = GUEST_VNET(prog);
    int64_t now = g_get_monotonic_time() * 1000, wait = VNETG_POLL_NS;
    bool worked = false;

    if (!vnetg_bind(g, NULL)) {
        vcpu_sleep_ns(cpu, VNETG_IDLE_NS);
        return;
    }
    for (unsigned i = cpu; i < g->nr_devs; i += prog->nr_vcpus) {
        VnetgDevice *d = &g->devs[i];

        if (!__atomic_load_n(&d->failed, __ATOMIC_ACQUIRE)) {
            worked |= vnetg_drive(g, d, now, &wait);
        }
    }
    if (!worked) {
        vcpu_sleep_ns(cpu, MAX(MIN(wait, VNETG_POLL_NS), 50000));
    }
}

/* ---- Checks, state ---- */

static void vnetg_claim_ram(GuestProgram *prog, GArray *ranges)
{
    GuestVirtioNet *g = GUEST_VNET(prog);

    if (!vnetg_bind(g, NULL)) {
        return;
    }
    for (unsigned i = 0; i < g->nr_devs; i++) {
        GuestRange r = { .gpa = g->devs[i].base, .len = area_size(g) };

        g_array_append_val(ranges, r);
    }
}

/* Frames the device completed and the driver has not taken yet. */
static void verify_pending_rx(GuestVirtioNet *g, VnetgDevice *d,
                              GuestVerifyResult *res)
{
    unsigned qs = g->queue_size;
    uint16_t n = ram_get16(q_used(d, VIRTIO_NET_RXQ) + VRING_USED_IDX) -
                 (uint16_t)d->received;

    res->pages_checked++;
    if (n > qs || d->received + n > d->sent) {
        guest_verify_report_bad(res, d->base, "virtio-net: %s: %u frames "
                                "completed, with %" PRIu64 " sent and %"
                                PRIu64 " taken", d->vdev->name, n, d->sent,
                                d->received);
        return;
    }
    for (uint16_t i = 0; i < n; i++) {
        uint32_t id, len;
        g_autofree char *why = NULL;

        used_elem(d, VIRTIO_NET_RXQ, qs, d->received + i, &id, &len);
        why = check_frame(g, d, d->received + i, id, len);
        if (why) {
            guest_verify_report_bad(res, d->base, "virtio-net: %s: %s",
                                    d->vdev->name, why);
            return;
        }
    }
}

static void verify_device_status(VnetgDevice *d, GuestVerifyResult *res)
{
    Error *err = NULL;
    uint64_t st;

    if (!reg_read(d, d->common + VIRTIO_COMMON_STATUS, 1, &st, &err)) {
        guest_verify_report_unchecked(res, "%s: device status (%s)",
                                      d->vdev->name, error_get_pretty(err));
        error_free(err);
    } else if (st & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED) ||
               !(st & VIRTIO_STATUS_DRIVER_OK)) {
        guest_verify_report_bad(res, d->base, "virtio-net: %s: device status "
                                "0x%02" PRIx64 "%s", d->vdev->name, st,
                                st & VIRTIO_STATUS_NEEDS_RESET ?
                                " (NEEDS_RESET)" : "");
    }
}

static void vnetg_verify(GuestProgram *prog, GuestVerifyResult *res)
{
    GuestVirtioNet *g = GUEST_VNET(prog);
    Error *err = NULL;

    if (!vnetg_bind(g, &err)) {
        guest_verify_report_bad(res, 0, "%s", error_get_pretty(err));
        error_free(err);
        return;
    }
    for (unsigned i = 0; i < g->nr_devs; i++) {
        VnetgDevice *d = &g->devs[i];

        if (d->failed) {
            guest_verify_report_bad(res, d->base, "virtio-net: %s", d->error);
            continue;
        }
        if (!d->ready) {
            continue;
        }
        verify_pending_rx(g, d, res);
        if (d->probed) {
            verify_device_status(d, res);
        }
    }
}

static void vnetg_state_save(GuestProgram *prog, GByteArray *out)
{
    GuestVirtioNet *g = GUEST_VNET(prog);

    vnetg_bind(g, NULL);
    guest_state_put_header(out, &(GuestStateHeader) {
        .version = VNETG_STATE_VERSION, .count = g->nr_devs,
        .size = g->queue_size, .seed = g->seed,
    });
    for (unsigned i = 0; i < g->nr_devs; i++) {
        VnetgDevice *d = &g->devs[i];
        uint64_t mac = 0;

        for (int j = 0; j < 6; j++) {
            mac = mac << 8 | d->mac[j];
        }
        guest_state_put_be32(out, d->ready | d->failed << 1);
        guest_state_put_be64(out, d->sent);
        guest_state_put_be64(out, d->tx_done);
        guest_state_put_be64(out, d->received);
        guest_state_put_be64(out, d->rx_bytes);
        guest_state_put_be64(out, mac);
    }
}

static bool vnetg_state_load(GuestProgram *prog, const uint8_t *buf,
                             size_t len, Error **errp)
{
    GuestVirtioNet *g = GUEST_VNET(prog);
    GuestStateReader r = { .buf = buf, .len = len,
                           .what = "virtio-net state", .errp = errp };
    GuestStateHeader h;
    g_autofree VnetgDevice *in = NULL;

    if (!guest_state_get_header(&r, VNETG_STATE_VERSION, &h) ||
        !vnetg_bind(g, errp)) {
        return false;
    }
    if (h.count != g->nr_devs || h.size != g->queue_size || h.seed != g->seed) {
        error_setg(errp, "virtio-net state: %u devices, queue size %" PRIu64
                   ", seed %" PRIu64 "; this VM has %u devices, queue size %"
                   PRIu64 ", seed %" PRIu64, h.count, h.size, h.seed,
                   g->nr_devs, g->queue_size, g->seed);
        return false;
    }
    in = g_new0(VnetgDevice, g->nr_devs);
    for (unsigned i = 0; i < g->nr_devs; i++) {
        uint32_t flags;
        uint64_t mac;

        if (!guest_state_get_be32(&r, &flags) ||
            !guest_state_get_be64(&r, &in[i].sent) ||
            !guest_state_get_be64(&r, &in[i].tx_done) ||
            !guest_state_get_be64(&r, &in[i].received) ||
            !guest_state_get_be64(&r, &in[i].rx_bytes) ||
            !guest_state_get_be64(&r, &mac)) {
            return false;
        }
        if (flags > 3 || in[i].tx_done > in[i].sent ||
            in[i].received > in[i].sent ||
            in[i].sent - in[i].tx_done > g->queue_size) {
            error_setg(errp, "virtio-net state: device %u has impossible "
                       "counters", i);
            return false;
        }
        in[i].ready = flags & 1;
        in[i].failed = flags & 2;
        for (int j = 0; j < 6; j++) {
            in[i].mac[j] = mac >> (8 * (5 - j));
        }
    }
    if (!guest_state_reader_done(&r)) {
        return false;
    }
    for (unsigned i = 0; i < g->nr_devs; i++) {
        VnetgDevice *d = &g->devs[i];

        d->ready = in[i].ready;
        d->sent = in[i].sent;
        d->tx_done = in[i].tx_done;
        d->received = in[i].received;
        d->rx_bytes = in[i].rx_bytes;
        memcpy(d->mac, in[i].mac, 6);
        if (in[i].failed && !d->failed) {
            d->failed = true;
            d->error = g_strdup_printf("%s: failed on the source",
                                       d->vdev->name);
        }
        d->next_ns = 0;
    }
    return true;
}

static void vnetg_query(GuestProgram *prog, GuestProgramStats *stats)
{
    GuestVirtioNet *g = GUEST_VNET(prog);
    uint64_t frames = 0, bytes = 0;

    if (!guest_binding_ready(&g->binding)) {
        return;
    }
    for (unsigned i = 0; i < g->nr_devs; i++) {
        frames += __atomic_load_n(&g->devs[i].received, __ATOMIC_RELAXED);
        bytes += __atomic_load_n(&g->devs[i].rx_bytes, __ATOMIC_RELAXED);
    }
    /* A "page" here is a frame checked on its way back. */
    stats->passes = frames / g->queue_size;
    stats->pages_written = frames;
    stats->bytes_written = bytes;
}

static const GuestProgramOps vnetg_ops = {
    .setup = vnetg_setup,
    .cleanup = vnetg_cleanup,
    .step = vnetg_step,
    .claim_ram = vnetg_claim_ram,
    .verify = vnetg_verify,
    .state_save = vnetg_state_save,
    .state_load = vnetg_state_load,
    .query = vnetg_query,
};

static bool vnetg_realize(Object *obj, Error **errp)
{
    GuestVirtioNet *g = (GuestVirtioNet *)obj;

    if (g->queue_size < 2 || g->queue_size > VNET_QUEUE_MAX ||
        (g->queue_size & (g->queue_size - 1))) {
        error_setg(errp, "queue-size=%" PRIu64 ": expected a power of two "
                   "from 2 to %u", g->queue_size, VNET_QUEUE_MAX);
        return false;
    }
    g->parent_obj.ops = &vnetg_ops;
    return true;
}

static bool vnetg_check_rate(Object *obj, const Property *prop,
                             const PropValue *val, Error **errp)
{
    if (val->u64 > VNETG_MAX_RATE) {
        error_setg(errp, "%s=%" PRIu64 " is too fast: at most %llu frames "
                   "per second; use 0 for unlimited", prop->name, val->u64,
                   VNETG_MAX_RATE);
        return false;
    }
    return true;
}

static const Property vnetg_props[] = {
    DEFINE_PROP("queue-size", PROP_TYPE_U64, GuestVirtioNet, queue_size, "64",
                "entries of the RX and TX queues (a power of two up to 256); "
                "each entry has a 2 KiB buffer at the top of RAM"),
    DEFINE_PROP_RT_CHECK("rate", PROP_TYPE_U64, GuestVirtioNet, rate, "5000",
                         "frames per second per device (0: as fast as the "
                         "TX queue takes them; changeable with qom-set)",
                         vnetg_check_rate),
    DEFINE_PROP("seed", PROP_TYPE_U64, GuestVirtioNet, seed, "0",
                "varies the frame lengths and contents"),
    DEFINE_PROP("devices", PROP_TYPE_STR, GuestVirtioNet, devices, NULL,
                "ids of the devices to drive, separated by ':' (default: "
                "every VFIO device)"),
    { 0 }
};

static const ObjectClass vnetg_class = {
    .name = TYPE_GUEST_VIRTIO_NET,
    .parent = TYPE_GUEST_PROGRAM,
    .desc = "drives vfio-user-virtio-net devices: numbered frames sent on "
            "TX come back on RX, each checked (order, content, none lost "
            "or repeated)",
    .instance_size = sizeof(GuestVirtioNet),
    .props = vnetg_props,
    .realize = vnetg_realize,
    .finalize = guest_program_finalize,
};

static void vnetg_register_types(void)
{
    type_register(&vnetg_class);
}
type_init(vnetg_register_types)
