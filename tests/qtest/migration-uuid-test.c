/*
 * Capability validate-uuid: the source puts its VM's -uuid in the
 * stream's configuration, and a destination with another UUID refuses
 * the stream before loading anything.  The source keeps its VM and
 * can migrate again to the right destination.
 */
#include "qemu/osdep.h"
#include "migration/framework.h"

#define UUID_A "6b1f0a3e-2d4c-4e8a-9f10-1c2d3e4f5a6b"
#define UUID_B "0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a"

/* A running source with -uuid @uuid, its guest under way. */
static QTestState *start_src(const char *uuid, bool validate)
{
    g_autofree char *args = g_strdup_printf("-uuid %s", uuid);
    QTestState *src = mig_start_vm(args);

    mig_set_cap(src, "validate-uuid", validate);
    mig_set_fast(src);
    mig_wait_guest_progress(src, 8 * MiB);
    return src;
}

/* A destination with -uuid @uuid listening on @uri. */
static QTestState *start_dst(const char *uri, const char *uuid)
{
    g_autofree char *args = g_strdup_printf("-uuid %s", uuid);

    return mig_start_dst(uri, args);
}

static bool capability_state(QTestState *s, const char *name)
{
    g_autoptr(JsonNode) r = qtest_qmp_assert_success(s,
        "{\"execute\": \"query-migrate-capabilities\"}");
    JsonArray *list = json_node_get_array(r);

    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonObject *c = json_array_get_object_element(list, i);

        if (!strcmp(json_object_get_string_member(c, "capability"), name)) {
            return json_object_get_boolean_member(c, "state");
        }
    }
    g_error("query-migrate-capabilities does not list '%s'", name);
}

static void test_same_uuid(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = start_dst(uri, UUID_A);
    g_autoptr(QTestState) src = start_src(UUID_A, true);

    g_assert_true(capability_state(src, "validate-uuid"));
    /* Only the source's setting counts: the destination's is off. */
    g_assert_false(capability_state(dst, "validate-uuid"));
    mig_migrate(src, uri);
    mig_check_success(src, dst);
}

/*
 * Another VM's stream: the destination fails naming both UUIDs; the
 * source fails too (its peer went away), runs on with its data intact,
 * and then migrates to the destination that has its UUID.
 */
static void test_wrong_uuid(void)
{
    static const char *const failed[] = { "failed", NULL };
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = mig_start_dst("defer", "-uuid " UUID_B);
    g_autoptr(QTestState) src = start_src(UUID_A, true);

    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"%s\", "
                        "\"exit-on-error\": false}}", uri);
    mig_migrate(src, uri);
    {
        g_autofree char *st = mig_wait_status(dst, failed, 20000);
        g_autoptr(JsonNode) q = mig_query(dst);
        const char *desc = qtest_get_str(q, "error-desc");

        g_test_message("destination: %s", desc);
        g_assert_nonnull(strstr(desc, "validate-uuid"));
        g_assert_nonnull(strstr(desc, UUID_A));
        g_assert_nonnull(strstr(desc, UUID_B));
        /* Nothing was loaded: it still waits for its own migration. */
        mig_assert_runstate(dst, "inmigrate");
    }
    {
        g_autofree char *st = mig_wait_status(src, failed, 20000);
    }
    mig_assert_runstate(src, "running");
    mig_wait_guest_progress(src, 8 * MiB);
    mig_assert_guest_ok(src);

    /* The right destination takes it. */
    g_autofree char *uri2 = mig_sock_uri();
    g_autoptr(QTestState) dst2 = start_dst(uri2, UUID_A);

    mig_migrate(src, uri2);
    mig_check_success(src, dst2);
}

/* Without the capability the UUIDs are not compared. */
static void test_off_ignores_uuid(void)
{
    g_autofree char *uri = mig_sock_uri();
    g_autoptr(QTestState) dst = start_dst(uri, UUID_B);
    g_autoptr(QTestState) src = start_src(UUID_A, false);

    mig_migrate(src, uri);
    mig_check_success(src, dst);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/validate-uuid/same", test_same_uuid);
    g_test_add_func("/migration/validate-uuid/wrong", test_wrong_uuid);
    g_test_add_func("/migration/validate-uuid/off", test_off_ignores_uuid);
    return g_test_run();
}
