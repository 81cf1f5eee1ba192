/*
 * The "dma" guest program: drives vfio-user-dma devices (register map in
 * include/hw/misc/vfio-user-dma-regs.h) the way a guest driver would, so that
 * a migration has device DMA into guest RAM to get right.
 *
 * Each device gets buf bytes at the top of guest RAM: a staging page and
 * slots.  Round trip k of a device:
 *   1. the vCPU writes page pattern(k) into the staging page (through
 *      the guest memory API, so the software dirty log sees it);
 *   2. the device DMAs the staging page into the first page of its
 *      memory (guest RAM -> device);
 *   3. the device DMAs that page into slot k % slots (device -> guest
 *      RAM: only the device's DMA log sees this write).
 * Every DMA is programmed through BAR0 and completes with the device's
 * interrupt (MSI-X, MSI or INTx through an eventfd), polled as a fallback.
 *
 * The check is exact: from the state (round trips done, which pattern
 * is staged and which is in device memory) every slot's pattern is
 * known, so a slot whose last write was lost in a migration is caught;
 * the device's own content check (VDMA_REG_CHECK) and its first page
 * show that device memory arrived intact.
 *
 * Devices are looked up at first use (they are created after the guest
 * programs are set up): devices=ID1:ID2, or every VFIO device.
 */
#include "qemu/osdep.h"
#include "system/cpus.h"
#include "system/guest.h"
#include "system/runstate.h"
#include "system/ramblock.h"
#include "hw/vfio/vfio-device.h"
#include "hw/misc/vfio-user-dma-regs.h"

#define TYPE_GUEST_DMA "guest-dma"
#define DMA_STATE_VERSION 1
#define DMA_NONE UINT64_MAX
#define DMA_IDLE_NS (10 * 1000 * 1000)
/* A round trip per nanosecond is already far beyond any device. */
#define DMA_MAX_RATE 1000000000ULL
#define DMA_WAIT_STEP_MS 100
#define DMA_WAIT_TOTAL_MS 5000
#define DMA_PAGE_WORDS (TARGET_PAGE_SIZE / sizeof(uint64_t))
#define DMA_SCRATCH_OFFSET 0

typedef struct DmaDevice {
    VFIODevice *vdev;
    unsigned index;
    uint64_t ram_base;          /* staging page; slots follow */
    /*
     * Written by the driving vCPU thread (relaxed atomics where queries
     * read them); plain while the vCPUs are paused.
     */
    uint64_t rounds;            /* completed round trips */
    uint64_t staged;            /* pattern in the staging page, or NONE */
    uint64_t scratched;         /* pattern in device memory, or NONE */
    bool probed;                /* registers identified the device */
    bool failed;
    char *error;                /* why it failed (owned) */
    int64_t next_ns;            /* rate schedule */
} DmaDevice;

typedef struct GuestDma {
    GuestProgram parent_obj;

    /* properties */
    uint64_t buf;
    uint64_t rate;
    uint64_t seed;
    char *devices;

    /* bound at first use */
    GuestBinding binding;
    DmaDevice *devs;
    unsigned nr_devs;
    uint64_t nr_slots;
} GuestDma;

static GuestDma *GUEST_DMA(GuestProgram *prog)
{
    return (GuestDma *)prog;
}

static inline uint64_t dma_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Page of round trip @k of device @dev: k + 1, dev, then a pattern. */
static void dma_pattern(uint64_t *page, uint64_t seed, unsigned dev,
                        uint64_t k)
{
    uint64_t key = dma_mix64(seed ^ dma_mix64(k + 1) ^ dma_mix64(dev + 0x100));

    page[0] = k + 1;
    page[1] = dev;
    for (unsigned i = 2; i < DMA_PAGE_WORDS; i++) {
        page[i] = key ^ (i * VDMA_WORD_STRIDE);
    }
}

/* ---- Binding to the devices ---- */

static bool dma_bind_devices(void *opaque, Error **errp)
{
    GuestDma *g = opaque;
    GPtrArray *found = vfio_device_lookup(g->devices, "dma", errp);
    RAMBlock *last = NULL;
    uint64_t need, start;
    bool ok = false;

    if (!found) {
        return false;
    }
    RAMBLOCK_FOREACH(rb) {
        last = rb;
    }
    need = g->buf * found->len;
    if (!last || last->size < need) {
        error_setg(errp, "dma: %u devices need %" PRIu64 " bytes at the top "
                   "of RAM, the last RAM block has %" PRIu64, found->len,
                   need, last ? last->size : 0);
        goto out;
    }
    start = last->gpa + last->size - need;
    g->nr_slots = g->buf / TARGET_PAGE_SIZE - 1;
    g->nr_devs = found->len;
    g->devs = g_new0(DmaDevice, g->nr_devs);
    for (unsigned i = 0; i < g->nr_devs; i++) {
        DmaDevice *d = &g->devs[i];

        d->vdev = g_ptr_array_index(found, i);
        d->index = i;
        d->ram_base = start + i * g->buf;
        d->staged = d->scratched = DMA_NONE;
    }
    ok = true;
out:
    g_ptr_array_free(found, TRUE);
    return ok;
}

static bool dma_bind(GuestDma *g, Error **errp)
{
    return guest_binding_bind(&g->binding, dma_bind_devices, g, errp);
}

static bool dma_setup(GuestProgram *prog, unsigned nr_vcpus, Error **errp)
{
    GuestDma *g = GUEST_DMA(prog);

    guest_binding_init(&g->binding);
    return true;
}

/* At start: no device to drive, or no room for the buffers, is refused. */
static bool dma_bind_at_start(GuestProgram *prog, Error **errp)
{
    return dma_bind(GUEST_DMA(prog), errp);
}

static void dma_cleanup(GuestProgram *prog)
{
    GuestDma *g = GUEST_DMA(prog);

    for (unsigned i = 0; i < g->nr_devs; i++) {
        g_free(g->devs[i].error);
    }
    g_clear_pointer(&g->devs, g_free);
    g->nr_devs = 0;
    guest_binding_destroy(&g->binding);
}

/* ---- Driving a device (its vCPU thread) ---- */

static void dma_fail(DmaDevice *d, Error *err)
{
    if (!d->failed) {
        d->error = g_strdup_printf("%s: %s", d->vdev->name,
                                   error_get_pretty(err));
        __atomic_store_n(&d->failed, true, __ATOMIC_RELEASE);
    }
    error_free(err);
}

static bool dma_probe(DmaDevice *d, Error **errp)
{
    uint32_t id;

    if (!vfio_device_read32(d->vdev, VDMA_REGS_BAR, VDMA_REG_ID, &id, errp)) {
        return false;
    }
    if (id != VDMA_ID_VALUE) {
        error_setg(errp, "not a vfio-user-dma device (ID register 0x%08x)",
                   id);
        return false;
    }
    d->probed = true;
    return true;
}

/*
 * One transfer.  Returns 1 when done, 0 when the device refused for now
 * (stopped: EAGAIN), -1 on failure.
 */
static int dma_transfer(DmaDevice *d, uint64_t src, uint64_t dst,
                        uint32_t ctrl, Error **errp)
{
    VFIODevice *vdev = d->vdev;
    uint32_t status = 0, error_no = 0;
    int waited = 0;

    ctrl |= vdev->irq_fd >= 0 ? VDMA_CTRL_IRQ_ENABLE : 0;
    if (!vfio_device_write64(vdev, VDMA_REGS_BAR, VDMA_REG_SRC, src, errp) ||
        !vfio_device_write64(vdev, VDMA_REGS_BAR, VDMA_REG_DST, dst, errp) ||
        !vfio_device_write64(vdev, VDMA_REGS_BAR, VDMA_REG_LEN,
                             TARGET_PAGE_SIZE, errp) ||
        !vfio_device_write32(vdev, VDMA_REGS_BAR, VDMA_REG_CTRL, ctrl, errp) ||
        !vfio_device_write32(vdev, VDMA_REGS_BAR, VDMA_REG_DOORBELL,
                             VDMA_DOORBELL_GO, errp)) {
        return -1;
    }
    for (;;) {
        if (vdev->irq_fd >= 0 &&
            vfio_device_irq_wait(vdev, DMA_WAIT_STEP_MS, errp) < 0) {
            return -1;
        }
        if (!vfio_device_read32(vdev, VDMA_REGS_BAR, VDMA_REG_STATUS,
                                &status, errp)) {
            return -1;
        }
        if (status & (VDMA_STATUS_DONE | VDMA_STATUS_ERROR)) {
            break;
        }
        waited += DMA_WAIT_STEP_MS;
        if (waited >= DMA_WAIT_TOTAL_MS) {
            error_setg(errp, "a DMA did not complete within %d ms (status "
                       "0x%x)", DMA_WAIT_TOTAL_MS, status);
            return -1;
        }
        if (vdev->irq_fd < 0) {
            g_usleep(1000);
        }
    }
    if (status & VDMA_STATUS_ERROR &&
        !vfio_device_read32(vdev, VDMA_REGS_BAR, VDMA_REG_ERROR, &error_no,
                            errp)) {
        return -1;
    }
    if (!vfio_device_write32(vdev, VDMA_REGS_BAR, VDMA_REG_STATUS,
                             VDMA_STATUS_DONE | VDMA_STATUS_ERROR |
                             VDMA_STATUS_IRQ, errp)) {
        return -1;
    }
    if (status & VDMA_STATUS_ERROR) {
        if (error_no == EAGAIN) {
            return 0;
        }
        error_setg(errp, "DMA 0x%" PRIx64 " -> 0x%" PRIx64 " failed: %s",
                   src, dst, g_strerror(error_no));
        return -1;
    }
    return 1;
}

static void dma_round_trip(GuestDma *g, DmaDevice *d)
{
    uint64_t k = d->rounds;
    uint64_t slot = d->ram_base + (1 + k % g->nr_slots) * TARGET_PAGE_SIZE;
    g_autofree uint64_t *page = g_new(uint64_t, DMA_PAGE_WORDS);
    Error *err = NULL;
    int ret;

    if (!d->probed && !dma_probe(d, &err)) {
        dma_fail(d, err);
        return;
    }
    dma_pattern(page, g->seed, d->index, k);
    if (!guest_ram_write(d->ram_base, page, TARGET_PAGE_SIZE)) {
        error_setg(&err, "staging page 0x%" PRIx64 " is not RAM",
                   d->ram_base);
        dma_fail(d, err);
        return;
    }
    __atomic_store_n(&d->staged, k, __ATOMIC_RELAXED);

    ret = dma_transfer(d, d->ram_base, DMA_SCRATCH_OFFSET, 0, &err);
    if (ret <= 0) {
        goto out;
    }
    __atomic_store_n(&d->scratched, k, __ATOMIC_RELAXED);
    ret = dma_transfer(d, DMA_SCRATCH_OFFSET, slot, VDMA_CTRL_DIR_TO_RAM,
                       &err);
    if (ret <= 0) {
        goto out;
    }
    __atomic_store_n(&d->rounds, k + 1, __ATOMIC_RELAXED);
out:
    if (ret < 0) {
        dma_fail(d, err);
    }
}

static void dma_step(GuestProgram *prog, unsigned cpu)
{
    GuestDma *g = GUEST_DMA(prog);
    int64_t now = g_get_monotonic_time() * 1000, wait = DMA_IDLE_NS;
    bool worked = false;

    if (!dma_bind(g, NULL)) {
        vcpu_sleep_ns(cpu, DMA_IDLE_NS);
        return;
    }
    for (unsigned i = cpu; i < g->nr_devs; i += prog->nr_vcpus) {
        DmaDevice *d = &g->devs[i];
        uint64_t rate = __atomic_load_n(&g->rate, __ATOMIC_RELAXED);

        if (__atomic_load_n(&d->failed, __ATOMIC_ACQUIRE)) {
            continue;
        }
        if (!guest_pace_due(d->next_ns, now, rate, &wait)) {
            continue;
        }
        dma_round_trip(g, d);
        worked = true;
        guest_pace_next(&d->next_ns, now, MIN(rate, DMA_MAX_RATE),
                        DMA_IDLE_NS);
    }
    if (!worked) {
        vcpu_sleep_ns(cpu, MAX(wait, 100000));
    }
}

/* ---- Checks, state ---- */

static void dma_claim_ram(GuestProgram *prog, GArray *ranges)
{
    GuestDma *g = GUEST_DMA(prog);

    if (!dma_bind(g, NULL)) {
        return;
    }
    for (unsigned i = 0; i < g->nr_devs; i++) {
        GuestRange r = { .gpa = g->devs[i].ram_base, .len = g->buf };

        g_array_append_val(ranges, r);
    }
}

static void dma_verify_page(GuestDma *g, DmaDevice *d, GuestVerifyResult *res,
                            uint64_t gpa, uint64_t k, const char *what)
{
    g_autofree uint64_t *want = g_new0(uint64_t, DMA_PAGE_WORDS);
    const uint64_t *have = guest_ram_ptr(gpa, TARGET_PAGE_SIZE);

    res->pages_checked++;
    if (k != DMA_NONE) {
        dma_pattern(want, g->seed, d->index, k);
    }
    if (!have) {
        guest_verify_report_bad(res, gpa, "%s page 0x%" PRIx64 " of %s is "
                                "not RAM", what, gpa, d->vdev->name);
    } else if (memcmp(have, want, TARGET_PAGE_SIZE)) {
        guest_verify_report_bad(res, gpa, "%s page 0x%" PRIx64 " of %s holds "
                                "round trip %" PRId64 ", expected %" PRId64,
                                what, gpa, d->vdev->name,
                                (int64_t)have[0] - 1,
                                k == DMA_NONE ? -1 : (int64_t)k);
    }
}

static void dma_verify_device(GuestDma *g, DmaDevice *d,
                              GuestVerifyResult *res)
{
    VFIODevice *vdev = d->vdev;
    g_autofree uint64_t *want = g_new0(uint64_t, DMA_PAGE_WORDS);
    g_autofree uint64_t *have = g_new0(uint64_t, DMA_PAGE_WORDS);
    uint64_t bad = 0, first = 0;
    Error *err = NULL;

    if (!vfio_device_read64(vdev, VDMA_REGS_BAR, VDMA_REG_CHECK, &bad,
                            &err) ||
        !vfio_device_read64(vdev, VDMA_REGS_BAR, VDMA_REG_CHECK_FIRST, &first,
                            &err)) {
        /* A device may refuse access while it is stopped: check it later. */
        if (!runstate_is_running()) {
            guest_verify_report_unchecked(res, "%s: device memory (the VM "
                                          "is paused: %s)", vdev->name,
                                          error_get_pretty(err));
        } else {
            guest_verify_report_bad(res, d->ram_base, "%s: cannot check "
                                    "device memory: %s", vdev->name,
                                    error_get_pretty(err));
        }
        error_free(err);
        return;
    }
    if (bad) {
        guest_verify_report_bad(res, d->ram_base, "%s: %" PRIu64 " pages of "
                                "device memory differ from the content model "
                                "(first: page %" PRIu64 ")", vdev->name, bad,
                                first);
    }
    if (d->scratched == DMA_NONE) {
        return;
    }
    dma_pattern(want, g->seed, d->index, d->scratched);
    if (!vfio_device_region_read(vdev, VDMA_MEM_BAR, DMA_SCRATCH_OFFSET, have,
                                 TARGET_PAGE_SIZE, &err)) {
        guest_verify_report_bad(res, d->ram_base, "%s: cannot read device "
                                "memory: %s", vdev->name,
                                error_get_pretty(err));
        error_free(err);
    } else if (memcmp(have, want, TARGET_PAGE_SIZE)) {
        guest_verify_report_bad(res, d->ram_base, "%s: device memory holds "
                                "round trip %" PRId64 ", expected %" PRIu64,
                                vdev->name, (int64_t)have[0] - 1,
                                d->scratched);
    }
}

static void dma_verify(GuestProgram *prog, GuestVerifyResult *res)
{
    GuestDma *g = GUEST_DMA(prog);
    Error *err = NULL;

    if (!dma_bind(g, &err)) {
        guest_verify_report_bad(res, 0, "%s", error_get_pretty(err));
        error_free(err);
        return;
    }
    for (unsigned i = 0; i < g->nr_devs; i++) {
        DmaDevice *d = &g->devs[i];
        uint64_t k = d->rounds;

        if (d->failed) {
            guest_verify_report_bad(res, d->ram_base, "dma: %s", d->error);
            continue;
        }
        dma_verify_page(g, d, res, d->ram_base, d->staged, "staging");
        for (uint64_t j = 0; j < g->nr_slots; j++) {
            uint64_t last = DMA_NONE;

            if (k > j) {
                last = j + (k - 1 - j) / g->nr_slots * g->nr_slots;
            }
            dma_verify_page(g, d, res,
                            d->ram_base + (1 + j) * TARGET_PAGE_SIZE, last,
                            "slot");
        }
        dma_verify_device(g, d, res);
    }
}

static void dma_state_save(GuestProgram *prog, GByteArray *out)
{
    GuestDma *g = GUEST_DMA(prog);

    dma_bind(g, NULL);
    guest_state_put_header(out, &(GuestStateHeader) {
        .version = DMA_STATE_VERSION, .count = g->nr_devs,
        .size = g->nr_slots, .seed = g->seed,
    });
    for (unsigned i = 0; i < g->nr_devs; i++) {
        guest_state_put_be64(out, g->devs[i].rounds);
        guest_state_put_be64(out, g->devs[i].staged);
        guest_state_put_be64(out, g->devs[i].scratched);
        guest_state_put_be32(out, g->devs[i].failed);
    }
}

static bool dma_state_load(GuestProgram *prog, const uint8_t *buf,
                           size_t len, Error **errp)
{
    GuestDma *g = GUEST_DMA(prog);
    GuestStateReader r = { .buf = buf, .len = len, .what = "dma state",
                           .errp = errp };
    GuestStateHeader h;
    uint32_t nr_devs;
    uint64_t nr_slots, seed;
    g_autofree uint64_t *vals = NULL;

    if (!guest_state_get_header(&r, DMA_STATE_VERSION, &h)) {
        return false;
    }
    nr_devs = h.count;
    nr_slots = h.size;
    seed = h.seed;
    if (!dma_bind(g, errp)) {
        return false;
    }
    if (nr_devs != g->nr_devs || nr_slots != g->nr_slots || seed != g->seed) {
        error_setg(errp, "dma state: %u devices, %" PRIu64 " slots, seed %"
                   PRIu64 "; this VM has %u devices, %" PRIu64 " slots, seed "
                   "%" PRIu64, nr_devs, nr_slots, seed, g->nr_devs,
                   g->nr_slots, g->seed);
        return false;
    }
    vals = g_new(uint64_t, 4 * (size_t)nr_devs);
    for (unsigned i = 0; i < nr_devs; i++) {
        uint32_t failed;

        if (!guest_state_get_be64(&r, &vals[4 * i]) ||
            !guest_state_get_be64(&r, &vals[4 * i + 1]) ||
            !guest_state_get_be64(&r, &vals[4 * i + 2]) ||
            !guest_state_get_be32(&r, &failed)) {
            return false;
        }
        vals[4 * i + 3] = failed;
        if (vals[4 * i] == DMA_NONE ||
            (vals[4 * i + 1] != DMA_NONE && vals[4 * i + 1] > vals[4 * i]) ||
            (vals[4 * i + 2] != DMA_NONE && vals[4 * i + 2] > vals[4 * i]) ||
            failed > 1) {
            error_setg(errp, "dma state: device %u has impossible counters",
                       i);
            return false;
        }
    }
    if (!guest_state_reader_done(&r)) {
        return false;
    }
    for (unsigned i = 0; i < nr_devs; i++) {
        DmaDevice *d = &g->devs[i];

        d->rounds = vals[4 * i];
        d->staged = vals[4 * i + 1];
        d->scratched = vals[4 * i + 2];
        if (vals[4 * i + 3] && !d->failed) {
            d->failed = true;
            d->error = g_strdup_printf("%s: failed on the source",
                                       d->vdev->name);
        }
        d->next_ns = 0;
    }
    return true;
}

static void dma_query(GuestProgram *prog, GuestProgramStats *stats)
{
    GuestDma *g = GUEST_DMA(prog);
    uint64_t rounds = 0;

    if (!guest_binding_ready(&g->binding)) {
        return;
    }
    for (unsigned i = 0; i < g->nr_devs; i++) {
        rounds += __atomic_load_n(&g->devs[i].rounds, __ATOMIC_RELAXED);
    }
    stats->passes = g->nr_slots ? rounds / g->nr_slots : 0;
    /* Per round trip: the staging page by the vCPU, a slot by the device. */
    stats->pages_written = 2 * rounds;
    stats->bytes_written = 2 * rounds * TARGET_PAGE_SIZE;
}

static const GuestProgramOps dma_ops = {
    .setup = dma_setup,
    .cleanup = dma_cleanup,
    .bind = dma_bind_at_start,
    .step = dma_step,
    .claim_ram = dma_claim_ram,
    .verify = dma_verify,
    .state_save = dma_state_save,
    .state_load = dma_state_load,
    .query = dma_query,
};

static bool dma_realize(Object *obj, Error **errp)
{
    GuestDma *g = (GuestDma *)obj;

    if (!QEMU_IS_ALIGNED(g->buf, TARGET_PAGE_SIZE) ||
        g->buf < 2 * TARGET_PAGE_SIZE) {
        error_setg(errp, "buf=%" PRIu64 ": must be a multiple of the page "
                   "size and hold at least two pages", g->buf);
        return false;
    }
    g->parent_obj.ops = &dma_ops;
    return true;
}

static bool dma_check_rate(Object *obj, const Property *prop,
                           const PropValue *val, Error **errp)
{
    if (val->u64 > DMA_MAX_RATE) {
        error_setg(errp, "%s=%" PRIu64 " is too fast: at most %llu round "
                   "trips per second; use 0 for unlimited", prop->name,
                   val->u64, DMA_MAX_RATE);
        return false;
    }
    return true;
}

static const Property dma_props[] = {
    DEFINE_PROP("buf", PROP_TYPE_SIZE, GuestDma, buf, "256K",
                "guest RAM per device at the top of RAM: a staging page and "
                "slots the device writes"),
    DEFINE_PROP_RT_CHECK("rate", PROP_TYPE_U64, GuestDma, rate, "2000",
                         "round trips per second per device (0: unlimited; "
                         "changeable with qom-set)", dma_check_rate),
    DEFINE_PROP("seed", PROP_TYPE_U64, GuestDma, seed, "0",
                "varies the page contents"),
    DEFINE_PROP("devices", PROP_TYPE_STR, GuestDma, devices, NULL,
                "ids of the devices to drive, separated by ':' (default: "
                "every VFIO device)"),
    { 0 }
};

static const ObjectClass dma_class = {
    .name = TYPE_GUEST_DMA,
    .parent = TYPE_GUEST_PROGRAM,
    .desc = "drives vfio-user-dma devices: DMA round trips between guest "
            "RAM and device memory, completed by interrupts",
    .instance_size = sizeof(GuestDma),
    .props = dma_props,
    .realize = dma_realize,
    .finalize = guest_program_finalize,
};

static void dma_register_types(void)
{
    type_register(&dma_class);
}
type_init(dma_register_types)
