/*
 * vfio-user-cli: shared helpers of the subcommands.
 */
#ifndef TOOLS_VFIO_USER_CLI_H
#define TOOLS_VFIO_USER_CLI_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "hw/vfio-user/client.h"

/* Options every subcommand takes. */
typedef struct CliGlobal {
    gint timeout_ms;
    gboolean no_extensions;
    gboolean quiet;
} CliGlobal;

extern CliGlobal cli_global;

/*
 * Parse a subcommand's options (plus the global ones) and its positional
 * arguments: @usage names them ("SOCKET REGION OFFSET"); between
 * @min_args and @max_args must be given.  Prints --help and exits.
 */
bool cli_parse(const char *cmd, const char *usage, const char *summary,
               GOptionEntry *entries, int *argc, char ***argv,
               int min_args, int max_args);

VFIOUserProxy *cli_connect(const char *socket_path, Error **errp);

/* More checks of the parsed arguments; false after reporting the problem. */
typedef bool CliCheckFn(int argc, char **argv, void *opaque);

/* A subcommand's command line, as cli_parse() takes it. */
typedef struct CliCommand {
    const char *name;
    const char *usage;
    const char *summary;
    GOptionEntry *entries;
    int min_args;
    int max_args;
    CliCheckFn *check;          /* or NULL */
    void *opaque;               /* for @check */
} CliCommand;

/*
 * The start of most subcommands: cli_parse(), @c->check, then
 * cli_connect() to the SOCKET argument (argv[2]).  Returns NULL after
 * reporting why it could not.
 */
VFIOUserProxy *cli_open(const CliCommand *c, int *argc, char ***argv);
/*
 * The end of a subcommand: report @err (taking it) when set, disconnect
 * @proxy (may be NULL).  Returns the exit status, 1 when @err was set.
 */
int cli_close(VFIOUserProxy *proxy, Error *err);

/* Milliseconds since @start_ns. */
double cli_ms_since(int64_t start_ns);
/* Print a timing line: "  %-28s %10.3f ms" plus an optional note. */
void cli_step(const char *what, double ms, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/*
 * Move the device to @target one arc at a time along the FSM path,
 * printing each arc and its time.  With @direct, one request and the
 * server picks the path.
 */
bool cli_set_state(VFIOUserProxy *proxy, uint32_t target, bool direct,
                   Error **errp);

/* Subcommands. */
int cli_cmd_save(int argc, char **argv);
int cli_cmd_load(int argc, char **argv);
int cli_cmd_migrate(int argc, char **argv);

#endif
