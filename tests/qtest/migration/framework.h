/*
 * Helpers shared by the migration tests: start a source and a
 * destination, drive QMP, wait (bounded) for a status, check the guest.
 */
#ifndef MIGRATION_TEST_FRAMEWORK_H
#define MIGRATION_TEST_FRAMEWORK_H

#include "qemu/osdep.h"
#include "libqtest.h"

/* The machine both sides run unless a test says otherwise. */
#define MIG_TEST_BASE "-m 128M -smp 2"
/*
 * The guest dirties at most 32 MiB/s, so that a migration converges under
 * a sanitizer and on a loaded machine; the convergence test lifts this.
 */
#define MIG_TEST_MACHINE MIG_TEST_BASE " -guest stress,ws=64M,rate=32M"

/* A VM with MIG_TEST_MACHINE plus @extra (may be ""; its -guest wins). */
QTestState *mig_start_vm(const char *extra);
/* A destination waiting on @incoming ("defer" or a URI) plus @extra. */
QTestState *mig_start_dst(const char *incoming, const char *extra);

/* A fresh "unix:PATH" address in the test's temporary directory. */
char *mig_sock_uri(void);

void mig_set_cap(QTestState *s, const char *cap, bool on);
void mig_set_param(QTestState *s, const char *name, int64_t value);
/* Unlimited bandwidth: tests should take seconds, not minutes. */
void mig_set_fast(QTestState *s);
void mig_migrate(QTestState *s, const char *uri);
/* migrate, expecting an error; returns its description. */
char *mig_migrate_expect_error(QTestState *s, const char *uri);

/* query-migrate (the "return" object). */
JsonNode *mig_query(QTestState *s);
/* The status in query-migrate, or "" before any migration. */
char *mig_status(QTestState *s);
/*
 * Poll until the status is one of @want (a NULL-terminated list) and
 * return it; fail the test after @timeout_ms or on an unexpected
 * terminal status.  A negative @timeout_ms waits without a deadline,
 * for tests whose point is that the migration completes at all (meson's
 * test timeout is then the only clock).
 */
char *mig_wait_status(QTestState *s, const char *const *want, int timeout_ms);
void mig_wait_completed(QTestState *s, int timeout_ms);
/* Wait until ram.dirty-sync-count reaches @count while still active. */
void mig_wait_sync_count(QTestState *s, int64_t count, int timeout_ms);

/* Bytes the guest has written (x-query-guest). */
int64_t mig_guest_bytes(QTestState *s);
/* Wait until the guest has written @delta more bytes (bounded). */
void mig_wait_guest_progress(QTestState *s, int64_t delta);
/* x-guest-verify must pass. */
void mig_assert_guest_ok(QTestState *s);
/* query-status must be @status. */
void mig_assert_runstate(QTestState *s, const char *status);

/* The destination completes, runs, its guest makes progress and verifies. */
void mig_check_loaded(QTestState *dst);
/* The whole happy path: mig_check_loaded; the source is in postmigrate. */
void mig_check_success(QTestState *src, QTestState *dst);

#endif
