/*
 * vfio-user-cli: save, load and migrate a device's migration data.
 *
 * save reads the device's stream the way a VMM does: PRE_COPY passes
 * while the device runs (when it offers PRE_COPY), then STOP_COPY, and
 * writes it to a file unchanged; load writes such a file to a device in
 * RESUMING; migrate does both at once between two servers.
 */
#include "cli.h"
#include "qemu/cutils.h"

typedef VFIOUserMigSink CliSink;

typedef struct SaveOptions {
    gboolean no_precopy;
    gint max_passes;
    gchar *threshold_str;
    uint64_t threshold;
    gboolean resume;
} SaveOptions;

static double gib_per_s(uint64_t bytes, double ms)
{
    return ms > 0 ? bytes / (double)GiB / (ms / 1000) : 0;
}

/* Read until the device has nothing more for now; returns bytes or -1. */
static int64_t drain(VFIOUserProxy *src, CliSink *sink, void *opaque,
                     Error **errp)
{
    bool end;

    return vfio_user_mig_data_drain(src, UINT64_MAX, sink, opaque, &end,
                                    errp);
}

/*
 * Save @src into @sink.  *@stop_ns gets the moment the device was
 * stopped (the start of its downtime).
 */
static bool save_device(VFIOUserProxy *src, const SaveOptions *o,
                        CliSink *sink, void *opaque, int64_t *stop_ns,
                        uint64_t *total, Error **errp)
{
    const VFIOUserPeerCaps *caps = vfio_user_peer_caps(src);
    uint64_t flags, initial = 0, dirty = 0, estimate;
    int64_t start, n;

    *total = 0;
    if (!vfio_user_mig_get_flags(src, &flags, errp)) {
        return false;
    }
    if (!o->no_precopy && (flags & VFIO_MIGRATION_PRE_COPY)) {
        if (!cli_set_state(src, VFIO_DEVICE_STATE_PRE_COPY, false, errp)) {
            return false;
        }
        for (int pass = 1; ; pass++) {
            g_autofree char *what = g_strdup_printf("pre-copy pass %d", pass);
            bool have_info = caps->precopy_info;
            double ms;

            start = get_clock_ns();
            n = drain(src, sink, opaque, errp);
            if (n < 0) {
                return false;
            }
            ms = cli_ms_since(start);
            *total += n;
            if (have_info &&
                !vfio_user_mig_precopy_info(src, &initial, &dirty, errp)) {
                return false;
            }
            if (have_info) {
                cli_step(what, ms, "%" PRId64 " bytes (%.2f GiB/s), initial %"
                         PRIu64 " dirty %" PRIu64, n, gib_per_s(n, ms),
                         initial, dirty);
            } else {
                cli_step(what, ms, "%" PRId64 " bytes (%.2f GiB/s)", n,
                         gib_per_s(n, ms));
            }
            /*
             * Without the precopy-info extension, what one pass moved is
             * the only measure of what is left.
             */
            if ((have_info ? initial == 0 && dirty <= o->threshold :
                             pass > 1 && (uint64_t)n <= o->threshold) ||
                pass >= o->max_passes) {
                break;
            }
        }
    }
    if (caps->mig_data_size &&
        vfio_user_mig_data_size(src, &estimate, NULL)) {
        cli_step("MIG_DATA_SIZE", 0, "stop-copy estimate %" PRIu64 " bytes",
                 estimate);
    }
    *stop_ns = get_clock_ns();
    if (!cli_set_state(src, VFIO_DEVICE_STATE_STOP_COPY, false, errp)) {
        return false;
    }
    start = get_clock_ns();
    n = drain(src, sink, opaque, errp);
    if (n < 0) {
        return false;
    }
    cli_step("stop-copy data", cli_ms_since(start), "%" PRId64 " bytes "
             "(%.2f GiB/s)", n, gib_per_s(n, cli_ms_since(start)));
    *total += n;
    return cli_set_state(src, o->resume ? VFIO_DEVICE_STATE_RUNNING :
                         VFIO_DEVICE_STATE_STOP, false, errp);
}

static bool sink_fd(void *opaque, const void *buf, size_t len, Error **errp)
{
    int fd = *(int *)opaque;
    const uint8_t *p = buf;

    while (len) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            error_setg_errno(errp, errno, "writing the migration data file");
            return false;
        }
        p += n;
        len -= n;
    }
    return true;
}

static bool sink_device(void *opaque, const void *buf, size_t len,
                        Error **errp)
{
    if (!vfio_user_mig_data_write(opaque, buf, len, errp)) {
        error_prepend(errp, "destination: ");
        return false;
    }
    return true;
}

static GOptionEntry *save_entries(SaveOptions *o)
{
    GOptionEntry entries[] = {
        { "no-precopy", 0, 0, G_OPTION_ARG_NONE, &o->no_precopy,
          "go straight to STOP_COPY even if the device offers PRE_COPY",
          NULL },
        { "max-passes", 0, 0, G_OPTION_ARG_INT, &o->max_passes,
          "at most N PRE_COPY passes (default 8)", "N" },
        { "threshold", 0, 0, G_OPTION_ARG_STRING, &o->threshold_str,
          "leave PRE_COPY once initial data is sent and at most SIZE is "
          "dirty (default 1M)", "SIZE" },
        { "resume", 0, 0, G_OPTION_ARG_NONE, &o->resume,
          "put the source device back to RUNNING afterwards (default: STOP)",
          NULL },
        { NULL }
    };

    return g_memdup2(entries, sizeof(entries));
}

static bool save_options_check(SaveOptions *o)
{
    o->threshold = MiB;
    if (o->threshold_str && qemu_strtosz(o->threshold_str, &o->threshold) < 0) {
        error_report("--threshold '%s': not a size", o->threshold_str);
        return false;
    }
    if (o->max_passes < 1) {
        error_report("--max-passes %d: must be at least 1", o->max_passes);
        return false;
    }
    return true;
}

int cli_cmd_save(int argc, char **argv)
{
    SaveOptions o = { .max_passes = 8 };
    g_autofree GOptionEntry *entries = save_entries(&o);
    g_autoptr(Error) err = NULL;
    VFIOUserProxy *proxy = NULL;
    int64_t start, stop_ns;
    uint64_t total;
    int fd = -1;
    double ms;

    if (!cli_parse("save", "SOCKET FILE", "Save the device's migration data "
                   "to FILE: PRE_COPY passes while it runs (if offered), "
                   "then STOP_COPY.  The device ends in STOP.", entries,
                   &argc, &argv, 2, 2) ||
        !save_options_check(&o)) {
        g_free(o.threshold_str);
        return 1;
    }
    g_free(o.threshold_str);
    fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        error_report("cannot create '%s': %s", argv[3], g_strerror(errno));
        return 1;
    }
    start = get_clock_ns();
    proxy = cli_connect(argv[2], &err);
    if (!proxy || !save_device(proxy, &o, sink_fd, &fd, &stop_ns, &total,
                               &err)) {
        goto fail;
    }
    if (fsync(fd) < 0 && errno != EINVAL) {
        error_setg_errno(&err, errno, "writing '%s'", argv[3]);
        goto fail;
    }
    ms = cli_ms_since(start);
    cli_step("total", ms, "%" PRIu64 " bytes to %s", total, argv[3]);
fail:
    close(fd);
    return cli_close(proxy, g_steal_pointer(&err));
}

int cli_cmd_load(int argc, char **argv)
{
    gboolean stay_stopped = false;
    GOptionEntry entries[] = {
        { "stay-stopped", 0, 0, G_OPTION_ARG_NONE, &stay_stopped,
          "leave the device in STOP after loading (default: RUNNING)", NULL },
        { NULL }
    };
    g_autoptr(Error) err = NULL;
    VFIOUserProxy *proxy = NULL;
    g_autofree uint8_t *buf = NULL;
    int64_t start, t;
    uint64_t total = 0;
    size_t chunk;
    int fd;

    if (!cli_parse("load", "SOCKET FILE", "Load migration data saved by "
                   "'save' into the device: RESUMING, the data, then STOP "
                   "(where the device checks it) and RUNNING.", entries, &argc,
                   &argv, 2, 2)) {
        return 1;
    }
    fd = open(argv[3], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error_report("cannot open '%s': %s", argv[3], g_strerror(errno));
        return 1;
    }
    start = get_clock_ns();
    proxy = cli_connect(argv[2], &err);
    if (!proxy ||
        !cli_set_state(proxy, VFIO_DEVICE_STATE_RESUMING, false, &err)) {
        goto fail;
    }
    chunk = vfio_user_mig_data_chunk(proxy);
    buf = g_malloc(chunk);
    t = get_clock_ns();
    for (;;) {
        ssize_t n = read(fd, buf, chunk);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            error_setg_errno(&err, errno, "reading '%s'", argv[3]);
            goto fail;
        }
        if (n == 0) {
            break;
        }
        if (!vfio_user_mig_data_write(proxy, buf, n, &err)) {
            goto fail;
        }
        total += n;
    }
    cli_step("MIG_DATA_WRITE", cli_ms_since(t), "%" PRIu64 " bytes "
             "(%.2f GiB/s)", total, gib_per_s(total, cli_ms_since(t)));
    if (!cli_set_state(proxy, stay_stopped ? VFIO_DEVICE_STATE_STOP :
                       VFIO_DEVICE_STATE_RUNNING, false, &err)) {
        error_prepend(&err, "the device rejected the data: ");
        goto fail;
    }
    cli_step("total", cli_ms_since(start), "%s", "");
fail:
    close(fd);
    return cli_close(proxy, g_steal_pointer(&err));
}

int cli_cmd_migrate(int argc, char **argv)
{
    SaveOptions o = { .max_passes = 8 };
    g_autofree GOptionEntry *entries = save_entries(&o);
    g_autoptr(Error) err = NULL;
    VFIOUserProxy *src = NULL, *dst = NULL;
    int64_t start, stop_ns = 0;
    uint64_t total;

    if (!cli_parse("migrate", "SRC-SOCKET DST-SOCKET", "Migrate a device "
                   "with no VMM: the destination enters RESUMING, the source "
                   "streams PRE_COPY passes then STOP_COPY into it, the "
                   "destination checks the data and runs; the source ends "
                   "in STOP.", entries, &argc, &argv, 2, 2) ||
        !save_options_check(&o)) {
        g_free(o.threshold_str);
        return 1;
    }
    g_free(o.threshold_str);
    start = get_clock_ns();
    if (!(src = cli_connect(argv[2], &err)) ||
        !(dst = cli_connect(argv[3], &err)) ||
        !cli_set_state(dst, VFIO_DEVICE_STATE_RESUMING, false, &err) ||
        !save_device(src, &o, sink_device, dst, &stop_ns, &total, &err)) {
        goto fail;
    }
    if (!cli_set_state(dst, VFIO_DEVICE_STATE_RUNNING, false, &err)) {
        error_prepend(&err, "the destination rejected the data: ");
        goto fail;
    }
    cli_step("downtime", cli_ms_since(stop_ns), "source stopped until the "
             "destination ran");
    cli_step("total", cli_ms_since(start), "%" PRIu64 " bytes", total);
fail:
    vfio_user_disconnect(dst);
    return cli_close(src, g_steal_pointer(&err));
}
