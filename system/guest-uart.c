/*
 * The "uart" guest program: drives the kernel's mtty sample devices
 * (16550-style serial ports in I/O BARs, one per port) the way a guest's
 * serial driver would, so that a migration has device state to get
 * right: the bytes in each port's FIFO and its line registers.
 *
 * mtty loops every byte written to the transmit register back into the
 * port's receive FIFO (15 usable bytes).  Each step of a port writes the next
 * byte of the port's sequence when the FIFO has room and otherwise reads
 * the oldest byte back and checks it, so the FIFO stays nearly full and
 * its content is a known window [read, written) of the sequence.  The
 * line registers are set once (8N1, FIFO on, DTR/RTS/OUT2, a scratch
 * byte) and must survive too.  The check pops the window, compares it,
 * reads the registers, and then writes the window back.
 *
 * With irq=on a port works as an interrupt-driven driver would, in
 * rounds: the first byte into an empty FIFO must raise its receive
 * interrupt (IER RDI; mtty's trigger level is always 1, whatever FCR
 * asks), which the program waits for (the device's eventfd: MSI for
 * mtty); then it fills the FIFO to 14 bytes and drains it.  A device's
 * ports share its interrupt, so one vCPU drives all of them, a whole
 * round at a time: the FIFOs are empty between steps.
 *
 * Devices are looked up at first use: devices=ID1:ID2, or every VFIO
 * device; each must be an mtty (PCI 4348:3253).
 */
#include "qemu/osdep.h"
#include "system/cpus.h"
#include "system/guest.h"
#include "hw/vfio/vfio-device.h"

#define TYPE_GUEST_UART "guest-uart"
#define UART_STATE_VERSION 1
#define UART_IDLE_NS (10 * 1000 * 1000)
#define UART_MAX_RATE 1000000ULL
/*
 * mtty's FIFO has 16 slots, but its ring tells full from empty by head
 * == tail: a 16th byte makes the FIFO read as empty.  15 is what works.
 */
#define UART_FIFO 15
#define UART_MAX_PORTS 6            /* one per BAR */

/* mtty's PCI identity and its 16550 registers (one byte each). */
#define MTTY_VENDOR 0x4348
#define MTTY_DEVICE 0x3253
#define UART_RX 0                   /* read: receive buffer */
#define UART_TX 0                   /* write: transmit holding */
#define UART_IER 1
#define UART_FCR 2                  /* write: FIFO control */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_SCR 7
#define UART_FCR_ENABLE_FIFO 0x01
#define UART_FCR_CLEAR 0x06         /* both FIFOs */
#define UART_IER_RDI 0x01           /* receive data interrupt */
#define UART_IRQ_ROUND 14           /* bytes per round with irq=on */
#define UART_IRQ_WAIT_MS 5000
#define UART_LCR_8N1 0x03
#define UART_MCR_DTR_RTS_OUT2 0x0b
#define UART_LSR_DR 0x01            /* data ready */

typedef struct UartPort {
    VFIODevice *vdev;
    uint32_t bar;
    unsigned index;                 /* across all devices */
    unsigned device;                /* which device: its vCPU */
    /* The driving vCPU's; plain while the vCPUs are paused. */
    bool configured;                /* registers set (migrated) */
    uint64_t written;               /* bytes sent: atomic for queries */
    uint64_t read;                  /* bytes read back and checked */
    bool failed;
    char *error;
    int64_t next_ns;
} UartPort;

typedef struct GuestUart {
    GuestProgram parent_obj;

    /* properties */
    uint64_t rate;
    uint64_t seed;
    char *devices;
    bool irq;

    /* bound at first use */
    GuestBinding binding;
    UartPort *ports;
    unsigned nr_ports;
} GuestUart;

static GuestUart *GUEST_UART(GuestProgram *prog)
{
    return (GuestUart *)prog;
}

/* Byte @n of port @port's sequence. */
static uint8_t uart_byte(uint64_t seed, unsigned port, uint64_t n)
{
    uint64_t z = (n + 1) * 0x9e3779b97f4a7c15ULL ^ seed ^ (port * 0x51ULL);

    z ^= z >> 29;
    return z * 0xbf58476d1ce4e5b9ULL >> 56;
}

static uint8_t uart_scratch(unsigned port)
{
    return 0xa5 ^ port;
}

/* ---- Binding ---- */

/* The I/O BARs of @vdev, each a port (mtty-1: BAR0, mtty-2: BAR0, BAR1). */
static bool uart_add_ports(GuestUart *g, VFIODevice *vdev, unsigned device,
                           GArray *ports, Error **errp)
{
    uint16_t vendor_id = vdev->config[0] | vdev->config[1] << 8;
    uint16_t device_id = vdev->config[2] | vdev->config[3] << 8;

    if (vendor_id != MTTY_VENDOR || device_id != MTTY_DEVICE) {
        error_setg(errp, "uart: %s is %04x:%04x, not an mtty (%04x:%04x)",
                   vdev->name, vendor_id, device_id, MTTY_VENDOR,
                   MTTY_DEVICE);
        return false;
    }
    for (uint32_t bar = 0; bar < UART_MAX_PORTS; bar++) {
        g_autofree struct vfio_region_info *info = NULL;
        int fd = -1;
        UartPort p = { .vdev = vdev, .bar = bar, .device = device };

        info = vdev->io_ops->region_info(vdev, bar, &fd, NULL);
        if (fd >= 0) {
            close(fd);
        }
        if (!info || info->size < 8) {
            continue;
        }
        p.index = ports->len;
        g_array_append_val(ports, p);
    }
    return true;
}

static bool uart_bind_devices(void *opaque, Error **errp)
{
    GuestUart *g = opaque;
    g_autoptr(GPtrArray) found = vfio_device_lookup(g->devices, "uart",
                                                    errp);
    g_autoptr(GArray) ports = g_array_new(false, true, sizeof(UartPort));

    if (!found) {
        return false;
    }
    for (guint i = 0; i < found->len; i++) {
        VFIODevice *vdev = g_ptr_array_index(found, i);

        if (g->irq && vdev->irq_fd < 0) {
            error_setg(errp, "uart: irq=on, but %s has no interrupt",
                       vdev->name);
            return false;
        }
        if (!uart_add_ports(g, g_ptr_array_index(found, i), i, ports,
                            errp)) {
            return false;
        }
    }
    if (!ports->len) {
        error_setg(errp, "uart: the devices have no serial port");
        return false;
    }
    g->nr_ports = ports->len;
    g->ports = (UartPort *)(void *)g_array_free(g_steal_pointer(&ports),
                                                false);
    return true;
}

static bool uart_bind(GuestUart *g, Error **errp)
{
    return guest_binding_bind(&g->binding, uart_bind_devices, g, errp);
}

static bool uart_setup(GuestProgram *prog, unsigned nr_vcpus, Error **errp)
{
    guest_binding_init(&GUEST_UART(prog)->binding);
    return true;
}

static void uart_cleanup(GuestProgram *prog)
{
    GuestUart *g = GUEST_UART(prog);

    for (unsigned i = 0; i < g->nr_ports; i++) {
        g_free(g->ports[i].error);
    }
    g_clear_pointer(&g->ports, g_free);
    g->nr_ports = 0;
    guest_binding_destroy(&g->binding);
}

/* ---- Driving a port (its vCPU thread, or the check) ---- */

static bool uart_get(UartPort *p, uint32_t reg, uint8_t *val, Error **errp)
{
    return vfio_device_region_read(p->vdev, p->bar, reg, val, 1, errp);
}

static bool uart_put(UartPort *p, uint32_t reg, uint8_t val, Error **errp)
{
    return vfio_device_region_write(p->vdev, p->bar, reg, &val, 1, errp);
}

static void uart_fail(UartPort *p, Error *err)
{
    if (!p->failed) {
        p->error = g_strdup_printf("%s port %u: %s", p->vdev->name, p->bar,
                                   error_get_pretty(err));
        __atomic_store_n(&p->failed, true, __ATOMIC_RELEASE);
    }
    error_free(err);
}

static bool uart_configure(GuestUart *g, UartPort *p, Error **errp)
{
    return uart_put(p, UART_IER, g->irq ? UART_IER_RDI : 0, errp) &&
           uart_put(p, UART_LCR, UART_LCR_8N1, errp) &&
           uart_put(p, UART_FCR, UART_FCR_ENABLE_FIFO | UART_FCR_CLEAR,
                    errp) &&
           uart_put(p, UART_MCR, UART_MCR_DTR_RTS_OUT2, errp) &&
           uart_put(p, UART_SCR, uart_scratch(p->index), errp);
}

/* Read the oldest byte back and check it. */
static bool uart_take(GuestUart *g, UartPort *p, Error **errp)
{
    uint8_t b;

    if (!uart_get(p, UART_RX, &b, errp)) {
        return false;
    }
    if (b != uart_byte(g->seed, p->index, p->read)) {
        error_setg(errp, "byte %" PRIu64 " came back as 0x%02x, expected "
                   "0x%02x", p->read, b, uart_byte(g->seed, p->index,
                                                   p->read));
        return false;
    }
    __atomic_store_n(&p->read, p->read + 1, __ATOMIC_RELAXED);
    return true;
}

/* irq=on: one round, from an empty FIFO back to an empty FIFO. */
static bool uart_step_irq(GuestUart *g, UartPort *p, Error **errp)
{
    int ret;

    /* Nothing is pending: a signal left from before does not count. */
    if (vfio_device_irq_wait(p->vdev, 0, errp) < 0) {
        return false;
    }
    for (unsigned i = 0; i < UART_IRQ_ROUND; i++) {
        if (!uart_put(p, UART_TX, uart_byte(g->seed, p->index, p->written),
                      errp)) {
            return false;
        }
        __atomic_store_n(&p->written, p->written + 1, __ATOMIC_RELAXED);
        if (i) {
            continue;
        }
        ret = vfio_device_irq_wait(p->vdev, UART_IRQ_WAIT_MS, errp);
        if (ret <= 0) {
            if (ret == 0) {
                error_setg(errp, "no receive interrupt within %d ms of a "
                           "byte into the empty FIFO", UART_IRQ_WAIT_MS);
            }
            return false;
        }
    }
    while (p->read < p->written) {
        if (!uart_take(g, p, errp)) {
            return false;
        }
    }
    return true;
}

/* One byte in, or, with the FIFO full, the oldest one out and checked. */
static void uart_step_port(GuestUart *g, UartPort *p)
{
    Error *err = NULL;

    if (!p->configured) {
        if (!uart_configure(g, p, &err)) {
            uart_fail(p, err);
            return;
        }
        p->configured = true;
    }
    if (g->irq) {
        if (!uart_step_irq(g, p, &err)) {
            uart_fail(p, err);
        }
        return;
    }
    if (p->written - p->read < UART_FIFO) {
        if (!uart_put(p, UART_TX, uart_byte(g->seed, p->index, p->written),
                      &err)) {
            uart_fail(p, err);
            return;
        }
        __atomic_store_n(&p->written, p->written + 1, __ATOMIC_RELAXED);
        return;
    }
    if (!uart_take(g, p, &err)) {
        uart_fail(p, err);
    }
}

static void uart_step(GuestProgram *prog, unsigned cpu)
{
    GuestUart *g = GUEST_UART(prog);
    int64_t now = g_get_monotonic_time() * 1000, wait = UART_IDLE_NS;
    uint64_t rate = __atomic_load_n(&g->rate, __ATOMIC_RELAXED);
    bool worked = false;

    if (!uart_bind(g, NULL)) {
        vcpu_sleep_ns(cpu, UART_IDLE_NS);
        return;
    }
    for (unsigned i = 0; i < g->nr_ports; i++) {
        UartPort *p = &g->ports[i];

        /* One vCPU per device: its ports share its interrupt. */
        if (p->device % prog->nr_vcpus != cpu ||
            __atomic_load_n(&p->failed, __ATOMIC_ACQUIRE)) {
            continue;
        }
        if (!guest_pace_due(p->next_ns, now, rate, &wait)) {
            continue;
        }
        uart_step_port(g, p);
        worked = true;
        guest_pace_next(&p->next_ns, now, rate, UART_IDLE_NS);
    }
    if (!worked) {
        vcpu_sleep_ns(cpu, MAX(wait, 100000));
    }
}

/* ---- Check, state ---- */

static void uart_verify_port(GuestUart *g, UartPort *p, GuestVerifyResult *res)
{
    static const struct {
        uint32_t reg;
        const char *name;
    } regs[] = {
        { UART_LCR, "LCR" }, { UART_MCR, "MCR" }, { UART_SCR, "SCR" },
    };
    uint64_t held = p->written - p->read;
    uint8_t want[] = { UART_LCR_8N1, UART_MCR_DTR_RTS_OUT2,
                       uart_scratch(p->index) };
    uint8_t fifo[UART_FIFO], lsr, v;
    Error *err = NULL;

    if (!p->configured) {
        return;
    }
    for (unsigned i = 0; i < ARRAY_SIZE(regs); i++) {
        if (!uart_get(p, regs[i].reg, &v, &err)) {
            goto io_error;
        }
        if (v != want[i]) {
            guest_verify_report_bad(res, 0, "%s port %u: %s is 0x%02x, "
                                    "expected 0x%02x", p->vdev->name, p->bar,
                                    regs[i].name, v, want[i]);
        }
    }
    /* The window [read, written) is in the FIFO, in order, and no more. */
    for (uint64_t i = 0; i <= held; i++) {
        if (!uart_get(p, UART_LSR, &lsr, &err)) {
            goto io_error;
        }
        if (!!(lsr & UART_LSR_DR) != (i < held)) {
            guest_verify_report_bad(res, 0, "%s port %u: the FIFO holds %s "
                                    "than the %" PRIu64 " bytes sent and not "
                                    "read back", p->vdev->name, p->bar,
                                    i < held ? "fewer" : "more", held);
            break;
        }
        if (i == held) {
            break;
        }
        if (!uart_get(p, UART_RX, &fifo[i], &err)) {
            goto io_error;
        }
        if (fifo[i] != uart_byte(g->seed, p->index, p->read + i)) {
            guest_verify_report_bad(res, 0, "%s port %u: FIFO byte %" PRIu64
                                    " is 0x%02x, expected 0x%02x",
                                    p->vdev->name, p->bar, i, fifo[i],
                                    uart_byte(g->seed, p->index, p->read + i));
        }
    }
    /* Put the window back for the program to carry on with. */
    for (uint64_t i = 0; i < held; i++) {
        if (!uart_put(p, UART_TX, uart_byte(g->seed, p->index, p->read + i),
                      &err)) {
            goto io_error;
        }
    }

    res->pages_checked++;
    return;

io_error:
    guest_verify_report_bad(res, 0, "%s port %u: %s", p->vdev->name, p->bar,
                            error_get_pretty(err));
    error_free(err);
}

static void uart_verify(GuestProgram *prog, GuestVerifyResult *res)
{
    GuestUart *g = GUEST_UART(prog);
    Error *err = NULL;

    if (!uart_bind(g, &err)) {
        guest_verify_report_bad(res, 0, "%s", error_get_pretty(err));
        error_free(err);
        return;
    }
    for (unsigned i = 0; i < g->nr_ports; i++) {
        UartPort *p = &g->ports[i];

        if (p->failed) {
            guest_verify_report_bad(res, 0, "uart: %s", p->error);
            continue;
        }
        uart_verify_port(g, p, res);
    }
}

static void uart_state_save(GuestProgram *prog, GByteArray *out)
{
    GuestUart *g = GUEST_UART(prog);

    uart_bind(g, NULL);
    guest_state_put_header(out, &(GuestStateHeader) {
        .version = UART_STATE_VERSION, .count = g->nr_ports,
        .size = UART_FIFO, .seed = g->seed,
    });
    for (unsigned i = 0; i < g->nr_ports; i++) {
        guest_state_put_be32(out, g->ports[i].configured);
        guest_state_put_be64(out, g->ports[i].written);
        guest_state_put_be64(out, g->ports[i].read);
        guest_state_put_be32(out, g->ports[i].failed);
    }
}

static bool uart_state_load(GuestProgram *prog, const uint8_t *buf,
                            size_t len, Error **errp)
{
    GuestUart *g = GUEST_UART(prog);
    GuestStateReader r = { .buf = buf, .len = len, .what = "uart state",
                           .errp = errp };
    g_autofree UartPort *vals = NULL;
    GuestStateHeader h;

    if (!guest_state_get_header(&r, UART_STATE_VERSION, &h) ||
        !uart_bind(g, errp)) {
        return false;
    }
    if (h.count != g->nr_ports || h.size != UART_FIFO || h.seed != g->seed) {
        error_setg(errp, "uart state: %u ports, seed %" PRIu64 "; this VM "
                   "has %u ports, seed %" PRIu64, h.count, h.seed,
                   g->nr_ports, g->seed);
        return false;
    }
    vals = g_new0(UartPort, g->nr_ports);
    for (unsigned i = 0; i < g->nr_ports; i++) {
        uint32_t configured, failed;

        if (!guest_state_get_be32(&r, &configured) ||
            !guest_state_get_be64(&r, &vals[i].written) ||
            !guest_state_get_be64(&r, &vals[i].read) ||
            !guest_state_get_be32(&r, &failed)) {
            return false;
        }
        if (configured > 1 || failed > 1 || vals[i].read > vals[i].written ||
            vals[i].written - vals[i].read > UART_FIFO) {
            error_setg(errp, "uart state: port %u has impossible counters", i);
            return false;
        }
        vals[i].configured = configured;
        vals[i].failed = failed;
    }
    if (!guest_state_reader_done(&r)) {
        return false;
    }
    for (unsigned i = 0; i < g->nr_ports; i++) {
        UartPort *p = &g->ports[i];

        p->configured = vals[i].configured;
        p->written = vals[i].written;
        p->read = vals[i].read;
        if (vals[i].failed && !p->failed) {
            p->failed = true;
            p->error = g_strdup_printf("%s port %u: failed on the source",
                                       p->vdev->name, p->bar);
        }
        p->next_ns = 0;
    }
    return true;
}

static void uart_query(GuestProgram *prog, GuestProgramStats *stats)
{
    GuestUart *g = GUEST_UART(prog);
    uint64_t bytes = 0;

    if (!guest_binding_ready(&g->binding)) {
        return;
    }
    for (unsigned i = 0; i < g->nr_ports; i++) {
        bytes += __atomic_load_n(&g->ports[i].written, __ATOMIC_RELAXED);
    }
    /* A pass: every port's FIFO filled once over. */
    stats->passes = bytes / (UART_FIFO * g->nr_ports);
    stats->bytes_written = bytes;
}

static const GuestProgramOps uart_ops = {
    .setup = uart_setup,
    .cleanup = uart_cleanup,
    .step = uart_step,
    .verify = uart_verify,
    .state_save = uart_state_save,
    .state_load = uart_state_load,
    .query = uart_query,
};

static bool uart_realize(Object *obj, Error **errp)
{
    ((GuestProgram *)obj)->ops = &uart_ops;
    return true;
}

static bool uart_check_rate(Object *obj, const Property *prop,
                            const PropValue *val, Error **errp)
{
    if (val->u64 > UART_MAX_RATE) {
        error_setg(errp, "%s=%" PRIu64 " is too fast: at most %llu bytes per "
                   "second; use 0 for unlimited", prop->name, val->u64,
                   UART_MAX_RATE);
        return false;
    }
    return true;
}

static const Property uart_props[] = {
    DEFINE_PROP_RT_CHECK("rate", PROP_TYPE_U64, GuestUart, rate, "1000",
                         "register writes or reads (with irq=on: rounds) per "
                         "second per port (0: unlimited; changeable with "
                         "qom-set)",
                         uart_check_rate),
    DEFINE_PROP("seed", PROP_TYPE_U64, GuestUart, seed, "0",
                "varies the byte sequences"),
    DEFINE_PROP("devices", PROP_TYPE_STR, GuestUart, devices, NULL,
                "ids of the mtty devices to drive, separated by ':' "
                "(default: every VFIO device)"),
    DEFINE_PROP("irq", PROP_TYPE_BOOL, GuestUart, irq, "off",
                "rounds driven by the receive interrupt: a byte into the "
                "empty FIFO must raise it, then 13 more, then drain"),
    { 0 }
};

static const ObjectClass uart_class = {
    .name = TYPE_GUEST_UART,
    .parent = TYPE_GUEST_PROGRAM,
    .desc = "drives the kernel's mtty serial ports: bytes looped through "
            "their FIFOs and line registers that must survive a migration",
    .instance_size = sizeof(GuestUart),
    .props = uart_props,
    .realize = uart_realize,
    .finalize = guest_program_finalize,
};

static void uart_register_types(void)
{
    type_register(&uart_class);
}
type_init(uart_register_types)
