/*
 * DEVICE_FEATURE for migration, MIG_DATA_READ / MIG_DATA_WRITE stream
 * semantics, the precopy-info and MIG_DATA_SIZE extensions, a save/load
 * round trip between two devices, and cancelling a stream at every legal
 * arc.
 */
#include <errno.h>
#include <string.h>

#include "test-device.h"
#include "vus-client.h"

#define ALL_FLAGS (VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | \
                   VFIO_MIGRATION_PRE_COPY)
#define STREAM_SIZE (TD_STATE_SIZE + 8)
#define CHUNK 10000

static int precopy_info(VusClient *c, uint64_t *initial, uint64_t *dirty)
{
    struct vfio_precopy_info info;
    VcMsg m;
    int ret = vc_call(c, VFIO_USER_X_MIG_PRECOPY_INFO, NULL, 0, NULL, 0, &m);

    if (ret < 0) {
        return ret;
    }
    g_assert_cmpuint(m.len, ==, sizeof(info));
    memcpy(&info, m.payload, sizeof(info));
    g_assert_cmpuint(info.argsz, ==, sizeof(info));
    *initial = info.initial_bytes;
    *dirty = info.dirty_bytes;
    vc_msg_free(&m);
    return 0;
}

/* Reads until a short read; returns the bytes read. */
static size_t read_until_short(VusClient *c, GByteArray *out, uint32_t chunk)
{
    g_autofree uint8_t *buf = g_malloc(chunk);
    size_t total = 0;

    for (;;) {
        ssize_t n = vc_mig_read(c, buf, chunk);

        g_assert_cmpint(n, >=, 0);
        if (out) {
            g_byte_array_append(out, buf, n);
        }
        total += n;
        if ((uint32_t)n < chunk) {
            return total;
        }
    }
}

static void expect_full_stream(const GByteArray *s, TestDev *td)
{
    uint64_t sum;

    g_assert_cmpuint(s->len, ==, STREAM_SIZE);
    g_mutex_lock(&td->lock);
    g_assert_cmpmem(s->data, TD_STATE_SIZE, td->state, TD_STATE_SIZE);
    g_mutex_unlock(&td->lock);
    memcpy(&sum, s->data + TD_STATE_SIZE, 8);
    g_assert_cmpuint(sum, ==, td_checksum(s->data, TD_STATE_SIZE));
}

static void test_features(void)
{
    TestDev *td = td_new(ALL_FLAGS);
    TestDev *plain = td_new(0);
    VusClient *c = vc_open(td->path);
    VusClient *p = vc_open(plain->path);
    struct vfio_device_feature_migration mig;
    struct vfio_device_feature_mig_data_size sz;
    uint8_t raw[16] = { 0 };
    VcMsg m;

    g_assert_cmpint(vc_feature(c, VFIO_DEVICE_FEATURE_GET |
                               VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0, &m),
                    ==, 0);
    g_assert_cmpuint(m.len, ==, 8 + sizeof(mig));
    memcpy(&mig, m.payload + 8, sizeof(mig));
    g_assert_cmpuint(mig.flags, ==, ALL_FLAGS);
    vc_msg_free(&m);
    /* GET with room for the answer, as the kernel's argsz would have. */
    g_assert_cmpint(vc_feature(c, VFIO_DEVICE_FEATURE_GET |
                               VFIO_DEVICE_FEATURE_MIGRATION, raw, 8, NULL),
                    ==, 0);
    g_assert_cmpint(vc_feature(c, VFIO_DEVICE_FEATURE_GET |
                               VFIO_DEVICE_FEATURE_MIGRATION, raw, 3, NULL),
                    ==, -EINVAL);
    g_assert_cmpint(vc_feature(c, VFIO_DEVICE_FEATURE_PROBE |
                               VFIO_DEVICE_FEATURE_GET |
                               VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0, NULL),
                    ==, 0);
    g_assert_cmpint(vc_feature(c, VFIO_DEVICE_FEATURE_PROBE |
                               VFIO_DEVICE_FEATURE_SET |
                               VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0, NULL),
                    ==, -EINVAL);
    g_assert_cmpint(vc_feature(c, VFIO_DEVICE_FEATURE_SET |
                               VFIO_DEVICE_FEATURE_MIGRATION, raw, 8, NULL),
                    ==, -EINVAL);
    g_assert_cmpint(vc_feature(c, VFIO_DEVICE_FEATURE_GET |
                               VFIO_DEVICE_FEATURE_SET |
                               VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, raw, 8,
                               NULL), ==, -EINVAL);
    g_assert_cmpint(vc_feature(c, VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, raw,
                               8, NULL), ==, -EINVAL);
    g_assert_cmpint(vc_feature(c, VFIO_DEVICE_FEATURE_GET | 99, NULL, 0,
                               NULL), ==, -ENOTTY);
    g_assert_cmpint(vc_feature(c, VFIO_DEVICE_FEATURE_GET | (1u << 20) |
                               VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0, NULL),
                    ==, -EINVAL);
    /* Sizes: payload shorter than the header, argsz too small, state
     * data of the wrong length. */
    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_FEATURE, raw, 4, NULL, 0,
                            NULL), ==, -EINVAL);
    {
        uint32_t hdr[2] = { 4, VFIO_DEVICE_FEATURE_GET |
                               VFIO_DEVICE_FEATURE_MIGRATION };
        g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_FEATURE, hdr, 8, NULL, 0,
                                NULL), ==, -EINVAL);
    }
    g_assert_cmpint(vc_feature(c, VFIO_DEVICE_FEATURE_SET |
                               VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, raw, 4,
                               NULL), ==, -EINVAL);
    g_assert_cmpint(vc_feature(c, VFIO_DEVICE_FEATURE_SET |
                               VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, raw, 12,
                               NULL), ==, -EINVAL);

    /* MIG_DATA_SIZE, valid in any state. */
    g_assert_cmpint(vc_feature(c, VFIO_DEVICE_FEATURE_GET |
                               VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, NULL, 0,
                               &m), ==, 0);
    memcpy(&sz, m.payload + 8, sizeof(sz));
    g_assert_cmpuint(sz.stop_copy_length, ==, STREAM_SIZE);
    vc_msg_free(&m);
    g_assert_cmpint(vc_set_state(c, VFIO_DEVICE_STATE_RESUMING), ==, 0);
    g_assert_cmpint(vc_feature(c, VFIO_DEVICE_FEATURE_GET |
                               VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, NULL, 0,
                               NULL), ==, 0);

    /* A device without migration. */
    g_assert_cmpint(vc_feature(p, VFIO_DEVICE_FEATURE_GET |
                               VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0, NULL),
                    ==, -ENOTTY);
    g_assert_cmpint(vc_feature(p, VFIO_DEVICE_FEATURE_GET |
                               VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, NULL, 0,
                               NULL), ==, -ENOTTY);
    g_assert_cmpint(vc_feature(p, VFIO_DEVICE_FEATURE_GET |
                               VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, NULL, 0,
                               NULL), ==, -ENOTTY);
    g_assert_cmpint(vc_mig_read(p, raw, 8), ==, -EINVAL);
    {
        uint64_t initial, dirty;
        /* Not offered, so unknown, as on a plain 0.9.2 server. */
        g_assert_cmpint(precopy_info(p, &initial, &dirty), ==, -ENOSYS);
    }
    vc_close(p);
    vc_close(c);
    td_free(plain);
    td_free(td);
}

static void test_stream_rules(void)
{
    TestDev *td = td_new_full(VFIO_MIGRATION_STOP_COPY, 64 * 1024, false);
    VusClient *c = vc_open(td->path);
    g_autoptr(GByteArray) s = g_byte_array_new();
    g_autofree uint8_t *buf = g_malloc(128 * 1024);
    struct vfio_user_mig_data req = { .argsz = 8, .size = 16 };

    /* Reads and writes only in the right states. */
    g_assert_cmpint(vc_mig_read(c, buf, 16), ==, -EINVAL);
    g_assert_cmpint(vc_mig_write(c, buf, 16), ==, -EINVAL);
    g_assert_cmpint(vc_set_state(c, VFIO_DEVICE_STATE_STOP), ==, 0);
    g_assert_cmpint(vc_mig_read(c, buf, 16), ==, -EINVAL);
    g_assert_cmpint(vc_set_state(c, VFIO_DEVICE_STATE_STOP_COPY), ==, 0);
    g_assert_cmpint(vc_mig_write(c, buf, 16), ==, -EINVAL);
    /* Sizes: over max_data_xfer_size (64 KiB here), payload mismatch. */
    g_assert_cmpint(vc_mig_read(c, buf, 64 * 1024 + 1), ==, -EINVAL);
    g_assert_cmpint(vc_call(c, VFIO_USER_MIG_DATA_READ, &req, 4, NULL, 0,
                            NULL), ==, -EINVAL);
    {
        uint8_t p[12] = { 8, 0, 0, 0, 16 };
        g_assert_cmpint(vc_call(c, VFIO_USER_MIG_DATA_READ, p, 12, NULL, 0,
                                NULL), ==, -EINVAL);
    }
    req.argsz = 4;
    g_assert_cmpint(vc_call(c, VFIO_USER_MIG_DATA_READ, &req, 8, NULL, 0,
                            NULL), ==, -EINVAL);
    /* Nothing was consumed by the refused reads: a zero-size read is
     * fine and the whole stream follows, ending in a short read. */
    g_assert_cmpint(vc_mig_read(c, buf, 0), ==, 0);
    g_assert_cmpuint(read_until_short(c, s, CHUNK), ==, STREAM_SIZE);
    expect_full_stream(s, td);
    /* At the end, reads keep returning nothing. */
    g_assert_cmpint(vc_mig_read(c, buf, 100), ==, 0);
    g_assert_cmpint(vc_mig_read(c, buf, 64 * 1024), ==, 0);

    /* The write side. */
    g_assert_cmpint(vc_set_state(c, VFIO_DEVICE_STATE_RESUMING), ==, 0);
    g_assert_cmpint(vc_mig_read(c, buf, 16), ==, -EINVAL);
    req = (struct vfio_user_mig_data) { .argsz = 8 + 16, .size = 16 };
    g_assert_cmpint(vc_call(c, VFIO_USER_MIG_DATA_WRITE, &req, 8, NULL, 0,
                            NULL), ==, -EINVAL);
    g_assert_cmpint(vc_call(c, VFIO_USER_MIG_DATA_WRITE, &req, 4, NULL, 0,
                            NULL), ==, -EINVAL);
    g_assert_cmpint(vc_mig_write(c, buf, 64 * 1024 + 1), ==, -EINVAL);
    g_assert_cmpint(vc_mig_write(c, buf, 0), ==, 0);
    vc_close(c);
    td_free(td);
}

/* Saves @src into @dst with PRE_COPY (when offered) then STOP_COPY. */
static void save_load(TestDev *src, TestDev *dst, bool precopy)
{
    VusClient *cs = vc_open(src->path);
    VusClient *cd = vc_open(dst->path);
    g_autoptr(GByteArray) s = g_byte_array_new();
    uint64_t initial, dirty, prev;

    if (precopy) {
        g_assert_cmpint(precopy_info(cs, &initial, &dirty), ==, -EINVAL);
        g_assert_cmpint(vc_set_state(cs, VFIO_DEVICE_STATE_PRE_COPY), ==, 0);
        g_assert_cmpint(precopy_info(cs, &initial, &dirty), ==, 0);
        g_assert_cmpuint(initial, ==, TD_STATE_SIZE);
        prev = initial;
        /* Read the initial bytes; initial_bytes falls to 0. */
        for (;;) {
            g_autofree uint8_t *buf = g_malloc(CHUNK);
            ssize_t n = vc_mig_read(cs, buf, CHUNK);

            g_assert_cmpint(n, >=, 0);
            g_byte_array_append(s, buf, n);
            g_assert_cmpint(precopy_info(cs, &initial, &dirty), ==, 0);
            g_assert_cmpuint(initial, ==, prev - n);
            prev = initial;
            if (n < CHUNK) {
                break;
            }
        }
        g_assert_cmpuint(initial, ==, 0);
        g_assert_cmpuint(s->len, ==, TD_STATE_SIZE);
        /* A short read does not end pre-copy: more can come later. */
        g_assert_cmpint(vc_mig_read(cs, s->data, 16), ==, 0);
    }
    g_assert_cmpint(vc_set_state(cs, VFIO_DEVICE_STATE_STOP_COPY), ==, 0);
    read_until_short(cs, s, CHUNK);
    expect_full_stream(s, src);
    g_assert_cmpint(vc_set_state(cs, VFIO_DEVICE_STATE_STOP), ==, 0);

    g_assert_cmpint(vc_set_state(cd, VFIO_DEVICE_STATE_RESUMING), ==, 0);
    for (size_t off = 0; off < s->len; off += 7000) {
        g_assert_cmpint(vc_mig_write(cd, s->data + off,
                                     MIN(7000, s->len - off)), ==, 0);
    }
    g_assert_cmpint(vc_set_state(cd, VFIO_DEVICE_STATE_RUNNING), ==, 0);
    g_assert_true(dst->loaded);
    g_assert_cmpmem(dst->state, TD_STATE_SIZE, src->state, TD_STATE_SIZE);
    vc_close(cs);
    vc_close(cd);
}

static void test_round_trip(void)
{
    TestDev *src = td_new(ALL_FLAGS);
    TestDev *dst = td_new(ALL_FLAGS);
    /* The second pair serves its stream without a copy. */
    TestDev *src2 = td_new_full(VFIO_MIGRATION_STOP_COPY, 0, true);
    TestDev *dst2 = td_new(VFIO_MIGRATION_STOP_COPY);

    /* Make the source differ from a fresh device. */
    for (size_t i = 0; i < TD_STATE_SIZE; i += 97) {
        src->state[i] ^= 0xff;
        src2->state[i] ^= 0x0f;
    }
    save_load(src, dst, true);
    save_load(src2, dst2, false);
    td_free(src);
    td_free(dst);
    td_free(src2);
    td_free(dst2);
}

/*
 * Interrupts a stream at half way with the arc (or path) to @cancel_to,
 * then checks the device is usable: back to RUNNING and a full save.
 */
static void cancel_case(TestDev *td, VusClient *c, uint32_t saving,
                        uint32_t cancel_to)
{
    g_autoptr(GByteArray) s = g_byte_array_new();
    g_autofree uint8_t *buf = g_malloc(CHUNK);
    uint32_t state;

    g_test_message("cancel %s -> %s mid-stream", vus_mig_state_name(saving),
                   vus_mig_state_name(cancel_to));
    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_RESET, NULL, 0, NULL, 0,
                            NULL), ==, 0);
    g_assert_cmpint(vc_set_state(c, saving), ==, 0);
    if (saving == VFIO_DEVICE_STATE_RESUMING) {
        g_assert_cmpint(vc_mig_write(c, td->state, TD_STATE_SIZE / 2), ==, 0);
    } else {
        g_assert_cmpint(vc_mig_read(c, buf, CHUNK), ==, CHUNK);
        g_assert_cmpint(vc_mig_read(c, buf, CHUNK), ==, CHUNK);
    }
    if (vus_mig_next_state(td->mig_flags, saving, cancel_to) < 0) {
        g_assert_cmpint(vc_set_state(c, cancel_to), ==, -EINVAL);
        g_assert_cmpint(vc_get_state(c, &state), ==, 0);
        g_assert_cmpuint(state, ==, saving);
    } else if (saving == VFIO_DEVICE_STATE_RESUMING &&
               cancel_to != VFIO_DEVICE_STATE_RESUMING) {
        /* Half a stream does not load: the arc out fails, and a reset
         * is how RESUMING is aborted. */
        g_assert_cmpint(vc_set_state(c, cancel_to), ==, -EINVAL);
        g_assert_cmpint(vc_get_state(c, &state), ==, 0);
        g_assert_cmpuint(state, ==, VFIO_DEVICE_STATE_RESUMING);
        g_assert_false(td->loaded);
    } else {
        g_assert_cmpint(vc_set_state(c, cancel_to), ==, 0);
    }
    /* Usable again: from wherever it is, a whole save from scratch. */
    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_RESET, NULL, 0, NULL, 0,
                            NULL), ==, 0);
    g_assert_cmpint(vc_set_state(c, VFIO_DEVICE_STATE_STOP_COPY), ==, 0);
    read_until_short(c, s, CHUNK);
    expect_full_stream(s, td);
}

static void test_cancel(void)
{
    static const uint32_t savers[] = {
        VFIO_DEVICE_STATE_PRE_COPY, VFIO_DEVICE_STATE_PRE_COPY_P2P,
        VFIO_DEVICE_STATE_STOP_COPY, VFIO_DEVICE_STATE_RESUMING,
    };
    TestDev *td = td_new(ALL_FLAGS);
    VusClient *c = vc_open(td->path);

    for (size_t i = 0; i < G_N_ELEMENTS(savers); i++) {
        for (uint32_t to = VFIO_DEVICE_STATE_STOP;
             to < VFIO_DEVICE_STATE_NR; to++) {
            cancel_case(td, c, savers[i], to);
        }
    }
    vc_close(c);
    td_free(td);
}

static void test_cancel_restart(void)
{
    TestDev *td = td_new(ALL_FLAGS);
    VusClient *c = vc_open(td->path);
    g_autoptr(GByteArray) s = g_byte_array_new();
    g_autofree uint8_t *buf = g_malloc(CHUNK);
    uint64_t initial, dirty;

    /* PRE_COPY -> RUNNING halfway, then a new pre-copy starts over. */
    g_assert_cmpint(vc_set_state(c, VFIO_DEVICE_STATE_PRE_COPY), ==, 0);
    g_assert_cmpint(vc_mig_read(c, buf, CHUNK), ==, CHUNK);
    g_assert_cmpint(vc_set_state(c, VFIO_DEVICE_STATE_RUNNING), ==, 0);
    g_assert_cmpint(precopy_info(c, &initial, &dirty), ==, -EINVAL);
    g_assert_cmpint(vc_set_state(c, VFIO_DEVICE_STATE_PRE_COPY), ==, 0);
    g_assert_cmpint(precopy_info(c, &initial, &dirty), ==, 0);
    g_assert_cmpuint(initial, ==, TD_STATE_SIZE);
    /* PRE_COPY <-> PRE_COPY_P2P keeps the stream going. */
    g_assert_cmpint(vc_mig_read(c, buf, CHUNK), ==, CHUNK);
    g_byte_array_append(s, buf, CHUNK);
    g_assert_cmpint(vc_set_state(c, VFIO_DEVICE_STATE_PRE_COPY_P2P), ==, 0);
    g_assert_cmpint(precopy_info(c, &initial, &dirty), ==, 0);
    g_assert_cmpuint(initial, ==, TD_STATE_SIZE - CHUNK);
    g_assert_cmpint(vc_mig_read(c, buf, CHUNK), ==, CHUNK);
    g_byte_array_append(s, buf, CHUNK);
    g_assert_cmpint(vc_set_state(c, VFIO_DEVICE_STATE_STOP_COPY), ==, 0);
    read_until_short(c, s, CHUNK);
    expect_full_stream(s, td);
    /* STOP_COPY -> PRE_COPY is refused mid-stream and after. */
    g_assert_cmpint(vc_set_state(c, VFIO_DEVICE_STATE_PRE_COPY), ==, -EINVAL);
    /* STOP_COPY -> STOP -> STOP_COPY starts over. */
    g_byte_array_set_size(s, 0);
    g_assert_cmpint(vc_set_state(c, VFIO_DEVICE_STATE_STOP), ==, 0);
    g_assert_cmpint(vc_set_state(c, VFIO_DEVICE_STATE_STOP_COPY), ==, 0);
    read_until_short(c, s, 4096);
    expect_full_stream(s, td);
    /* The precopy-info query takes no payload but an empty struct. */
    g_assert_cmpint(vc_call(c, VFIO_USER_X_MIG_PRECOPY_INFO, buf, 5, NULL, 0,
                            NULL), ==, -EINVAL);
    vc_close(c);
    td_free(td);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vus/migration/features", test_features);
    g_test_add_func("/vus/migration/stream-rules", test_stream_rules);
    g_test_add_func("/vus/migration/round-trip", test_round_trip);
    g_test_add_func("/vus/migration/cancel-every-arc", test_cancel);
    g_test_add_func("/vus/migration/cancel-restart", test_cancel_restart);
    return g_test_run();
}
