/*
 * Migration entry points for the rest of vmig: the -incoming address
 * parser, start-up hooks, and what other subsystems may ask the
 * migration core (is a migration running? did it complete?).
 */
#ifndef MIGRATION_MISC_H
#define MIGRATION_MISC_H

#include "qemu/osdep.h"
#include "qemu/error.h"

typedef enum MigrationAddressType {
    MIGRATION_ADDRESS_TCP,      /* tcp:HOST:PORT */
    MIGRATION_ADDRESS_UNIX,     /* unix:PATH */
    MIGRATION_ADDRESS_FD,       /* fd:NAME (a getfd name or a number) */
    MIGRATION_ADDRESS_EXEC,     /* exec:COMMAND (run by /bin/sh -c) */
    MIGRATION_ADDRESS_FILE,     /* file:PATH[,offset=N] */
    MIGRATION_ADDRESS_DEFER,    /* defer: wait for migrate-incoming */
    MIGRATION_ADDRESS__MAX,
} MigrationAddressType;

/*
 * A parsed migration address.  Strings are owned by the struct; release
 * them with migration_address_clear().  Members not used by @type are
 * NULL / 0.
 */
typedef struct MigrationAddress {
    MigrationAddressType type;
    char *host;                 /* tcp: name or literal, no brackets */
    char *port;                 /* tcp: decimal port, "0" = any */
    char *path;                 /* unix, file */
    char *fd_name;              /* fd */
    char *command;              /* exec */
    uint64_t offset;            /* file: byte offset of the stream */
} MigrationAddress;

/*
 * Parse @uri into @addr (which the caller zeroes or clears first).
 * Accepts tcp:HOST:PORT (HOST may be a bracketed IPv6 literal, or empty
 * to mean every address), unix:PATH, fd:NAME, exec:COMMAND,
 * file:PATH[,offset=N] and defer.  On failure @addr is left cleared.
 */
bool migration_address_parse(const char *uri, MigrationAddress *addr,
                             Error **errp);
/* Free what @addr owns and zero it (safe on a zeroed struct). */
void migration_address_clear(MigrationAddress *addr);
/* The URI form of @addr (newly allocated), for messages and queries. */
char *migration_address_to_uri(const MigrationAddress *addr);
const char *migration_address_type_name(MigrationAddressType type);

/*
 * Set up the migration core: register the built-in state handlers (RAM,
 * guest program) and the change-state hooks.  Called once from main,
 * after the machine is built and before the main loop runs.
 */
void migration_init(void);

/*
 * Start listening for an incoming migration on @uri (anything but
 * "defer"): binds at once, so that a source may connect as soon as
 * vmig is up, then loads the stream on the incoming thread.  Called by
 * vl.c after the machine is built, with the BQL held.  The run state
 * must already be RUN_STATE_INMIGRATE.
 */
bool migration_incoming_start(const char *uri, Error **errp);

/*
 * Whether the destination starts the VM after a successful load (false
 * under -S).  vl.c sets it before migration_incoming_start(); the
 * default is true.
 */
void migration_incoming_set_autostart(bool autostart);

/*
 * At exit, after the main loop has stopped and before RAM and devices
 * go away: cancel any migration in either direction and wait for its
 * threads.  Main thread, BQL held (dropped while waiting).
 */
void migration_shutdown(void);

/* Whether an outgoing migration is between setup and its end. */
bool migration_is_active(void);
/* Whether this process is the destination of a running migration. */
bool migration_incoming_in_progress(void);

#endif
