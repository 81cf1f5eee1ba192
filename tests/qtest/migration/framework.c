/*
 * Helpers shared by the migration tests.
 */
#include "qemu/osdep.h"
#include "framework.h"

/* The default machine, with the default guest unless @extra names one. */
static const char *machine_for(const char *extra)
{
    return strstr(extra, "-guest ") ? MIG_TEST_BASE : MIG_TEST_MACHINE;
}

QTestState *mig_start_vm(const char *extra)
{
    return qtest_initf("%s %s", machine_for(extra), extra);
}

QTestState *mig_start_dst(const char *incoming, const char *extra)
{
    g_autofree char *quoted = g_shell_quote(incoming);

    return qtest_initf("%s -incoming %s %s", machine_for(extra), quoted,
                       extra);
}

char *mig_sock_uri(void)
{
    g_autofree char *path = qtest_tmp_path("mig", "sock");

    return g_strdup_printf("unix:%s", path);
}

void mig_set_cap(QTestState *s, const char *cap, bool on)
{
    qtest_qmp_assert_ok(s, "{\"execute\": \"migrate-set-capabilities\", "
                        "\"arguments\": {\"capabilities\": [{\"capability\": "
                        "\"%s\", \"state\": %s}]}}", cap,
                        on ? "true" : "false");
}

void mig_set_param(QTestState *s, const char *name, int64_t value)
{
    qtest_qmp_assert_ok(s, "{\"execute\": \"migrate-set-parameters\", "
                        "\"arguments\": {\"%s\": %" PRId64 "}}", name, value);
}

void mig_set_fast(QTestState *s)
{
    mig_set_param(s, "max-bandwidth", 0);
}

void mig_migrate(QTestState *s, const char *uri)
{
    qtest_qmp_assert_ok(s, "{\"execute\": \"migrate\", \"arguments\": "
                        "{\"uri\": \"%s\"}}", uri);
}

char *mig_migrate_expect_error(QTestState *s, const char *uri)
{
    return qtest_qmp_expect_error(s, "GenericError", "{\"execute\": "
                                  "\"migrate\", \"arguments\": {\"uri\": "
                                  "\"%s\"}}", uri);
}

void mig_assert_error(QTestState *s, const char *command, const char *args,
                      const char *part)
{
    g_autofree char *desc = qtest_qmp_expect_error(s, "GenericError",
        "{\"execute\": \"%s\", \"arguments\": %s}", command, args);

    if (!strstr(desc, part)) {
        g_error("%s %s: '%s' does not say '%s'", command, args, desc, part);
    }
}

JsonNode *mig_query(QTestState *s)
{
    return qtest_qmp_assert_success(s, "{\"execute\": \"query-migrate\"}");
}

char *mig_status(QTestState *s)
{
    g_autoptr(JsonNode) r = mig_query(s);
    JsonObject *obj = qtest_obj(r);

    if (!json_object_has_member(obj, "status")) {
        return g_strdup("");
    }
    return g_strdup(json_object_get_string_member(obj, "status"));
}

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++) {
        if (!strcmp(s, *list)) {
            return true;
        }
    }
    return false;
}

char *mig_wait_status(QTestState *s, const char *const *want, int timeout_ms)
{
    static const char *const terminal[] = {
        "completed", "failed", "cancelled", NULL
    };
    int64_t deadline = g_get_monotonic_time() + timeout_ms * 1000LL;

    for (;;) {
        g_autoptr(JsonNode) r = mig_query(s);
        JsonObject *obj = qtest_obj(r);
        const char *st = json_object_has_member(obj, "status")
                         ? json_object_get_string_member(obj, "status") : "";

        if (in_list(st, want)) {
            return g_strdup(st);
        }
        if (in_list(st, terminal)) {
            const char *desc = json_object_has_member(obj, "error-desc")
                ? json_object_get_string_member(obj, "error-desc") : "";

            g_error("migration reached '%s' while waiting for '%s' (%s)", st,
                    want[0], desc);
        }
        if (timeout_ms >= 0 && g_get_monotonic_time() > deadline) {
            g_error("migration still '%s' after %d ms, waiting for '%s'", st,
                    timeout_ms, want[0]);
        }
        g_usleep(20 * 1000);
    }
}

char *mig_wait_failed(QTestState *s, int timeout_ms)
{
    static const char *const want[] = { "failed", NULL };
    g_autofree char *st = mig_wait_status(s, want, timeout_ms);
    g_autoptr(JsonNode) q = mig_query(s);

    g_assert_true(json_object_has_member(qtest_obj(q), "error-desc"));
    return g_strdup(qtest_get_str(q, "error-desc"));
}

void mig_wait_completed(QTestState *s, int timeout_ms)
{
    static const char *const want[] = { "completed", NULL };
    g_autofree char *st = mig_wait_status(s, want, timeout_ms);
}

void mig_wait_sync_count(QTestState *s, int64_t count, int timeout_ms)
{
    int64_t deadline = g_get_monotonic_time() + timeout_ms * 1000LL;

    for (;;) {
        g_autoptr(JsonNode) r = mig_query(s);
        JsonObject *obj = qtest_obj(r);
        const char *st = json_object_get_string_member(obj, "status");

        if (strcmp(st, "setup")) {
            g_assert_cmpstr(st, ==, "active");
        }
        if (json_object_has_member(obj, "ram")) {
            JsonObject *ram = json_object_get_object_member(obj, "ram");

            if (json_object_get_int_member(ram, "dirty-sync-count") >= count) {
                return;
            }
        }
        if (g_get_monotonic_time() > deadline) {
            g_error("dirty-sync-count below %" PRId64 " after %d ms", count,
                    timeout_ms);
        }
        g_usleep(20 * 1000);
    }
}

int64_t mig_query_int(QTestState *s, const char *member, int64_t def)
{
    g_autoptr(JsonNode) r = mig_query(s);
    JsonObject *obj = qtest_obj(r);

    return json_object_has_member(obj, member) ?
           json_object_get_int_member(obj, member) : def;
}

int64_t mig_throttle_percentage(QTestState *s)
{
    return mig_query_int(s, "cpu-throttle-percentage", 0);
}

int64_t mig_wait_throttle(QTestState *s, int timeout_ms)
{
    static const char *const running[] = { "setup", "active", NULL };
    int64_t deadline = g_get_monotonic_time() + timeout_ms * 1000LL;

    for (;;) {
        g_autofree char *st = mig_wait_status(s, running, timeout_ms);
        int64_t pct = mig_throttle_percentage(s);

        if (pct > 0) {
            return pct;
        }
        if (g_get_monotonic_time() > deadline) {
            g_error("no cpu-throttle-percentage after %d ms", timeout_ms);
        }
        g_usleep(20 * 1000);
    }
}

JsonNode *mig_guest_query(QTestState *s)
{
    return qtest_qmp_assert_success(s, "{\"execute\": \"x-query-guest\"}");
}

int64_t mig_guest_rate(QTestState *s)
{
    g_autoptr(JsonNode) r = mig_guest_query(s);

    return qtest_get_int(r, "pages-per-second");
}

int64_t mig_guest_settled_rate(QTestState *s)
{
    int64_t rate;

    for (int i = 0; !mig_guest_rate(s); i++) {
        if (i == 500) {
            g_error("x-query-guest reports no progress after 10 s");
        }
        g_usleep(20 * 1000);
    }
    /* A whole second of samples. */
    g_usleep(1000 * 1000);
    rate = mig_guest_rate(s);
    g_assert_cmpint(rate, >, 0);
    return rate;
}

int64_t mig_guest_throttle_us(QTestState *s)
{
    g_autoptr(JsonNode) r = mig_guest_query(s);
    JsonArray *vcpus = json_object_get_array_member(qtest_obj(r),
                                                    "vcpu-stats");
    int64_t sum = 0;

    for (guint i = 0; i < json_array_get_length(vcpus); i++) {
        sum += json_object_get_int_member(
            json_array_get_object_element(vcpus, i), "throttle-us");
    }
    return sum;
}

void mig_assert_full_speed(QTestState *s, int64_t full_rate)
{
    int tries;

    /*
     * A throttled vCPU sleeps every 10 ms: a quarter second without any
     * throttle sleep means it is over.  (The first look may still see the
     * last sleep, cut short, being counted.)
     */
    for (tries = 0; tries < 20; tries++) {
        int64_t before = mig_guest_throttle_us(s);

        g_usleep(250 * 1000);
        if (mig_guest_throttle_us(s) == before) {
            break;
        }
    }
    g_assert_cmpint(tries, <, 20);
    for (int i = 0; i < 500; i++) {
        if (mig_guest_rate(s) >= full_rate / 2) {
            return;
        }
        g_usleep(20 * 1000);
    }
    g_error("the guest runs at %" PRId64 " pages/s after the throttle, less "
            "than half of %" PRId64 " before", mig_guest_rate(s), full_rate);
}

int64_t mig_guest_bytes(QTestState *s)
{
    g_autoptr(JsonNode) r = qtest_qmp_assert_success(s,
        "{\"execute\": \"x-query-guest\"}");

    return qtest_get_int(r, "bytes-written");
}

void mig_wait_guest_progress(QTestState *s, int64_t delta)
{
    int64_t start = mig_guest_bytes(s);

    for (int i = 0; i < 1000; i++) {
        if (mig_guest_bytes(s) >= start + delta) {
            return;
        }
        g_usleep(10 * 1000);
    }
    g_error("the guest wrote less than %" PRId64 " bytes in 10 s", delta);
}

void mig_assert_guest_ok(QTestState *s)
{
    g_autoptr(JsonNode) r = qtest_qmp_assert_success(s,
        "{\"execute\": \"x-guest-verify\"}");

    if (!qtest_get_bool(r, "ok")) {
        g_error("x-guest-verify failed: %" PRId64 " bad pages, first at 0x%"
                PRIx64, qtest_get_int(r, "bad-pages"),
                qtest_get_int(r, "first-bad"));
    }
    g_assert_cmpint(qtest_get_int(r, "pages-checked"), >, 0);
}

void mig_assert_runstate(QTestState *s, const char *status)
{
    g_autofree char *st = qtest_status(s);

    g_assert_cmpstr(st, ==, status);
}

void mig_assert_status_events(QTestState *s, const char *const *statuses)
{
    for (size_t i = 0; statuses[i]; i++) {
        g_autoptr(JsonNode) ev = qtest_qmp_eventwait(s, "MIGRATION", 5000);

        g_assert_nonnull(ev);
        g_assert_cmpstr(qtest_get_str(ev, "status"), ==, statuses[i]);
    }
}

void mig_check_loaded(QTestState *dst)
{
    mig_wait_completed(dst, 30000);
    /* The destination starts its VM once the load has finished. */
    for (int i = 0; i < 500; i++) {
        g_autofree char *st = qtest_status(dst);

        if (!strcmp(st, "running")) {
            break;
        }
        g_usleep(10 * 1000);
    }
    mig_assert_runstate(dst, "running");
    mig_wait_guest_progress(dst, 8 * MiB);
    mig_assert_guest_ok(dst);
}

void mig_check_success(QTestState *src, QTestState *dst)
{
    mig_wait_completed(src, 30000);
    mig_assert_runstate(src, "postmigrate");
    mig_check_loaded(dst);
}
