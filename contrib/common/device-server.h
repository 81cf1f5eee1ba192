/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * What the sample device servers under contrib/ share around
 * libvfio-user-server: the command line options every one of them has,
 * creating and realizing the context, serving until SIGTERM or SIGINT,
 * and rejecting a bad incoming migration stream.  The device itself
 * (regions, capabilities, FSM arcs, stream format) stays in its own
 * directory.
 */
#ifndef CONTRIB_COMMON_DEVICE_SERVER_H
#define CONTRIB_COMMON_DEVICE_SERVER_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "vfio-user/protocol.h"
#include "vfio-user-server/libvus.h"

/* GOptionEntry lines for the options every device server has. */
#define DEVSERVER_OPT_SOCKET(path_var) \
    { "socket", 's', 0, G_OPTION_ARG_FILENAME, &(path_var), \
      "listen on the UNIX socket PATH (required)", "PATH" }
#define DEVSERVER_OPT_NAME(name_var, default_name) \
    { "name", 'n', 0, G_OPTION_ARG_STRING, &(name_var), \
      "device name in messages (default " default_name ")", "NAME" }
#define DEVSERVER_OPT_NO_PRECOPY(flag_var) \
    { "no-precopy", 0, 0, G_OPTION_ARG_NONE, &(flag_var), \
      "do not offer PRE_COPY", NULL }
#define DEVSERVER_OPT_NO_P2P(flag_var) \
    { "no-p2p", 0, 0, G_OPTION_ARG_NONE, &(flag_var), \
      "do not offer the P2P states", NULL }

/*
 * Name the program @prog in messages and parse the command line with
 * @entries (NULL-terminated); @summary follows the usage line of --help.
 * *@socket_path is where DEVSERVER_OPT_SOCKET stores, and it is
 * required.  Reports the error and returns false on a bad command line.
 */
bool devserver_parse_options(const char *prog, const char *summary,
                             const GOptionEntry *entries,
                             char *const *socket_path,
                             int *argc, char ***argv);

/* Migration flags: STOP_COPY always, PRE_COPY and the P2P states unless
 * refused. */
uint64_t devserver_mig_flags(bool no_precopy, bool no_p2p);

/*
 * A context for device @name (also its name in messages) with callbacks
 * on @opaque, logging warnings and errors to stderr, moving at most
 * @max_xfer bytes of data per message.  NULL with @errp set on failure.
 */
VusCtx *devserver_ctx_new(const char *name, void *opaque, uint64_t max_xfer,
                          Error **errp);

/*
 * Report that a step of device @name's set-up (vus_setup_*(),
 * vus_pci_*(), vus_ctx_set_*()) failed with negative errno @ret.
 * Returns false.
 */
bool devserver_setup_failed(const char *name, int ret, Error **errp);

/*
 * End the set-up of @ctx: register @reset and listen on @socket_path.
 * Returns false with @errp set on failure.
 */
bool devserver_realize(VusCtx *ctx, const char *name, VusResetFn reset,
                       const char *socket_path, Error **errp);

/*
 * Serve @ctx on the calling thread until SIGTERM or SIGINT stops it
 * (SIGPIPE is ignored from here on).  One context at a time.  Returns the
 * process exit status: 0 after a signal, 1 if the listening socket failed.
 */
int devserver_run(VusCtx *ctx);

/*
 * The first problem found in an incoming migration stream: kept in
 * *@error (already set: left alone) and logged once through @ctx.
 * Returns -EINVAL, for the write_data callback to return.
 */
ssize_t devserver_stream_reject(VusCtx *ctx, char **error,
                                const char *fmt, ...) G_GNUC_PRINTF(3, 4);

#endif
