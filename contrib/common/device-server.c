/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Shared set-up, serving and stream-rejection helpers of the sample
 * device servers (see device-server.h).
 */
#include "device-server.h"

#include <signal.h>

/* The context devserver_run() serves, for the signal handler. */
static VusCtx *serving_ctx;

bool devserver_parse_options(const char *prog, const char *summary,
                             const GOptionEntry *entries,
                             char *const *socket_path,
                             int *argc, char ***argv)
{
    g_autoptr(GOptionContext) octx = g_option_context_new(summary);
    g_autoptr(GError) gerr = NULL;

    error_set_progname(prog);
    g_option_context_add_main_entries(octx, entries, NULL);
    if (!g_option_context_parse(octx, argc, argv, &gerr)) {
        error_report("%s", gerr->message);
        return false;
    }
    if (!*socket_path) {
        error_report("--socket PATH is required (see --help)");
        return false;
    }
    return true;
}

uint64_t devserver_mig_flags(bool no_precopy, bool no_p2p)
{
    return VFIO_MIGRATION_STOP_COPY |
           (no_p2p ? 0 : VFIO_MIGRATION_P2P) |
           (no_precopy ? 0 : VFIO_MIGRATION_PRE_COPY);
}

static void devserver_log(void *opaque, VusLogLevel level, const char *msg)
{
    fprintf(stderr, "%s\n", msg);
}

VusCtx *devserver_ctx_new(const char *name, void *opaque, uint64_t max_xfer,
                          Error **errp)
{
    VusCtx *ctx = vus_ctx_new(name, opaque);
    int ret;

    if (!ctx) {
        error_setg(errp, "%s: out of memory", name);
        return NULL;
    }
    vus_ctx_set_log(ctx, devserver_log, VUS_LOG_WARN);
    ret = vus_ctx_set_max_data_xfer_size(ctx, max_xfer);
    if (ret < 0) {
        devserver_setup_failed(name, ret, errp);
        vus_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

bool devserver_setup_failed(const char *name, int ret, Error **errp)
{
    error_setg(errp, "%s: device set-up failed: %s", name, g_strerror(-ret));
    return false;
}

bool devserver_realize(VusCtx *ctx, const char *name, VusResetFn reset,
                       const char *socket_path, Error **errp)
{
    int ret;

    vus_setup_reset(ctx, reset);
    ret = vus_ctx_realize(ctx, socket_path);
    if (ret < 0) {
        error_setg(errp, "%s: cannot listen on %s: %s", name, socket_path,
                   g_strerror(-ret));
        return false;
    }
    return true;
}

static void devserver_on_signal(int sig)
{
    if (serving_ctx) {
        vus_ctx_stop(serving_ctx);
    }
}

int devserver_run(VusCtx *ctx)
{
    struct sigaction sa = { .sa_handler = devserver_on_signal };
    int ret;

    serving_ctx = ctx;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    ret = vus_ctx_run(ctx);
    return ret < 0 ? 1 : 0;
}

ssize_t devserver_stream_reject(VusCtx *ctx, char **error,
                                const char *fmt, ...)
{
    va_list ap;

    if (!*error) {
        va_start(ap, fmt);
        *error = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        vus_log(ctx, VUS_LOG_ERROR, "migration stream rejected: %s", *error);
    }
    return -EINVAL;
}
