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

/*
 * A guest that rewrites its working set as fast as its vCPUs go (GB/s):
 * plain precopy cannot converge at max-bandwidth's default of 128 MiB/s,
 * however loaded the machine (a pass of the working set takes a second,
 * in which the guest rewrites all of it).  Pass it as @extra.
 */
#define MIG_TEST_BUSY_GUEST "-m 256M -guest stress,ws=128M"

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

/*
 * @command with @args (a JSON object) must fail with GenericError, and
 * its message must contain @part; the failure names all three.
 */
void mig_assert_error(QTestState *s, const char *command, const char *args,
                      const char *part);

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
/* Wait (bounded) until the migration has failed; returns its error-desc. */
char *mig_wait_failed(QTestState *s, int timeout_ms);
/* Wait until ram.dirty-sync-count reaches @count while still active. */
void mig_wait_sync_count(QTestState *s, int64_t count, int timeout_ms);

/* cpu-throttle-percentage in query-migrate, 0 when absent. */
int64_t mig_throttle_percentage(QTestState *s);
/* A member of query-migrate's top level, or @def when absent. */
int64_t mig_query_int(QTestState *s, const char *member, int64_t def);
/*
 * Wait (bounded) until the migration is active with the throttle on;
 * returns the percentage.
 */
int64_t mig_wait_throttle(QTestState *s, int timeout_ms);

/* x-query-guest (the "return" object). */
JsonNode *mig_guest_query(QTestState *s);
/* Pages per second the guest wrote over the last second (x-query-guest). */
int64_t mig_guest_rate(QTestState *s);
/* The rate, once it covers a whole second of the guest's life. */
int64_t mig_guest_settled_rate(QTestState *s);
/* Time its vCPUs slept for throttles, in all (x-query-guest), in us. */
int64_t mig_guest_throttle_us(QTestState *s);
/*
 * The throttle is off for good: no vCPU sleeps for one any more (a
 * quarter second without such a sleep, within a bounded wait), and the
 * guest's rate reaches half of @full_rate (pages per second before the
 * migration) within a bounded wait.
 */
void mig_assert_full_speed(QTestState *s, int64_t full_rate);

/* Bytes the guest has written (x-query-guest). */
int64_t mig_guest_bytes(QTestState *s);
/* Wait until the guest has written @delta more bytes (bounded). */
void mig_wait_guest_progress(QTestState *s, int64_t delta);
/* x-guest-verify must pass. */
void mig_assert_guest_ok(QTestState *s);
/* query-status must be @status. */
void mig_assert_runstate(QTestState *s, const char *status);

/*
 * The next MIGRATION events of @s (with the events capability) carry the
 * statuses @statuses (NULL-terminated), in this order.
 */
void mig_assert_status_events(QTestState *s, const char *const *statuses);

/* The destination completes, runs, its guest makes progress and verifies. */
void mig_check_loaded(QTestState *dst);
/* The whole happy path: mig_check_loaded; the source is in postmigrate. */
void mig_check_success(QTestState *src, QTestState *dst);

#endif
