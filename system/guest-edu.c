/*
 * The "edu" guest program: drives QEMU's educational PCI device ("edu",
 * PCI 1234:11e8) the way a guest driver would.  The test VM gives its
 * kernel one (tests/vm/), so that vmig's vfio-pci is tested against a
 * real PCI function behind the kernel's vfio-pci driver: BAR0 mapped into
 * vmig, MMIO through the mapping, INTx and MSI.
 *
 * edu's registers are 32 bits wide in BAR0 (1 MiB of MMIO):
 *   0x00  identification, 0xRRrr00ed (major RR, minor rr)
 *   0x04  card liveness: reads back the inverse of what was written
 *   0x24  interrupt status: the bits raised and not acknowledged
 *   0x60  interrupt raise: ORs the value into the status, raises the irq
 *   0x64  interrupt acknowledge: clears those bits; none left lowers INTx
 *
 * At first use the program checks each device's identity and turns on
 * memory decoding and bus mastering (an MSI is a write by the device).
 * Each step writes the next value of a sequence to the liveness register
 * and checks its inverse; with irq=on it then raises an interrupt with a
 * value of the sequence, waits for it on the device's eventfd, checks the
 * status register and acknowledges it.  x-guest-verify checks the
 * identity and one more liveness round, and reports the first failure.
 *
 * edu has no VFIO migration, so a VM with it does not migrate; the
 * program state exists for savevm's sake all the same.
 */
#include "qemu/osdep.h"
#include "system/cpus.h"
#include "system/guest.h"
#include "hw/vfio/vfio-device.h"

#define TYPE_GUEST_EDU "guest-edu"
#define EDU_STATE_VERSION 1
#define EDU_IDLE_NS (10 * 1000 * 1000)
#define EDU_MAX_RATE 1000000ULL
#define EDU_IRQ_WAIT_MS 5000

#define EDU_VENDOR 0x1234
#define EDU_DEVICE 0x11e8
#define EDU_BAR 0
#define EDU_ID 0x00
#define EDU_ID_MAGIC 0xed           /* the low byte of the identification */
#define EDU_LIVENESS 0x04
#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK 0x64

#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4

typedef struct EduDevice {
    VFIODevice *vdev;
    unsigned index;
    /* The driving vCPU's; plain while the vCPUs are paused. */
    bool enabled;                   /* command register set */
    uint64_t checks;                /* liveness rounds passed (atomic) */
    uint64_t irqs;                  /* interrupts taken and checked (atomic) */
    bool failed;
    char *error;
    int64_t next_ns;
} EduDevice;

typedef struct GuestEdu {
    GuestProgram parent_obj;

    /* properties */
    uint64_t rate;
    uint64_t seed;
    char *devices;
    bool irq;

    /* bound at first use */
    GuestBinding binding;
    EduDevice *devs;
    unsigned nr_devs;
} GuestEdu;

static GuestEdu *GUEST_EDU(GuestProgram *prog)
{
    return (GuestEdu *)prog;
}

/* Value @n of device @dev's sequence; never 0 (an interrupt needs a bit). */
static uint32_t edu_value(uint64_t seed, unsigned dev, uint64_t n)
{
    uint64_t z = (n + 1) * 0x9e3779b97f4a7c15ULL ^ seed ^ (dev * 0x51ULL);

    z ^= z >> 31;
    return (uint32_t)(z * 0xbf58476d1ce4e5b9ULL >> 32) | 1;
}

/* ---- Binding ---- */

static bool edu_bind_devices(void *opaque, Error **errp)
{
    GuestEdu *g = opaque;
    g_autoptr(GPtrArray) found = vfio_device_lookup(g->devices, "edu", errp);

    if (!found) {
        return false;
    }
    for (guint i = 0; i < found->len; i++) {
        VFIODevice *vdev = g_ptr_array_index(found, i);
        uint16_t vendor_id = vdev->config[0] | vdev->config[1] << 8;
        uint16_t device_id = vdev->config[2] | vdev->config[3] << 8;

        if (vendor_id != EDU_VENDOR || device_id != EDU_DEVICE) {
            error_setg(errp, "edu: %s is %04x:%04x, not an edu (%04x:%04x)",
                       vdev->name, vendor_id, device_id, EDU_VENDOR,
                       EDU_DEVICE);
            return false;
        }
        if (g->irq && vdev->irq_fd < 0) {
            error_setg(errp, "edu: irq=on, but %s has no interrupt",
                       vdev->name);
            return false;
        }
    }
    g->nr_devs = found->len;
    g->devs = g_new0(EduDevice, found->len);
    for (guint i = 0; i < found->len; i++) {
        g->devs[i].vdev = g_ptr_array_index(found, i);
        g->devs[i].index = i;
    }
    return true;
}

static bool edu_bind(GuestEdu *g, Error **errp)
{
    return guest_binding_bind(&g->binding, edu_bind_devices, g, errp);
}

static bool edu_setup(GuestProgram *prog, unsigned nr_vcpus, Error **errp)
{
    guest_binding_init(&GUEST_EDU(prog)->binding);
    return true;
}

static void edu_cleanup(GuestProgram *prog)
{
    GuestEdu *g = GUEST_EDU(prog);

    for (unsigned i = 0; i < g->nr_devs; i++) {
        g_free(g->devs[i].error);
    }
    g_clear_pointer(&g->devs, g_free);
    g->nr_devs = 0;
    guest_binding_destroy(&g->binding);
}

/* ---- Driving a device (its vCPU thread, or the check) ---- */

static bool edu_get(EduDevice *d, uint32_t reg, uint32_t *val, Error **errp)
{
    return vfio_device_read32(d->vdev, EDU_BAR, reg, val, errp);
}

static bool edu_put(EduDevice *d, uint32_t reg, uint32_t val, Error **errp)
{
    return vfio_device_write32(d->vdev, EDU_BAR, reg, val, errp);
}

static void edu_fail(EduDevice *d, Error *err)
{
    if (!d->failed) {
        d->error = g_strdup_printf("%s: %s", d->vdev->name,
                                   error_get_pretty(err));
        __atomic_store_n(&d->failed, true, __ATOMIC_RELEASE);
    }
    error_free(err);
}

static bool edu_check_id(EduDevice *d, Error **errp)
{
    uint32_t id;

    if (!edu_get(d, EDU_ID, &id, errp)) {
        return false;
    }
    if ((id & 0xffff) != EDU_ID_MAGIC || !(id >> 24)) {
        error_setg(errp, "identification register is 0x%08x, not "
                   "0xRRrr00ed", id);
        return false;
    }
    return true;
}

/* What a driver's probe does: memory decoding and bus mastering on. */
static bool edu_enable(EduDevice *d, Error **errp)
{
    uint8_t config[sizeof(d->vdev->config)];
    uint16_t cmd;

    vfio_device_config_snapshot(d->vdev, config);
    cmd = GUINT16_TO_LE((config[PCI_COMMAND] | config[PCI_COMMAND + 1] << 8) |
                        PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    if (!vfio_device_region_write(d->vdev, VFIO_PCI_CONFIG_REGION_INDEX,
                                  PCI_COMMAND, &cmd, sizeof(cmd), errp)) {
        error_prepend(errp, "enabling the device: ");
        return false;
    }
    return edu_check_id(d, errp);
}

static bool edu_liveness(GuestEdu *g, EduDevice *d, Error **errp)
{
    uint32_t v = edu_value(g->seed, d->index, d->checks), back;

    if (!edu_put(d, EDU_LIVENESS, v, errp) ||
        !edu_get(d, EDU_LIVENESS, &back, errp)) {
        return false;
    }
    if (back != ~v) {
        error_setg(errp, "liveness check %" PRIu64 ": wrote 0x%08x, read "
                   "0x%08x back, expected 0x%08x", d->checks, v, back, ~v);
        return false;
    }
    __atomic_store_n(&d->checks, d->checks + 1, __ATOMIC_RELAXED);
    return true;
}

/* Raise an interrupt, take it, check the status and acknowledge it. */
static bool edu_irq_round(GuestEdu *g, EduDevice *d, Error **errp)
{
    uint32_t v = edu_value(g->seed ^ 0x1ed, d->index, d->irqs), status;
    int ret;

    /*
     * Nothing is pending: a signal left from before does not count (INTx
     * fires again when it is unmasked before the acknowledgement).
     */
    if (vfio_device_irq_wait(d->vdev, 0, errp) < 0 ||
        !edu_put(d, EDU_IRQ_RAISE, v, errp)) {
        return false;
    }
    ret = vfio_device_irq_wait(d->vdev, EDU_IRQ_WAIT_MS, errp);
    if (ret <= 0) {
        if (ret == 0) {
            error_setg(errp, "no interrupt within %d ms of raising 0x%08x",
                       EDU_IRQ_WAIT_MS, v);
        }
        return false;
    }
    if (!edu_get(d, EDU_IRQ_STATUS, &status, errp)) {
        return false;
    }
    if (status != v) {
        error_setg(errp, "interrupt %" PRIu64 ": status 0x%08x, raised "
                   "0x%08x", d->irqs, status, v);
        return false;
    }
    if (!edu_put(d, EDU_IRQ_ACK, status, errp)) {
        return false;
    }
    __atomic_store_n(&d->irqs, d->irqs + 1, __ATOMIC_RELAXED);
    return true;
}

static void edu_step_device(GuestEdu *g, EduDevice *d)
{
    Error *err = NULL;

    if (!d->enabled) {
        if (!edu_enable(d, &err)) {
            edu_fail(d, err);
            return;
        }
        d->enabled = true;
    }
    if (!edu_liveness(g, d, &err) || (g->irq && !edu_irq_round(g, d, &err))) {
        edu_fail(d, err);
    }
}

static void edu_step(GuestProgram *prog, unsigned cpu)
{
    GuestEdu *g = GUEST_EDU(prog);
    int64_t now = g_get_monotonic_time() * 1000, wait = EDU_IDLE_NS;
    uint64_t rate = __atomic_load_n(&g->rate, __ATOMIC_RELAXED);
    bool worked = false;

    if (!edu_bind(g, NULL)) {
        vcpu_sleep_ns(cpu, EDU_IDLE_NS);
        return;
    }
    for (unsigned i = 0; i < g->nr_devs; i++) {
        EduDevice *d = &g->devs[i];

        /* One vCPU per device: one waiter on its interrupt. */
        if (d->index % prog->nr_vcpus != cpu ||
            __atomic_load_n(&d->failed, __ATOMIC_ACQUIRE)) {
            continue;
        }
        if (!guest_pace_due(d->next_ns, now, rate, &wait)) {
            continue;
        }
        edu_step_device(g, d);
        worked = true;
        guest_pace_next(&d->next_ns, now, rate, EDU_IDLE_NS);
    }
    if (!worked) {
        vcpu_sleep_ns(cpu, MAX(wait, 100000));
    }
}

/* ---- Check, state ---- */

static void edu_verify(GuestProgram *prog, GuestVerifyResult *res)
{
    GuestEdu *g = GUEST_EDU(prog);
    Error *err = NULL;

    if (!edu_bind(g, &err)) {
        guest_verify_report_bad(res, 0, "%s", error_get_pretty(err));
        error_free(err);
        return;
    }
    for (unsigned i = 0; i < g->nr_devs; i++) {
        EduDevice *d = &g->devs[i];

        if (d->failed) {
            guest_verify_report_bad(res, 0, "edu: %s", d->error);
            continue;
        }
        if (!d->enabled) {
            continue;
        }
        if (!edu_check_id(d, &err) || !edu_liveness(g, d, &err)) {
            guest_verify_report_bad(res, 0, "edu: %s: %s", d->vdev->name,
                                    error_get_pretty(err));
            g_clear_pointer(&err, error_free);
            continue;
        }
        res->pages_checked++;
    }
}

static void edu_state_save(GuestProgram *prog, GByteArray *out)
{
    GuestEdu *g = GUEST_EDU(prog);

    edu_bind(g, NULL);
    guest_state_put_header(out, &(GuestStateHeader) {
        .version = EDU_STATE_VERSION, .count = g->nr_devs, .seed = g->seed,
    });
    for (unsigned i = 0; i < g->nr_devs; i++) {
        guest_state_put_be32(out, g->devs[i].enabled);
        guest_state_put_be64(out, g->devs[i].checks);
        guest_state_put_be64(out, g->devs[i].irqs);
        guest_state_put_be32(out, g->devs[i].failed);
    }
}

static bool edu_state_load(GuestProgram *prog, const uint8_t *buf,
                           size_t len, Error **errp)
{
    GuestEdu *g = GUEST_EDU(prog);
    GuestStateReader r = { .buf = buf, .len = len, .what = "edu state",
                           .errp = errp };
    g_autofree EduDevice *vals = NULL;
    GuestStateHeader h;

    if (!guest_state_get_header(&r, EDU_STATE_VERSION, &h) ||
        !edu_bind(g, errp)) {
        return false;
    }
    if (h.count != g->nr_devs || h.size || h.seed != g->seed) {
        error_setg(errp, "edu state: %u devices, seed %" PRIu64 "; this VM "
                   "has %u devices, seed %" PRIu64, h.count, h.seed,
                   g->nr_devs, g->seed);
        return false;
    }
    vals = g_new0(EduDevice, g->nr_devs);
    for (unsigned i = 0; i < g->nr_devs; i++) {
        uint32_t enabled, failed;

        if (!guest_state_get_be32(&r, &enabled) ||
            !guest_state_get_be64(&r, &vals[i].checks) ||
            !guest_state_get_be64(&r, &vals[i].irqs) ||
            !guest_state_get_be32(&r, &failed)) {
            return false;
        }
        if (enabled > 1 || failed > 1) {
            error_setg(errp, "edu state: device %u has impossible flags", i);
            return false;
        }
        vals[i].enabled = enabled;
        vals[i].failed = failed;
    }
    if (!guest_state_reader_done(&r)) {
        return false;
    }
    for (unsigned i = 0; i < g->nr_devs; i++) {
        EduDevice *d = &g->devs[i];

        /* A device here is enabled anew: its command register is not. */
        d->enabled = false;
        d->checks = vals[i].checks;
        d->irqs = vals[i].irqs;
        if (vals[i].failed && !d->failed) {
            d->failed = true;
            d->error = g_strdup_printf("%s: failed on the source",
                                       d->vdev->name);
        }
        d->next_ns = 0;
    }
    return true;
}

static void edu_query(GuestProgram *prog, GuestProgramStats *stats)
{
    GuestEdu *g = GUEST_EDU(prog);

    if (!guest_binding_ready(&g->binding)) {
        return;
    }
    for (unsigned i = 0; i < g->nr_devs; i++) {
        stats->passes += __atomic_load_n(&g->devs[i].checks,
                                         __ATOMIC_RELAXED);
        stats->bytes_written += 4 * __atomic_load_n(&g->devs[i].irqs,
                                                    __ATOMIC_RELAXED);
    }
}

static const GuestProgramOps edu_ops = {
    .setup = edu_setup,
    .cleanup = edu_cleanup,
    .step = edu_step,
    .verify = edu_verify,
    .state_save = edu_state_save,
    .state_load = edu_state_load,
    .query = edu_query,
};

static bool edu_realize(Object *obj, Error **errp)
{
    ((GuestProgram *)obj)->ops = &edu_ops;
    return true;
}

static bool edu_check_rate(Object *obj, const Property *prop,
                           const PropValue *val, Error **errp)
{
    if (val->u64 > EDU_MAX_RATE) {
        error_setg(errp, "%s=%" PRIu64 " is too fast: at most %llu rounds "
                   "per second; use 0 for unlimited", prop->name, val->u64,
                   EDU_MAX_RATE);
        return false;
    }
    return true;
}

static const Property edu_props[] = {
    DEFINE_PROP_RT_CHECK("rate", PROP_TYPE_U64, GuestEdu, rate, "1000",
                         "rounds per second per device (0: unlimited; "
                         "changeable with qom-set)", edu_check_rate),
    DEFINE_PROP("seed", PROP_TYPE_U64, GuestEdu, seed, "0",
                "varies the values written"),
    DEFINE_PROP("devices", PROP_TYPE_STR, GuestEdu, devices, NULL,
                "ids of the edu devices to drive, separated by ':' "
                "(default: every VFIO device)"),
    DEFINE_PROP("irq", PROP_TYPE_BOOL, GuestEdu, irq, "off",
                "each round also raises an interrupt, waits for it and "
                "acknowledges it"),
    { 0 }
};

static const ObjectClass edu_class = {
    .name = TYPE_GUEST_EDU,
    .parent = TYPE_GUEST_PROGRAM,
    .desc = "drives QEMU's edu PCI device: its liveness register and, "
            "with irq=on, its interrupt",
    .instance_size = sizeof(GuestEdu),
    .props = edu_props,
    .realize = edu_realize,
    .finalize = guest_program_finalize,
};

static void edu_register_types(void)
{
    type_register(&edu_class);
}
type_init(edu_register_types)
