/*
 * The object model: types, the tree, typed properties, runtime rules.
 */
#include "qemu/osdep.h"
#include "qom/object.h"

typedef struct TestDev {
    Object parent_obj;
    char *name;
    bool flag;
    uint32_t count;
    uint64_t size;
    OnOffAuto mode;
    uint64_t rate;
    int realized;
} TestDev;

static int finalized;

static bool rate_check(Object *obj, const Property *prop, const PropValue *val,
                       Error **errp)
{
    if (val->u64 > 1000) {
        error_setg(errp, "rate %" PRIu64 " is above 1000", val->u64);
        return false;
    }
    return true;
}

static const Property test_dev_props[] = {
    DEFINE_PROP("name", PROP_TYPE_STR, TestDev, name, "dflt", "a name"),
    DEFINE_PROP("flag", PROP_TYPE_BOOL, TestDev, flag, "off", "a flag"),
    DEFINE_PROP("count", PROP_TYPE_U32, TestDev, count, "3", NULL),
    DEFINE_PROP("size", PROP_TYPE_SIZE, TestDev, size, "1M", NULL),
    DEFINE_PROP("mode", PROP_TYPE_ONOFFAUTO, TestDev, mode, "auto", NULL),
    { .name = "rate", .type = PROP_TYPE_U64, .offset = offsetof(TestDev, rate),
      .defval = "10", .runtime = true, .check = rate_check },
    { 0 }
};

static bool test_dev_realize(Object *obj, Error **errp)
{
    TestDev *d = (TestDev *)obj;

    if (d->count == 0) {
        error_setg(errp, "count must not be 0");
        return false;
    }
    d->realized++;
    return true;
}

static void test_dev_finalize(Object *obj)
{
    finalized++;
}

static const ObjectClass test_dev_class = {
    .name = "test-dev",
    .parent = "device",
    .desc = "a device for tests",
    .instance_size = sizeof(TestDev),
    .props = test_dev_props,
    .user_creatable = true,
    .realize = test_dev_realize,
    .finalize = test_dev_finalize,
};

static void register_types(void)
{
    type_register(&test_dev_class);
}
type_init(register_types)

static Object *create(const char *opts, const char *id, Error **errp)
{
    g_autoptr(KeyVal) kv = keyval_parse(opts, "driver", "-device", &error_abort);

    keyval_get(kv, "driver");
    return object_create("test-dev", object_get_container("/machine/peripheral"),
                         id, kv, errp);
}

static void test_defaults_and_parse(void)
{
    Object *obj = create("test-dev,name=x,,y,flag=on,size=2G,mode=off", "d0",
                         &error_abort);
    TestDev *d = (TestDev *)obj;
    g_autofree char *path = object_get_canonical_path(obj);
    g_autofree char *count = object_property_print(obj, "count", &error_abort);

    g_assert_cmpstr(d->name, ==, "x,y");
    g_assert_true(d->flag);
    g_assert_cmpuint(d->count, ==, 3);
    g_assert_cmpuint(d->size, ==, 2 * GiB);
    g_assert_cmpint(d->mode, ==, ON_OFF_AUTO_OFF);
    g_assert_cmpint(d->realized, ==, 1);
    g_assert_cmpstr(path, ==, "/machine/peripheral/d0");
    g_assert_cmpstr(count, ==, "3");
    g_assert_true(object_resolve_path("/machine/peripheral/d0", &error_abort) == obj);
    g_assert_true(object_resolve_path("d0", &error_abort) == obj);
    object_unparent(obj);
    g_assert_cmpint(finalized, ==, 1);
}

static void test_errors(void)
{
    Error *err = NULL;

    g_assert_null(create("test-dev,nosuch=1", "e0", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "has no property 'nosuch'"));
    error_free(err);
    err = NULL;
    g_assert_null(create("test-dev,size=big", "e0", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "size='big' is not a size"));
    error_free(err);
    err = NULL;
    g_assert_null(create("test-dev,count=0", "e0", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "count must not be 0"));
    error_free(err);
    err = NULL;
    g_assert_null(object_resolve_path("e0", &err));
    g_assert_cmpint(error_get_class(err), ==, ERROR_CLASS_DEVICE_NOT_FOUND);
    error_free(err);
    err = NULL;

    Object *obj = create("test-dev", "dup", &error_abort);
    g_assert_null(create("test-dev", "dup", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "'dup' already exists"));
    error_free(err);
    object_unparent(obj);
}

static void test_runtime_set(void)
{
    Object *obj = create("test-dev", "rt", &error_abort);
    PropValue v = { .u64 = 500 };
    Error *err = NULL;

    g_assert_true(object_property_set(obj, "rate", &v, &error_abort));
    g_assert_cmpuint(((TestDev *)obj)->rate, ==, 500);
    v.u64 = 5000;
    g_assert_false(object_property_set(obj, "rate", &v, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "above 1000"));
    error_free(err);
    err = NULL;
    v.u64 = 7;
    g_assert_false(object_property_set(obj, "count", &v, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "cannot be changed"));
    error_free(err);
    err = NULL;
    g_assert_false(object_property_get(obj, "nosuch", &v, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "'test-dev.nosuch' not found"));
    error_free(err);
    object_unparent(obj);
}

/* A runtime string property is a programming error caught at registration. */
static void test_runtime_str_refused(void)
{
    static const Property bad_props[] = {
        DEFINE_PROP_RT("label", PROP_TYPE_STR, TestDev, name, NULL, NULL),
        { 0 }
    };
    static const ObjectClass bad_class = {
        .name = "test-bad-runtime-str",
        .instance_size = sizeof(TestDev),
        .props = bad_props,
    };

    if (g_test_subprocess()) {
        type_register(&bad_class);
        return;
    }
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*runtime*PROP_TYPE_STR*");
    g_assert_null(object_class_by_name("test-bad-runtime-str"));
}

static bool get_answer(Object *obj, ObjectProperty *prop, PropValue *val,
                       Error **errp)
{
    val->u64 = 42;
    return true;
}

static void test_dynamic(void)
{
    Object *obj = create("test-dev", "dyn", &error_abort);
    PropValue v;
    Error *err = NULL;

    object_property_add(obj, "answer", PROP_TYPE_U64, "computed", get_answer,
                        NULL, NULL);
    g_assert_true(object_property_get(obj, "answer", &v, &error_abort));
    g_assert_cmpuint(v.u64, ==, 42);
    g_assert_false(object_property_set(obj, "answer", &v, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "read-only"));
    error_free(err);
    object_unparent(obj);
}

static void test_class_list(void)
{
    g_autoptr(GPtrArray) devs = object_class_list("device");
    bool found = false;

    for (guint i = 0; i < devs->len; i++) {
        const ObjectClass *k = g_ptr_array_index(devs, i);
        found |= !strcmp(k->name, "test-dev");
    }
    g_assert_true(found);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qom/defaults-and-parse", test_defaults_and_parse);
    g_test_add_func("/qom/errors", test_errors);
    g_test_add_func("/qom/runtime-set", test_runtime_set);
    g_test_add_func("/qom/runtime-str-refused", test_runtime_str_refused);
    g_test_add_func("/qom/dynamic", test_dynamic);
    g_test_add_func("/qom/class-list", test_class_list);
    return g_test_run();
}
