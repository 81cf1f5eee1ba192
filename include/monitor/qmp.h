/*
 * QMP: the JSON machine protocol (json-glib).
 *
 * Commands are declared in the QMP schema (one file per subsystem, e.g.
 * migration/migration.json; docs/devel/qapi.rst).  The generic
 * marshaller checks every request against it, then calls the handler
 * qmp_<name>() with its arguments typed (a generated struct, see
 * qapi/qapi-types.h in the build tree).  Handlers run on the main thread
 * with the BQL held, and either set *ret (NULL means the empty object
 * {}) or fail through errp, whose class (GenericError, CommandNotFound,
 * ...) and message become the error reply.
 *
 * A command must not run the main loop itself (no nested
 * g_main_context_iteration()): the connection it came from is in the
 * middle of reading its input.  Work that has to wait finishes later
 * and reports through an event, as QEMU's migrate does.
 */
#ifndef MONITOR_QMP_H
#define MONITOR_QMP_H

#include <json-glib/json-glib.h>
#include "qemu/error.h"
#include "monitor/qapi.h"

/*
 * A command outside the schema (unit tests only), which gets the
 * arguments unchecked as a JsonObject ({} when the client sent none).
 */
typedef void QmpCommandFunc(JsonObject *args, JsonNode **ret, Error **errp);

void qmp_register_command(const char *name, QmpCommandFunc *fn,
                          QmpCommandFlags flags);
/* Register commands from a constructor: qmp_init(my_register_fn) */
#define qmp_init(fn) \
    static void __attribute__((constructor)) do_qmp_init_##fn(void) { fn(); }
/*
 * Take a command away, before any client connects (the QMP fuzz target
 * keeps only commands that stay inside the process).
 */
void qmp_unregister_command(const char *name);

/*
 * Parse and start a -qmp option: "unix:PATH,server=on,wait=off" or
 * "tcp:HOST:PORT,server=on,wait=off".  Binds and listens at once, so a
 * client may connect as soon as vmig is up.
 */
bool monitor_qmp_add(const char *optarg, Error **errp);
/* Check a -qmp option's syntax without doing anything (command line). */
bool monitor_qmp_check(const char *optarg, Error **errp);
/*
 * The general form, for -qmp, -monitor and -mon (@option names it in
 * messages): "unix:PATH" or "tcp:HOST:PORT" with server=on|off and
 * wait=on|off (server=on waits for the first client unless wait=off;
 * server=off connects at start), or "stdio".  @readline: the HMP
 * console rather than QMP.
 */
bool monitor_check(const char *option, const char *spec, Error **errp);
bool monitor_start(const char *option, const char *spec, bool readline,
                   Error **errp);
/*
 * A -chardev option as a monitor address (socket: path= or host=/port=,
 * server=, wait=; stdio), with its id in *@id; NULL with @errp set for
 * backends and options vmig's monitors cannot use.
 */
char *monitor_chardev_spec(const char *optarg, char **id, Error **errp);
/*
 * Serve QMP on a connected socket (a test's socketpair, an inherited fd):
 * the greeting goes out at once.  Takes ownership of @fd on success only.
 * A UNIX socket may pass fds for getfd.
 */
bool monitor_qmp_add_fd(int fd, Error **errp);
/*
 * At exit: deliver queued events, give pending replies (the one to quit,
 * its SHUTDOWN event) a bounded moment to reach the clients, then close
 * every client and listener (removing UNIX socket files) and every fd
 * stored with getfd.  The monitor may be set up again afterwards.
 */
void monitor_cleanup(void);

/*
 * Emit an event to every client past negotiation.  Safe from any thread
 * (delivered from the main loop, in order).  Takes ownership of @data,
 * which may be NULL.
 */
void qmp_event_emit(const char *name, JsonObject *data);

/*
 * Take the fd a client stored with "getfd" under @name (the caller owns
 * it afterwards).  Returns -1 and sets errp when there is none.
 */
int monitor_fd_take(const char *name, Error **errp);
/*
 * -add-fd: put inherited @fd (it is closed; the set keeps a duplicate)
 * into fd set @id, for "/dev/fdset/@id" paths.
 */
bool monitor_fdset_add(int64_t id, int fd, const char *opaque, Error **errp);

#endif
