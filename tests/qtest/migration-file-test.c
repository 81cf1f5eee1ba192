/*
 * Migration to a file with the mapped-ram capability: a running stress
 * guest saved with and without multifd (2 and 4 channels), buffered and
 * with direct-io, and loaded
 * into a fresh vmig; a file bounded by the RAM size; damaged files
 * (truncated, bitmap out of range, bad block header); the capability on
 * one side only; and the transports it refuses.
 */
#include "qemu/osdep.h"
#include <sys/stat.h>
#include "migration/framework.h"

#define RAM_SIZE (128 * MiB)

static uint64_t ldq_be(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return GUINT64_FROM_BE(v);
}

static void stq_be(uint8_t *p, uint64_t v)
{
    v = GUINT64_TO_BE(v);
    memcpy(p, &v, 8);
}

/* With this bit in a test's channels: direct-io on both sides. */
#define DIRECT_IO 0x100

/* mapped-ram, and multifd with @channels when not 0. */
static void set_mapped_ram(QTestState *s, unsigned channels)
{
    if (channels & DIRECT_IO) {
        qtest_qmp_assert_ok(s, "{\"execute\": \"migrate-set-parameters\", "
                            "\"arguments\": {\"direct-io\": true}}");
        channels &= ~DIRECT_IO;
    }
    mig_set_cap(s, "mapped-ram", true);
    if (channels) {
        mig_set_cap(s, "multifd", true);
        mig_set_param(s, "multifd-channels", channels);
    }
}

/* Save a running stress guest into @path with mapped-ram. */
static void save_guest(const char *path, unsigned channels)
{
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autoptr(QTestState) src = mig_start_vm("");

    set_mapped_ram(src, channels);
    mig_set_fast(src);
    mig_wait_guest_progress(src, 8 * MiB);
    mig_migrate(src, uri);
    mig_wait_completed(src, 60000);
    mig_assert_runstate(src, "postmigrate");
    mig_assert_guest_ok(src);
}

/* A destination loading @path with @channels (-1: no mapped-ram). */
static QTestState *load_start(const char *path, int channels,
                              bool exit_on_error)
{
    QTestState *dst = mig_start_dst("defer", "");

    if (channels >= 0) {
        set_mapped_ram(dst, channels);
    }
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"file:%s\", "
                        "\"exit-on-error\": %s}}", path,
                        exit_on_error ? "true" : "false");
    return dst;
}

static void test_save_load(const void *opaque)
{
    unsigned channels = GPOINTER_TO_UINT(opaque);
    g_autofree char *path = qtest_tmp_path("mapped", "img");
    struct stat st;

    save_guest(path, channels);
    /* Slots are overwritten, never appended: at most RAM plus 2 MiB. */
    g_assert_cmpint(stat(path, &st), ==, 0);
    g_assert_cmpint(st.st_size, <=, RAM_SIZE + 2 * MiB);
    g_assert_cmpint(st.st_blocks * 512, >=, 8 * MiB);
    {
        g_autoptr(QTestState) dst = load_start(path, channels, true);

        mig_wait_completed(dst, 60000);
        mig_assert_runstate(dst, "running");
        mig_wait_guest_progress(dst, 8 * MiB);
        mig_assert_guest_ok(dst);
    }
    unlink(path);
}

/*
 * The block header: the counted id, then be64 size (RAM_SIZE), be64
 * bitmap offset (right after the header) and be64 pages offset.  Find
 * the size field by that shape.
 */
static size_t find_block_header(const uint8_t *d, size_t len)
{
    for (size_t i = 8; i + 24 <= len; i++) {
        if (ldq_be(d + i) == RAM_SIZE && ldq_be(d + i + 8) == i + 24) {
            return i;
        }
    }
    g_assert_not_reached();
}

/* Load @d with its first @len bytes; expect failure with @fragment. */
static void load_expect_failure(const uint8_t *d, size_t len,
                                const char *fragment)
{
    static const char *const failed[] = { "failed", NULL };
    g_autofree char *path = qtest_tmp_path("damaged", "img");
    g_autoptr(QTestState) dst = NULL;

    g_assert_true(g_file_set_contents(path, (const char *)d, len, NULL));
    dst = load_start(path, 0, false);
    g_autofree char *st = mig_wait_status(dst, failed, 30000);
    g_autoptr(JsonNode) q = mig_query(dst);
    const char *desc = qtest_get_str(q, "error-desc");

    if (!strstr(desc, fragment)) {
        g_error("error '%s' lacks '%s'", desc, fragment);
    }
    /* Still up, still waiting for a good stream. */
    mig_assert_runstate(dst, "inmigrate");
    unlink(path);
}

static void test_damaged(void)
{
    g_autofree char *path = qtest_tmp_path("mapped", "img");
    g_autofree uint8_t *d = NULL;
    g_autofree uint8_t *bad = NULL;
    size_t len, hdr;

    save_guest(path, 0);
    g_assert_true(g_file_get_contents(path, (char **)&d, &len, NULL));
    hdr = find_block_header(d, len);
    bad = g_memdup2(d, len);

    /* Cut inside the pages: the header's region leaves the file. */
    load_expect_failure(d, ldq_be(d + hdr + 16) + RAM_SIZE / 2, "truncated");

    stq_be(bad + hdr + 8, len + 4096);
    load_expect_failure(bad, len, "bitmap at");
    memcpy(bad, d, len);

    stq_be(bad + hdr + 16, ldq_be(d + hdr + 16) + 4096);
    load_expect_failure(bad, len, "misplaced");
    memcpy(bad, d, len);

    stq_be(bad + hdr, RAM_SIZE / 2);
    load_expect_failure(bad, len, "has size 0x4000000 in the file");
    memcpy(bad, d, len);

    /* The block's name, the byte before the size field. */
    bad[hdr - 1] ^= 0x20;
    load_expect_failure(bad, len, "unknown RAM block");
    unlink(path);
}

static void test_one_side(void)
{
    g_autofree char *path = qtest_tmp_path("mapped", "img");
    static const char *const failed[] = { "failed", NULL };

    save_guest(path, 0);
    {
        g_autoptr(QTestState) dst = load_start(path, -1, false);
        g_autofree char *st = mig_wait_status(dst, failed, 30000);
        g_autoptr(JsonNode) q = mig_query(dst);

        g_assert_nonnull(strstr(qtest_get_str(q, "error-desc"),
                                "capability 'mapped-ram' is on on the "
                                "source, off here"));
    }
    /* A plain file loaded with mapped-ram on. */
    {
        g_autofree char *uri = g_strdup_printf("file:%s", path);
        g_autoptr(QTestState) src = mig_start_vm("");
        g_autoptr(QTestState) dst = NULL;

        mig_set_fast(src);
        mig_migrate(src, uri);
        mig_wait_completed(src, 60000);
        dst = load_start(path, 0, false);
        g_autofree char *st = mig_wait_status(dst, failed, 30000);
        g_autoptr(JsonNode) q = mig_query(dst);

        g_assert_nonnull(strstr(qtest_get_str(q, "error-desc"),
                                "capability 'mapped-ram' is off on the "
                                "source, on here"));
    }
    unlink(path);
}

static void test_refused(void)
{
    g_autofree char *sock = qtest_tmp_path("mig", "sock");
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);
    g_autofree char *file = qtest_tmp_path("mapped", "img");
    g_autofree char *file_uri = g_strdup_printf("file:%s", file);
    g_autoptr(QTestState) src = mig_start_vm("");
    g_autoptr(QTestState) dst = mig_start_dst("defer", "");

    set_mapped_ram(src, 0);
    g_autofree char *e1 = mig_migrate_expect_error(src, uri);
    g_assert_nonnull(strstr(e1, "'mapped-ram' needs a file:"));

    set_mapped_ram(dst, 0);
    g_autofree char *e2 = qtest_qmp_expect_error(dst, "GenericError",
        "{\"execute\": \"migrate-incoming\", \"arguments\": "
        "{\"uri\": \"%s\"}}", uri);
    g_assert_nonnull(strstr(e2, "'mapped-ram' needs a file:"));

    set_mapped_ram(src, 2);
    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate-set-parameters\", "
                        "\"arguments\": {\"multifd-compression\": "
                        "\"zlib\"}}");
    g_autofree char *e3 = mig_migrate_expect_error(src, file_uri);
    g_assert_nonnull(strstr(e3, "multifd-compression zlib"));
    mig_assert_runstate(src, "running");
    mig_assert_guest_ok(src);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_data_func("/migration/file/mapped-ram/plain",
                         GUINT_TO_POINTER(0), test_save_load);
    g_test_add_data_func("/migration/file/mapped-ram/multifd-2",
                         GUINT_TO_POINTER(2), test_save_load);
    g_test_add_data_func("/migration/file/mapped-ram/multifd-4",
                         GUINT_TO_POINTER(4), test_save_load);
    g_test_add_data_func("/migration/file/mapped-ram/direct-io",
                         GUINT_TO_POINTER(DIRECT_IO), test_save_load);
    g_test_add_data_func("/migration/file/mapped-ram/multifd-2-direct-io",
                         GUINT_TO_POINTER(2 | DIRECT_IO), test_save_load);
    g_test_add_func("/migration/file/mapped-ram/damaged", test_damaged);
    g_test_add_func("/migration/file/mapped-ram/one-side", test_one_side);
    g_test_add_func("/migration/file/mapped-ram/refused", test_refused);
    return g_test_run();
}
