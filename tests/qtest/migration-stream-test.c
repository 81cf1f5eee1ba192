/*
 * The destination trusts nothing: streams that are truncated, corrupted,
 * oversized or from a different machine fail the load with a message
 * naming the problem, and vmig exits 1 (exit-on-error) or stays up,
 * never crashing.
 *
 * A valid stream is saved once to a file; a small walker that follows
 * the layout documented in docs/devel/migration.rst finds the fields to
 * damage.
 */
#include "qemu/osdep.h"
#include "migration/framework.h"

#define STREAM_VM "-m 64M -smp 2 -guest stress,ws=8M"

/* Offsets of interesting fields in the saved stream. */
typedef struct StreamMap {
    size_t config;              /* the configuration section's type byte */
    size_t first_part;          /* type byte of the first PART section */
    size_t first_pages_hdr;     /* be64 header of the first PAGES record */
    size_t first_pages_count;   /* its be32 count */
    size_t first_footer;        /* footer (0x7e) of the first section */
    size_t guest_idstr;         /* the "guest" FULL section's id string */
    size_t guest_len;           /* its be32 payload length */
    size_t eof;                 /* the final EOF byte */
    bool has_pages;
} StreamMap;

static GBytes *stream;
static char *stream_path;
static StreamMap map;

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

static void put_be(uint8_t *p, int n, uint64_t v)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = v;
        v >>= 8;
    }
}

/* Walk the RAM records of one section payload; returns the end. */
static size_t walk_ram(const uint8_t *d, size_t pos)
{
    for (;;) {
        uint64_t hdr = be(d + pos, 8);
        size_t start = pos;

        pos += 8;
        if (hdr & 0x10) {               /* EOS */
            return pos;
        }
        if (!(hdr & 0x20)) {            /* block id follows */
            pos += 1 + d[pos];
        }
        if (hdr & 0x02) {               /* PAGES */
            if (!map.has_pages) {
                map.has_pages = true;
                map.first_pages_hdr = start;
                map.first_pages_count = pos;
            }
            pos += 4 + be(d + pos, 4) * 4096;
        } else {                        /* ZERO */
            pos += 4;
        }
    }
}

static void walk_stream(void)
{
    gsize len;
    const uint8_t *d = g_bytes_get_data(stream, &len);
    size_t pos = 8;
    uint32_t nblocks;
    GHashTable *names = g_hash_table_new_full(NULL, NULL, NULL, g_free);

    g_assert_cmphex(be(d, 4), ==, 0x564d4947);
    map.config = pos;
    g_assert_cmpint(d[pos], ==, 0x07);
    pos += 1 + 4;
    pos += 1 + d[pos];                  /* machine type */
    pos += 1 + d[pos];                  /* guest program */
    pos += 4 + 4 + 16;                  /* vCPUs, capabilities, UUID */
    nblocks = be(d + pos, 4);
    pos += 4;
    for (uint32_t i = 0; i < nblocks; i++) {
        pos += 1 + d[pos] + 16;
    }
    for (;;) {
        uint8_t type = d[pos];
        uint32_t id;
        const char *name;

        g_assert_cmpuint(pos, <, len);
        if (type == 0x00) {
            map.eof = pos;
            break;
        }
        if (type == 0x08) {             /* command */
            pos += 1 + 2 + 2 + be(d + pos + 3, 2);
            continue;
        }
        id = be(d + pos + 1, 4);
        if (type == 0x02 && !map.first_part) {
            map.first_part = pos;
        }
        pos += 5;
        if (type == 0x01 || type == 0x04) {
            size_t idpos = pos;

            g_hash_table_insert(names, GUINT_TO_POINTER(id),
                                g_strndup((const char *)d + pos + 1, d[pos]));
            pos += 1 + d[pos] + 8;
            if (!strcmp(g_hash_table_lookup(names, GUINT_TO_POINTER(id)),
                        "guest")) {
                map.guest_idstr = idpos;
                map.guest_len = pos;
            }
        }
        name = g_hash_table_lookup(names, GUINT_TO_POINTER(id));
        g_assert_nonnull(name);
        if (!strcmp(name, "ram")) {
            pos = walk_ram(d, pos);
        } else if (!strcmp(name, "guest")) {
            pos += 4 + be(d + pos, 4);
        } else if (!strcmp(name, "globalstate")) {
            pos += 32;
        } else {
            g_error("the walker does not know section '%s'", name);
        }
        g_assert_cmpint(d[pos], ==, 0x7e);
        g_assert_cmpuint(be(d + pos + 1, 4), ==, id);
        if (!map.first_footer) {
            map.first_footer = pos;
        }
        pos += 5;
    }
    g_assert_cmpuint(map.eof, ==, len - 1);
    g_assert_true(map.has_pages);
    g_assert_cmpuint(map.first_part, >, 0);
    g_assert_cmpuint(map.guest_len, >, 0);
    g_hash_table_destroy(names);
}

static void save_stream(void)
{
    g_autofree char *uri = NULL;
    gchar *data;
    gsize len;

    stream_path = qtest_tmp_path("good", "img");
    uri = g_strdup_printf("file:%s", stream_path);
    {
        g_autoptr(QTestState) src = qtest_init(STREAM_VM);

        mig_wait_guest_progress(src, 16 * MiB);
        qtest_qmp_assert_ok(src, "{\"execute\": \"stop\"}");
        mig_set_fast(src);
        mig_migrate(src, uri);
        mig_wait_completed(src, 30000);
    }
    g_assert_true(g_file_get_contents(stream_path, &data, &len, NULL));
    stream = g_bytes_new_take(data, len);
    walk_stream();
}

/* Load @bytes with @vm_args; expect exit 1 and @fragment on stderr. */
static void expect_load_error(const uint8_t *bytes, size_t len,
                              const char *vm_args, const char *fragment)
{
    g_autofree char *path = qtest_tmp_path("bad", "img");
    g_autofree char *args = NULL, *err = NULL;
    int status;

    g_assert_true(g_file_set_contents(path, (const char *)bytes, len, NULL));
    args = g_strdup_printf("%s -incoming file:%s", vm_args, path);
    status = qtest_run(args, NULL, &err);
    if (status != 1 || !strstr(err, fragment)) {
        g_error("loading a damaged stream: exit %d, stderr '%s', expected "
                "exit 1 and '%s'", status, err, fragment);
    }
    unlink(path);
}

/* A copy of the good stream, for damaging. */
static uint8_t *copy_stream(size_t *len)
{
    return g_memdup2(g_bytes_get_data(stream, len), g_bytes_get_size(stream));
}

static void test_good_stream_loads(void)
{
    g_autofree char *args = g_strdup_printf("%s -incoming file:%s",
                                            STREAM_VM, stream_path);
    g_autoptr(QTestState) dst = qtest_init(args);

    mig_wait_completed(dst, 30000);
    /* The source was paused: so is the destination, and it is intact. */
    mig_assert_runstate(dst, "paused");
    mig_assert_guest_ok(dst);
}

static void test_bad_header(void)
{
    size_t len;
    g_autofree uint8_t *d = copy_stream(&len);

    d[0] ^= 0xff;
    expect_load_error(d, len, STREAM_VM, "bad magic");
    d[0] ^= 0xff;
    put_be(d + 4, 4, 99);
    expect_load_error(d, len, STREAM_VM, "unsupported stream version 99");
    put_be(d + 4, 4, 1);
    d[map.config] = 0x01;
    expect_load_error(d, len, STREAM_VM, "no configuration section");
}

static void test_truncated(void)
{
    size_t len;
    const uint8_t *d = g_bytes_get_data(stream, &len);
    const size_t cuts[] = {
        0, 3, map.config + 2, map.first_part + 3,
        map.first_pages_count + 4 + 100, map.guest_len + 2, map.eof,
    };

    for (size_t i = 0; i < ARRAY_SIZE(cuts); i++) {
        expect_load_error(d, cuts[i], STREAM_VM, "truncated");
    }
}

static void test_corrupt_sections(void)
{
    size_t len;
    g_autofree uint8_t *d = copy_stream(&len);
    uint8_t saved[8];

    d[map.first_part] = 0x55;
    expect_load_error(d, len, STREAM_VM, "unknown section type 0x55");
    d[map.first_part] = 0x02;

    put_be(d + map.first_part + 1, 4, 12345);
    expect_load_error(d, len, STREAM_VM, "section id 12345, which was never started");
    put_be(d + map.first_part + 1, 4, be(d + map.first_footer + 1, 4));

    d[map.guest_idstr + 2] = 'x';
    expect_load_error(d, len, STREAM_VM, "unknown section 'gxest'");
    d[map.guest_idstr + 2] = 'u';

    d[map.first_footer] = 0x7f;
    expect_load_error(d, len, STREAM_VM, "bad footer");
    d[map.first_footer] = 0x7e;

    /* The version of a section newer than this side's. */
    memcpy(saved, d + map.guest_len - 4, 4);
    put_be(d + map.guest_len - 4, 4, 7);
    expect_load_error(d, len, STREAM_VM, "stream version 7 is newer");
    memcpy(d + map.guest_len - 4, saved, 4);
}

static void test_oversized(void)
{
    size_t len;
    g_autofree uint8_t *d = copy_stream(&len);
    uint8_t saved[8], saved_count[4];

    memcpy(saved_count, d + map.first_pages_count, 4);
    put_be(d + map.first_pages_count, 4, 0x10000);
    expect_load_error(d, len, STREAM_VM, "run of 65536 pages");
    put_be(d + map.first_pages_count, 4, 0);
    expect_load_error(d, len, STREAM_VM, "run of 0 pages");
    memcpy(d + map.first_pages_count, saved_count, 4);

    /* A page beyond the end of its block. */
    memcpy(saved, d + map.first_pages_hdr, 8);
    put_be(d + map.first_pages_hdr, 8,
           (be(saved, 8) & 0xfff) | (64 * MiB - 4096));
    put_be(d + map.first_pages_count, 4, 2);
    expect_load_error(d, len, STREAM_VM, "beyond its size");
    put_be(d + map.first_pages_hdr, 8, be(saved, 8) | 0x100);
    expect_load_error(d, len, STREAM_VM, "unknown record flags");
    memcpy(d + map.first_pages_hdr, saved, 8);
    memcpy(d + map.first_pages_count, saved_count, 4);

    put_be(d + map.guest_len, 4, 0xffffffff);
    expect_load_error(d, len, STREAM_VM, "exceeds the limit");
}

static void test_config_mismatch(void)
{
    size_t len;
    const uint8_t *d = g_bytes_get_data(stream, &len);

    expect_load_error(d, len, "-m 128M -smp 2 -guest stress,ws=8M",
                      "is 67108864 bytes on the source, 134217728 here");
    expect_load_error(d, len, "-m 64M -smp 2 -guest idle",
                      "the guest program is 'stress' on the source, 'idle' "
                      "here");
    expect_load_error(d, len, "-m 64M -smp 1 -guest stress,ws=8M",
                      "the vCPU count is 2 on the source, 1 here");
}

static void test_random_damage(void)
{
    static const char *const ends[] = { "completed", "failed", NULL };
    size_t len;
    const uint8_t *good = g_bytes_get_data(stream, &len);
    g_autofree uint8_t *d = g_malloc(len);

    /*
     * Damage one byte among the headers, configuration and section
     * framing (page data is not checked by design): the load ends, one
     * way or the other, and vmig stays up to say so.
     */
    for (int i = 0; i < 12; i++) {
        g_autofree char *path = qtest_tmp_path("fuzz", "img");
        size_t pos = g_test_rand_int_range(0, map.first_pages_count + 4);
        g_autoptr(QTestState) dst = qtest_initf("%s -incoming defer",
                                                STREAM_VM);

        memcpy(d, good, len);
        d[pos] ^= 1 + g_test_rand_int_range(0, 255);
        g_assert_true(g_file_set_contents(path, (char *)d, len, NULL));
        qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                            "\"arguments\": {\"uri\": \"file:%s\", "
                            "\"exit-on-error\": false}}", path);
        g_autofree char *st = mig_wait_status(dst, ends, 20000);
        g_autofree char *rs = qtest_status(dst);
        g_assert_nonnull(rs);
        unlink(path);
    }
}

static void test_stay_up(void)
{
    static const char *const failed[] = { "failed", NULL };
    size_t len;
    const uint8_t *d = g_bytes_get_data(stream, &len);
    g_autofree char *path = qtest_tmp_path("bad", "img");
    g_autoptr(QTestState) dst = qtest_initf("%s -incoming defer", STREAM_VM);

    g_assert_true(g_file_set_contents(path, (const char *)d, len / 2, NULL));
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"file:%s\", "
                        "\"exit-on-error\": false}}", path);
    g_autofree char *st = mig_wait_status(dst, failed, 20000);
    g_autoptr(JsonNode) q = mig_query(dst);
    g_assert_nonnull(strstr(qtest_get_str(q, "error-desc"), "truncated"));
    mig_assert_runstate(dst, "inmigrate");

    /* It may try again, with the good stream this time. */
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"file:%s\"}}", stream_path);
    mig_wait_completed(dst, 30000);
    mig_assert_guest_ok(dst);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    save_stream();
    g_test_add_func("/migration/stream/good", test_good_stream_loads);
    g_test_add_func("/migration/stream/bad-header", test_bad_header);
    g_test_add_func("/migration/stream/truncated", test_truncated);
    g_test_add_func("/migration/stream/corrupt-sections",
                    test_corrupt_sections);
    g_test_add_func("/migration/stream/oversized", test_oversized);
    g_test_add_func("/migration/stream/config-mismatch", test_config_mismatch);
    g_test_add_func("/migration/stream/random-damage", test_random_damage);
    g_test_add_func("/migration/stream/stay-up", test_stay_up);
    ret = g_test_run();
    g_bytes_unref(stream);
    g_free(stream_path);
    return ret;
}
