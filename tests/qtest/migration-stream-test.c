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
#include "migration/stream.h"

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
} StreamMap;

static GBytes *stream;
static char *stream_path;
static MigStream *walked;
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

static void walk_stream(void)
{
    gsize len;
    const uint8_t *d = g_bytes_get_data(stream, &len);
    MigStreamElement *ram = NULL, *part, *guest;

    walked = mig_stream_walk(d, len);
    for (guint i = 0; i < walked->elements->len && !ram; i++) {
        MigStreamElement *el = mig_stream_element(walked, i);

        if (el->first_pages) {
            ram = el;
        }
    }
    part = mig_stream_find(walked, MIG_EL_PART, NULL);
    guest = mig_stream_find(walked, MIG_EL_FULL, "guest");
    g_assert_nonnull(ram);
    g_assert_nonnull(part);
    g_assert_nonnull(guest);
    map.config = walked->config;
    map.first_part = part->offset;
    map.first_pages_hdr = ram->first_pages;
    map.first_pages_count = ram->first_pages + 8;
    if (!(d[ram->first_pages + 7] & 0x20)) {    /* a block id follows */
        map.first_pages_count += 1 + d[map.first_pages_count];
    }
    map.first_footer = mig_stream_find(walked, MIG_EL_START, "ram")->footer;
    map.guest_idstr = guest->name_offset;
    map.guest_len = guest->payload;
    map.eof = mig_stream_find(walked, MIG_EL_EOF, NULL)->offset;
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
    mig_expect_load_error(d, len, STREAM_VM, "bad magic");
    d[0] ^= 0xff;
    put_be(d + 4, 4, 99);
    mig_expect_load_error(d, len, STREAM_VM, "unsupported stream version 99");
    put_be(d + 4, 4, 1);
    d[map.config] = 0x01;
    mig_expect_load_error(d, len, STREAM_VM, "no configuration section");
}

static void test_truncated(void)
{
    size_t len;
    const uint8_t *d = g_bytes_get_data(stream, &len);
    /* Inside fields; the truncation-points test takes the boundaries. */
    const size_t cuts[] = {
        0, 3, map.config + 2, map.first_part + 3,
        map.first_pages_count + 4 + 100, map.guest_len + 2,
    };

    for (size_t i = 0; i < ARRAY_SIZE(cuts); i++) {
        mig_expect_load_error(d, cuts[i], STREAM_VM, "truncated");
    }
}

/*
 * A stream cut at any place, or ended early with an EOF marker, fails
 * with the first missing section named: never "completed" with a guest
 * that starts afresh on zeroed RAM.
 */
static void test_truncation_points(void)
{
    mig_stream_check_truncations(walked, mig_expect_load_error_cb,
                                 (void *)STREAM_VM);
}

/* The good stream without element @drop, and with @extra at @at. */
static uint8_t *stream_splice(const MigStreamElement *drop, size_t at,
                              const uint8_t *extra, size_t extra_len,
                              size_t *len)
{
    size_t good_len;
    const uint8_t *good = g_bytes_get_data(stream, &good_len);
    GByteArray *out = g_byte_array_new();

    for (size_t pos = 0; pos <= good_len; pos++) {
        if (pos == at) {
            g_byte_array_append(out, extra, extra_len);
        }
        if (pos < good_len && (!drop || pos < drop->offset ||
                               pos >= drop->end)) {
            g_byte_array_append(out, good + pos, 1);
        }
    }
    *len = out->len;
    return g_byte_array_free(out, false);
}

/* Sections and commands where a stream from a real source never has them. */
static void test_section_order(void)
{
    const uint8_t *d = g_bytes_get_data(stream, NULL);
    MigStreamElement *sw = NULL, *gs, *guest, *part, *end;
    size_t len;

    for (guint i = 0; i < walked->elements->len && !sw; i++) {
        MigStreamElement *el = mig_stream_element(walked, i);

        if (el->type == MIG_EL_COMMAND &&
            el->command == MIG_CMD_SWITCHOVER_START) {
            sw = el;
        }
    }
    gs = mig_stream_find(walked, MIG_EL_FULL, "globalstate");
    guest = mig_stream_find(walked, MIG_EL_FULL, "guest");
    part = mig_stream_find(walked, MIG_EL_PART, "ram");
    end = mig_stream_find(walked, MIG_EL_END, "ram");
    g_assert_nonnull(sw);
    g_assert_nonnull(gs);

    /* A stream without the source's run state loads no more. */
    {
        g_autofree uint8_t *b = stream_splice(gs, 0, NULL, 0, &len);

        mig_expect_load_error(b, len, STREAM_VM, "incomplete stream: an EOF "
                              "marker at byte");
        mig_expect_load_error(b, len, STREAM_VM, "before the FULL section of "
                              "'globalstate' (instance 0)");
    }
    {
        g_autofree uint8_t *b = stream_splice(NULL, sw->end, d + sw->offset,
                                              sw->end - sw->offset, &len);

        mig_expect_load_error(b, len, STREAM_VM, "a second SWITCHOVER_START");
    }
    {
        /* The same FULL twice: under its own id, and under another. */
        g_autofree uint8_t *b = stream_splice(NULL, gs->end, d + gs->offset,
                                              gs->end - gs->offset, &len);

        mig_expect_load_error(b, len, STREAM_VM, "was opened twice");
        put_be(b + gs->end + 1, 4, 4242);
        mig_expect_load_error(b, len, STREAM_VM, "section 'globalstate' was "
                              "opened twice");
    }
    {
        g_autofree uint8_t *b = stream_splice(NULL, sw->offset,
                                              d + guest->offset,
                                              guest->end - guest->offset,
                                              &len);

        mig_expect_load_error(b, len, STREAM_VM, "section 'guest' (id");
        mig_expect_load_error(b, len, STREAM_VM, "FULL before "
                              "SWITCHOVER_START");
    }
    {
        g_autofree uint8_t *b = stream_splice(NULL, sw->end,
                                              d + part->offset,
                                              part->end - part->offset, &len);

        mig_expect_load_error(b, len, STREAM_VM, "PART after "
                              "SWITCHOVER_START");
    }
    {
        g_autofree uint8_t *b = stream_splice(NULL, end->end,
                                              d + part->offset,
                                              part->end - part->offset, &len);

        mig_expect_load_error(b, len, STREAM_VM, "PART after its END");
    }
}

static void test_corrupt_sections(void)
{
    size_t len;
    g_autofree uint8_t *d = copy_stream(&len);
    uint8_t saved[8];

    d[map.first_part] = 0x55;
    mig_expect_load_error(d, len, STREAM_VM, "unknown section type 0x55");
    d[map.first_part] = 0x02;

    put_be(d + map.first_part + 1, 4, 12345);
    mig_expect_load_error(d, len, STREAM_VM,
                          "section id 12345, which was never started");
    put_be(d + map.first_part + 1, 4, be(d + map.first_footer + 1, 4));

    d[map.guest_idstr + 2] = 'x';
    mig_expect_load_error(d, len, STREAM_VM, "unknown section 'gxest'");
    d[map.guest_idstr + 2] = 'u';

    d[map.first_footer] = 0x7f;
    mig_expect_load_error(d, len, STREAM_VM, "bad footer");
    d[map.first_footer] = 0x7e;

    /* The version of a section newer than this side's. */
    memcpy(saved, d + map.guest_len - 4, 4);
    put_be(d + map.guest_len - 4, 4, 7);
    mig_expect_load_error(d, len, STREAM_VM, "stream version 7 is newer");
    memcpy(d + map.guest_len - 4, saved, 4);
}

static void test_oversized(void)
{
    size_t len;
    g_autofree uint8_t *d = copy_stream(&len);
    uint8_t saved[8], saved_count[4];

    memcpy(saved_count, d + map.first_pages_count, 4);
    put_be(d + map.first_pages_count, 4, 0x10000);
    mig_expect_load_error(d, len, STREAM_VM, "run of 65536 pages");
    put_be(d + map.first_pages_count, 4, 0);
    mig_expect_load_error(d, len, STREAM_VM, "run of 0 pages");
    memcpy(d + map.first_pages_count, saved_count, 4);

    /* A page beyond the end of its block. */
    memcpy(saved, d + map.first_pages_hdr, 8);
    put_be(d + map.first_pages_hdr, 8,
           (be(saved, 8) & 0xfff) | (64 * MiB - 4096));
    put_be(d + map.first_pages_count, 4, 2);
    mig_expect_load_error(d, len, STREAM_VM, "beyond its size");
    put_be(d + map.first_pages_hdr, 8, be(saved, 8) | 0x100);
    mig_expect_load_error(d, len, STREAM_VM, "unknown record flags");
    memcpy(d + map.first_pages_hdr, saved, 8);
    memcpy(d + map.first_pages_count, saved_count, 4);

    put_be(d + map.guest_len, 4, 0xffffffff);
    mig_expect_load_error(d, len, STREAM_VM, "exceeds the limit");
}

static void test_config_mismatch(void)
{
    size_t len;
    const uint8_t *d = g_bytes_get_data(stream, &len);

    mig_expect_load_error(d, len, "-m 128M -smp 2 -guest stress,ws=8M",
                          "is 67108864 bytes on the source, 134217728 here");
    mig_expect_load_error(d, len, "-m 64M -smp 2 -guest idle",
                          "the guest program is 'stress' on the source, "
                          "'idle' here");
    mig_expect_load_error(d, len, "-m 64M -smp 1 -guest stress,ws=8M",
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

/*
 * Bytes from the stream reach a QMP reply escaped: a run state with byte
 * 0xff gives an error-desc that is valid UTF-8 and shows the byte.
 */
static void test_escaped_in_qmp(void)
{
    static const char *const failed[] = { "failed", NULL };
    MigStreamElement *gs = mig_stream_find(walked, MIG_EL_FULL, "globalstate");
    g_autofree char *path = qtest_tmp_path("bad", "img");
    g_autoptr(QTestState) dst = qtest_initf("%s -incoming defer", STREAM_VM);
    g_autoptr(JsonNode) q = NULL;
    size_t len;
    g_autofree uint8_t *d = copy_stream(&len);
    const char *desc;

    g_assert_cmpint(d[gs->payload], ==, 'p');           /* "paused" */
    d[gs->payload] = 0xff;
    d[gs->payload + 3] = '\\';
    g_assert_true(g_file_set_contents(path, (const char *)d, len, NULL));
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"file:%s\", "
                        "\"exit-on-error\": false}}", path);
    g_autofree char *st = mig_wait_status(dst, failed, 20000);
    q = mig_query(dst);
    desc = qtest_get_str(q, "error-desc");
    g_assert_true(g_utf8_validate(desc, -1, NULL));
    g_assert_nonnull(strstr(desc, "section 'globalstate': unknown source run "
                            "state '\\xffau\\x5ced'"));
    mig_assert_runstate(dst, "inmigrate");
    unlink(path);
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
    g_test_add_func("/migration/stream/truncation-points",
                    test_truncation_points);
    g_test_add_func("/migration/stream/section-order", test_section_order);
    g_test_add_func("/migration/stream/corrupt-sections",
                    test_corrupt_sections);
    g_test_add_func("/migration/stream/oversized", test_oversized);
    g_test_add_func("/migration/stream/config-mismatch", test_config_mismatch);
    g_test_add_func("/migration/stream/random-damage", test_random_damage);
    g_test_add_func("/migration/stream/escaped-in-qmp", test_escaped_in_qmp);
    g_test_add_func("/migration/stream/stay-up", test_stay_up);
    ret = g_test_run();
    mig_stream_free(walked);
    g_bytes_unref(stream);
    g_free(stream_path);
    return ret;
}
