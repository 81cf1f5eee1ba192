/*
 * vfio-user-cli: a command-line vfio-user client for device vendors.
 *
 * Each subcommand connects to one server (two for migrate), does one
 * job and prints what happened with the time each step took.  The exit
 * status is 0 on success, 1 on any failure (with the reason on stderr).
 */
#include "cli.h"
#include "qemu/cutils.h"
#include "vfio-user-server/libvus.h"
#include "hw/misc/vfio-user-dma-regs.h"

CliGlobal cli_global = { .timeout_ms = 30000 };

static GOptionEntry global_entries[] = {
    { "timeout", 't', 0, G_OPTION_ARG_INT, &cli_global.timeout_ms,
      "longest wait for one reply (default 30000)", "MS" },
    { "no-extensions", 0, 0, G_OPTION_ARG_NONE, &cli_global.no_extensions,
      "do not offer vmig's vfio-user extensions", NULL },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &cli_global.quiet,
      "print only results and errors", NULL },
    { NULL }
};

bool cli_parse(const char *cmd, const char *usage, const char *summary,
               GOptionEntry *entries, int *argc, char ***argv,
               int min_args, int max_args)
{
    g_autofree char *param = g_strdup_printf("%s %s", cmd, usage);
    g_autoptr(GOptionContext) ctx = g_option_context_new(param);
    g_autoptr(GError) gerr = NULL;

    g_option_context_set_summary(ctx, summary);
    if (entries) {
        g_option_context_add_main_entries(ctx, entries, NULL);
    }
    g_option_context_add_main_entries(ctx, global_entries, NULL);
    if (!g_option_context_parse(ctx, argc, argv, &gerr)) {
        error_report("%s: %s", cmd, gerr->message);
        return false;
    }
    /* argv[0] is the program, argv[1] the subcommand. */
    if (*argc - 2 < min_args || *argc - 2 > max_args) {
        error_report("%s: expected %s (see %s --help)", cmd, usage, cmd);
        return false;
    }
    if (cli_global.timeout_ms <= 0) {
        error_report("%s: --timeout must be positive", cmd);
        return false;
    }
    return true;
}

VFIOUserProxy *cli_connect(const char *socket_path, Error **errp)
{
    VFIOUserConnectOptions opts = {
        .timeout_ms = cli_global.timeout_ms,
        .no_extensions = cli_global.no_extensions,
        /* Big enough for fast MIG_DATA_READ when the server allows it. */
        .max_data_xfer_size = VFIO_USER_MAX_MAX_XFER,
    };
    int64_t start = get_clock_ns();
    VFIOUserProxy *proxy = vfio_user_connect(socket_path, &opts, errp);

    if (proxy) {
        cli_step("connect + VERSION", cli_ms_since(start), "%s",
                 socket_path);
    }
    return proxy;
}

VFIOUserProxy *cli_open(const CliCommand *c, int *argc, char ***argv)
{
    Error *err = NULL;
    VFIOUserProxy *proxy;

    if (!cli_parse(c->name, c->usage, c->summary, c->entries, argc, argv,
                   c->min_args, c->max_args) ||
        (c->check && !c->check(*argc, *argv, c->opaque))) {
        return NULL;
    }
    proxy = cli_connect((*argv)[2], &err);
    if (!proxy) {
        error_report_err(err);
    }
    return proxy;
}

int cli_close(VFIOUserProxy *proxy, Error *err)
{
    if (err) {
        error_report_err(err);
    }
    vfio_user_disconnect(proxy);
    return err ? 1 : 0;
}

double cli_ms_since(int64_t start_ns)
{
    return (get_clock_ns() - start_ns) / 1e6;
}

void cli_step(const char *what, double ms, const char *fmt, ...)
{
    g_autofree char *note = NULL;
    va_list ap;

    if (cli_global.quiet) {
        return;
    }
    va_start(ap, fmt);
    note = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    printf("  %-30s %10.3f ms  %s\n", what, ms, note);
    fflush(stdout);
}

bool cli_set_state(VFIOUserProxy *proxy, uint32_t target, bool direct,
                   Error **errp)
{
    uint32_t path[VFIO_DEVICE_STATE_NR * 2];
    uint32_t cur, server_errno;
    uint64_t flags;
    int n;

    if (!vfio_user_mig_get_flags(proxy, &flags, errp) ||
        !vfio_user_mig_get_state(proxy, &cur, errp)) {
        return false;
    }
    if (direct) {
        path[0] = target;
        n = cur == target ? 0 : 1;
    } else {
        n = vus_mig_path(flags, cur, target, path, ARRAY_SIZE(path));
        if (n < 0) {
            error_setg(errp, "no transition %s -> %s for a device with "
                       "migration flags 0x%" PRIx64 "%s",
                       vfio_user_mig_state_name(cur),
                       vfio_user_mig_state_name(target), flags,
                       cur == VFIO_DEVICE_STATE_ERROR ?
                       " (ERROR is left only by reset)" : "");
            return false;
        }
    }
    for (int i = 0; i < n; i++) {
        g_autofree char *arc = g_strdup_printf("%s -> %s",
                                               vfio_user_mig_state_name(cur),
                                               vfio_user_mig_state_name(path[i]));
        int64_t start = get_clock_ns();
        uint32_t now;

        if (!vfio_user_mig_set_state(proxy, path[i], &server_errno, errp)) {
            Error *local = NULL;

            if (vfio_user_mig_get_state(proxy, &now, &local)) {
                error_append_hint(errp, "the device is now in %s\n",
                                  vfio_user_mig_state_name(now));
            } else {
                error_free(local);
            }
            return false;
        }
        cli_step(arc, cli_ms_since(start), "%s", "");
        cur = path[i];
    }
    return true;
}

/* ---- version / info ---- */

static int cmd_version(int argc, char **argv)
{
    static const CliCommand cmd = {
        "version", "SOCKET", "Negotiate the protocol version and show what "
        "the server offers.", NULL, 1, 1,
    };
    VFIOUserProxy *proxy = cli_open(&cmd, &argc, &argv);
    const VFIOUserPeerCaps *c;

    if (!proxy) {
        return 1;
    }
    c = vfio_user_peer_caps(proxy);
    printf("protocol           %u.%u\n", c->major, c->minor);
    printf("capabilities       %s\n", c->json);
    printf("max_msg_fds        %u\n", c->max_msg_fds);
    printf("max_data_xfer_size %" PRIu64 "\n", c->max_data_xfer_size);
    printf("pgsizes            0x%" PRIx64 "\n", c->pgsizes);
    printf("max_dma_maps       %u\n", c->max_dma_maps);
    printf("migration          %s (pgsize %" PRIu64 ")\n",
           c->migration ? "yes" : "no", c->migration_pgsize);
    printf("write_multiple     %s\n", c->write_multiple ? "yes" : "no");
    printf("x-precopy-info     %s\n", c->precopy_info ? "yes" : "no");
    printf("x-mig-data-size    %s\n", c->mig_data_size ? "yes" : "no");
    return cli_close(proxy, NULL);
}

static void print_region(VFIOUserProxy *proxy, uint32_t index)
{
    g_autoptr(Error) err = NULL;
    g_autofree struct vfio_region_info *info = NULL;
    g_autofree struct vfio_region_sparse_mmap_area *areas = NULL;
    int fd, nr;

    info = vfio_user_get_region_info(proxy, index, &fd, &err);
    if (!info) {
        printf("  region %u: %s\n", index, error_get_pretty(err));
        return;
    }
    if (fd >= 0) {
        close(fd);
    }
    if (!info->size) {
        return;
    }
    printf("  region %-2u size 0x%-10" PRIx64 " %s%s%s%s\n", index,
           (uint64_t)info->size,
           info->flags & VFIO_REGION_INFO_FLAG_READ ? "read " : "",
           info->flags & VFIO_REGION_INFO_FLAG_WRITE ? "write " : "",
           info->flags & VFIO_REGION_INFO_FLAG_MMAP ? "mmap " : "",
           fd >= 0 ? "(fd)" : "");
    nr = vfio_region_sparse_areas(info, &areas, NULL, &err);
    if (nr < 0) {
        printf("    %s\n", error_get_pretty(err));
    }
    for (int i = 0; i < nr; i++) {
        printf("    mmap area [0x%" PRIx64 ", +0x%" PRIx64 ")\n",
               (uint64_t)areas[i].offset, (uint64_t)areas[i].size);
    }
}

static int cmd_info(int argc, char **argv)
{
    static const char *const irq_names[] = {
        "INTx", "MSI", "MSI-X", "ERR", "REQ",
    };
    static const CliCommand cmd = {
        "info", "SOCKET", "Show the device: regions, interrupts and "
        "migration support.", NULL, 1, 1,
    };
    g_autoptr(Error) err = NULL;
    struct vfio_user_device_info dev;
    VFIOUserProxy *proxy = cli_open(&cmd, &argc, &argv);
    uint64_t flags;
    uint32_t state;

    if (!proxy) {
        return 1;
    }
    if (!vfio_user_get_device_info(proxy, &dev, &err)) {
        goto out;
    }
    printf("device flags 0x%x%s%s, %u regions, %u irq indices\n", dev.flags,
           dev.flags & VFIO_DEVICE_FLAGS_PCI ? " pci" : "",
           dev.flags & VFIO_DEVICE_FLAGS_RESET ? " reset" : "",
           dev.num_regions, dev.num_irqs);
    for (uint32_t i = 0; i < dev.num_regions; i++) {
        print_region(proxy, i);
    }
    for (uint32_t i = 0; i < dev.num_irqs; i++) {
        struct vfio_irq_info irq;

        if (!vfio_user_get_irq_info(proxy, i, &irq, &err)) {
            goto out;
        }
        if (irq.count) {
            printf("  irq %u (%s): %u vector(s), flags 0x%x\n", i,
                   i < ARRAY_SIZE(irq_names) ? irq_names[i] : "?", irq.count,
                   irq.flags);
        }
    }
    if (vfio_user_mig_get_flags(proxy, &flags, &err) &&
        vfio_user_mig_get_state(proxy, &state, &err)) {
        printf("migration: STOP_COPY%s%s, state %s\n",
               flags & VFIO_MIGRATION_P2P ? " P2P" : "",
               flags & VFIO_MIGRATION_PRE_COPY ? " PRE_COPY" : "",
               vfio_user_mig_state_name(state));
    } else {
        printf("migration: not supported (%s)\n", error_get_pretty(err));
        g_clear_pointer(&err, error_free);
    }
out:
    return cli_close(proxy, g_steal_pointer(&err));
}

/* ---- read / write ---- */

static bool parse_u32(const char *what, const char *str, uint32_t *val)
{
    uint64_t v;

    if (qemu_strtou64(str, &v) < 0 || v > UINT32_MAX) {
        error_report("%s '%s': not a number", what, str);
        return false;
    }
    *val = v;
    return true;
}

/* REGION OFFSET and, for read, COUNT or, for write, VALUE. */
typedef struct AccessArgs {
    uint32_t region;
    uint64_t offset;
    uint64_t count;             /* read */
    gint size;                  /* write */
    uint64_t value;             /* write */
} AccessArgs;

static bool read_args_check(int argc, char **argv, void *opaque)
{
    AccessArgs *a = opaque;

    if (!parse_u32("REGION", argv[3], &a->region)) {
        return false;
    }
    if (qemu_strtou64(argv[4], &a->offset) < 0) {
        error_report("OFFSET '%s': not a number", argv[4]);
        return false;
    }
    if (argc > 5 && (qemu_strtosz(argv[5], &a->count) < 0 || !a->count ||
                     a->count > 256 * MiB)) {
        error_report("COUNT '%s': expected 1 byte to 256M", argv[5]);
        return false;
    }
    return true;
}

static int cmd_read(int argc, char **argv)
{
    AccessArgs a = { .count = 4 };
    const CliCommand cmd = {
        "read", "SOCKET REGION OFFSET [COUNT]", "Read COUNT bytes (default "
        "4) of a region; 1, 2, 4 or 8 bytes are also shown as a "
        "little-endian number.", NULL, 3, 4, read_args_check, &a,
    };
    g_autoptr(Error) err = NULL;
    g_autofree uint8_t *buf = NULL;
    VFIOUserProxy *proxy = cli_open(&cmd, &argc, &argv);
    uint64_t offset = a.offset, count = a.count;
    int64_t start;

    if (!proxy) {
        return 1;
    }
    buf = g_malloc(count);
    start = get_clock_ns();
    if (!vfio_user_region_read(proxy, a.region, offset, buf, count, &err)) {
        return cli_close(proxy, g_steal_pointer(&err));
    }
    cli_step("REGION_READ", cli_ms_since(start), "%" PRIu64 " bytes", count);
    if (count == 1 || count == 2 || count == 4 || count == 8) {
        uint64_t v = 0;

        memcpy(&v, buf, count);
        printf("0x%" PRIx64 " (%" PRIu64 ")\n", v, v);
    } else {
        for (uint64_t i = 0; i < count; i += 16) {
            printf("%08" PRIx64 ":", offset + i);
            for (uint64_t j = i; j < MIN(i + 16, count); j++) {
                printf(" %02x", buf[j]);
            }
            printf("\n");
        }
    }
    return cli_close(proxy, NULL);
}

static bool write_args_check(int argc, char **argv, void *opaque)
{
    AccessArgs *a = opaque;

    if (!parse_u32("REGION", argv[3], &a->region)) {
        return false;
    }
    if (qemu_strtou64(argv[4], &a->offset) < 0 ||
        qemu_strtou64(argv[5], &a->value) < 0) {
        error_report("OFFSET '%s' and VALUE '%s' must be numbers", argv[4],
                     argv[5]);
        return false;
    }
    if (a->size != 1 && a->size != 2 && a->size != 4 && a->size != 8) {
        error_report("--size %d: expected 1, 2, 4 or 8", a->size);
        return false;
    }
    if (a->size < 8 && a->value >> (a->size * 8)) {
        error_report("VALUE 0x%" PRIx64 " does not fit %d bytes", a->value,
                     a->size);
        return false;
    }
    return true;
}

static int cmd_write(int argc, char **argv)
{
    AccessArgs a = { .size = 4 };
    GOptionEntry entries[] = {
        { "size", 's', 0, G_OPTION_ARG_INT, &a.size,
          "access size in bytes: 1, 2, 4 or 8 (default 4)", "N" },
        { NULL }
    };
    const CliCommand cmd = {
        "write", "SOCKET REGION OFFSET VALUE", "Write VALUE as a "
        "little-endian number of --size bytes.", entries, 4, 4,
        write_args_check, &a,
    };
    g_autoptr(Error) err = NULL;
    VFIOUserProxy *proxy = cli_open(&cmd, &argc, &argv);
    int64_t start;

    if (!proxy) {
        return 1;
    }
    start = get_clock_ns();
    if (vfio_user_region_write(proxy, a.region, a.offset, &a.value, a.size,
                               &err)) {
        cli_step("REGION_WRITE", cli_ms_since(start), "%d bytes", a.size);
    }
    return cli_close(proxy, g_steal_pointer(&err));
}

/* ---- state / reset ---- */

static bool state_args_check(int argc, char **argv, void *opaque)
{
    if (argc > 3 && !vfio_user_mig_state_parse(argv[3], opaque)) {
        error_report("state '%s': unknown (stop, running, stop-copy, "
                     "resuming, running-p2p, pre-copy, pre-copy-p2p)",
                     argv[3]);
        return false;
    }
    return true;
}

static int cmd_state(int argc, char **argv)
{
    gboolean direct = false;
    GOptionEntry entries[] = {
        { "direct", 0, 0, G_OPTION_ARG_NONE, &direct,
          "one request; the server picks the path", NULL },
        { NULL }
    };
    uint32_t state, target;
    const CliCommand cmd = {
        "state", "SOCKET [STATE]", "Show the migration state, or move to "
        "STATE (stop, running, stop-copy, resuming, running-p2p, pre-copy, "
        "pre-copy-p2p) one arc at a time, timing each arc.", entries, 1, 2,
        state_args_check, &target,
    };
    g_autoptr(Error) err = NULL;
    VFIOUserProxy *proxy = cli_open(&cmd, &argc, &argv);

    if (!proxy) {
        return 1;
    }
    if ((argc <= 3 || cli_set_state(proxy, target, direct, &err)) &&
        vfio_user_mig_get_state(proxy, &state, &err)) {
        printf("%s\n", vfio_user_mig_state_name(state));
    }
    return cli_close(proxy, g_steal_pointer(&err));
}

static int cmd_reset(int argc, char **argv)
{
    static const CliCommand cmd = {
        "reset", "SOCKET", "Reset the device (also the way out of the ERROR "
        "state).", NULL, 1, 1,
    };
    g_autoptr(Error) err = NULL;
    VFIOUserProxy *proxy = cli_open(&cmd, &argc, &argv);
    int64_t start;

    if (!proxy) {
        return 1;
    }
    start = get_clock_ns();
    if (vfio_user_device_reset(proxy, &err)) {
        cli_step("DEVICE_RESET", cli_ms_since(start), "%s", "");
    }
    return cli_close(proxy, g_steal_pointer(&err));
}

/* ---- vfio-user-dma specific ---- */

static int cmd_dma_check(int argc, char **argv)
{
    static const CliCommand cmd = {
        "dma-check", "SOCKET", "vfio-user-dma only: verify device memory "
        "against its content model and print its checksum. Exits 1 when "
        "pages are bad.", NULL, 1, 1,
    };
    g_autoptr(Error) err = NULL;
    VFIOUserProxy *proxy = cli_open(&cmd, &argc, &argv);
    uint64_t bad, first, sum, foreign, steps, seed;
    uint32_t id;
    int64_t start;

    if (!proxy) {
        return 1;
    }
    start = get_clock_ns();
    if (!vfio_user_region_read(proxy, VDMA_REGS_BAR, VDMA_REG_ID, &id,
                               sizeof(id), &err)) {
        goto fail;
    }
    if (id != VDMA_ID_VALUE) {
        error_setg(&err, "%s: not a vfio-user-dma device (id 0x%08x)", argv[2],
                   id);
        goto fail;
    }
    if (!vfio_user_region_read(proxy, VDMA_REGS_BAR, VDMA_REG_CHECK, &bad,
                               8, &err) ||
        !vfio_user_region_read(proxy, VDMA_REGS_BAR, VDMA_REG_CHECK_FIRST,
                               &first, 8, &err) ||
        !vfio_user_region_read(proxy, VDMA_REGS_BAR, VDMA_REG_CHECKSUM, &sum,
                               8, &err) ||
        !vfio_user_region_read(proxy, VDMA_REGS_BAR, VDMA_REG_FOREIGN,
                               &foreign, 8, &err) ||
        !vfio_user_region_read(proxy, VDMA_REGS_BAR, VDMA_REG_DIRTY_STEPS,
                               &steps, 8, &err) ||
        !vfio_user_region_read(proxy, VDMA_REGS_BAR, VDMA_REG_SEED, &seed, 8,
                               &err)) {
        goto fail;
    }
    cli_step("check", cli_ms_since(start), "%s", "");
    printf("seed %" PRIu64 " dirty-steps %" PRIu64 " foreign-pages %" PRIu64
           " checksum 0x%016" PRIx64 "\n", seed, steps, foreign, sum);
    if (bad) {
        printf("check FAILED: %" PRIu64 " bad pages, first %" PRIu64 "\n",
               bad, first);
    } else {
        printf("check passed\n");
    }
    vfio_user_disconnect(proxy);
    return bad ? 1 : 0;

fail:
    return cli_close(proxy, g_steal_pointer(&err));
}

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} commands[] = {
    { "version", cmd_version, "protocol version and server capabilities" },
    { "info", cmd_info, "device, regions, interrupts, migration support" },
    { "read", cmd_read, "read a region" },
    { "write", cmd_write, "write a region" },
    { "state", cmd_state, "show or change the migration state" },
    { "reset", cmd_reset, "reset the device" },
    { "save", cli_cmd_save, "save the device's migration data to a file" },
    { "load", cli_cmd_load, "load migration data from a file into a device" },
    { "migrate", cli_cmd_migrate, "migrate one device to another server" },
    { "dma-check", cmd_dma_check, "vfio-user-dma: verify device memory" },
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: vfio-user-cli COMMAND [OPTIONS] ARGS...\n\n"
            "Commands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    }
    fprintf(out, "\n'vfio-user-cli COMMAND --help' describes one command.\n");
}

int main(int argc, char **argv)
{
    error_set_progname("vfio-user-cli");
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        if (!strcmp(argv[1], commands[i].name)) {
            return commands[i].fn(argc, argv);
        }
    }
    error_report("unknown command '%s'", argv[1]);
    usage(stderr);
    return 1;
}
