/*
 * A walker over saved migration streams.  See stream.h.
 */
#include "qemu/osdep.h"
#include "libqtest.h"
#include "migration/stream.h"

/* RAM record flags and VFIO markers (docs/devel/migration.rst, FACTS). */
#define RAM_PAGES 0x02
#define RAM_ZERO 0x04
#define RAM_MAPPED_BLOCK 0x08
#define RAM_EOS 0x10
#define RAM_CONTINUE 0x20
#define VFIO_END_OF_STATE 0xffffffffef100001ULL
#define VFIO_DEV_CONFIG_STATE 0xffffffffef100002ULL
#define VFIO_DEV_DATA_STATE 0xffffffffef100004ULL

typedef struct Walker {
    MigStream *s;
    size_t pos;
    uint32_t page_size;
} Walker;

/* Take @n bytes (checked against the end) and return where they start. */
static const uint8_t *take(Walker *w, size_t n)
{
    const uint8_t *p = w->s->data + w->pos;

    if (n > w->s->len - w->pos) {
        g_error("stream walker: %zu bytes at %zu run past the end (%zu)", n,
                w->pos, w->s->len);
    }
    w->pos += n;
    return p;
}

static uint64_t take_be(Walker *w, int n)
{
    const uint8_t *p = take(w, n);
    uint64_t v = 0;

    for (int i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

static void take_str(Walker *w, char out[256])
{
    uint8_t len = take_be(w, 1);

    memcpy(out, take(w, len), len);
    out[len] = '\0';
}

static void walk_ram(Walker *w, MigStreamElement *el)
{
    for (;;) {
        size_t start = w->pos;
        uint64_t flags = take_be(w, 8) & 0xfff;
        char block[256];

        if (flags & RAM_EOS) {
            return;
        }
        if (flags & RAM_MAPPED_BLOCK) {
            g_error("stream walker: mapped-ram streams are not linear");
        }
        if (!(flags & (RAM_PAGES | RAM_ZERO))) {
            continue;                   /* a multifd flush */
        }
        if (!(flags & RAM_CONTINUE)) {
            take_str(w, block);
        }
        if (flags & RAM_PAGES) {
            if (!el->first_pages) {
                el->first_pages = start;
            }
            take(w, take_be(w, 4) * w->page_size);
        } else {
            take_be(w, 4);
        }
    }
}

/* A VFIO device's payload: be64 markers, some with a sized block. */
static void walk_vfio(Walker *w)
{
    for (;;) {
        uint64_t marker = take_be(w, 8);

        if (marker == VFIO_END_OF_STATE) {
            return;
        }
        if (marker == VFIO_DEV_DATA_STATE || marker == VFIO_DEV_CONFIG_STATE) {
            take(w, take_be(w, 8));
        } else if ((marker >> 32) != 0xffffffffULL) {
            g_error("stream walker: 0x%" PRIx64 " at %zu is no VFIO marker",
                    marker, w->pos - 8);
        }
    }
}

static void walk_config(Walker *w)
{
    char str[256];
    uint32_t caps, nblocks;

    w->s->config = w->pos;
    g_assert_cmpuint(take_be(w, 1), ==, 0x07);
    w->page_size = take_be(w, 4);
    take_str(w, str);                   /* machine type */
    take_str(w, str);                   /* guest program */
    take_be(w, 4);                      /* vCPUs */
    caps = take_be(w, 4);
    take(w, 16);                        /* migration UUID */
    if (caps & (1u << 16)) {
        take(w, 16);                    /* VM UUID */
    }
    nblocks = take_be(w, 4);
    for (uint32_t i = 0; i < nblocks; i++) {
        take_str(w, str);
        take(w, 16);
    }
    w->s->config_end = w->pos;
}

MigStream *mig_stream_walk(const uint8_t *data, size_t len)
{
    MigStream *s = g_new0(MigStream, 1);
    g_autoptr(GHashTable) names = g_hash_table_new_full(NULL, NULL, NULL,
                                                        g_free);
    Walker w = { .s = s };

    s->data = data;
    s->len = len;
    s->elements = g_array_new(false, true, sizeof(MigStreamElement));
    g_assert_cmphex(take_be(&w, 4), ==, 0x564d4947);
    take_be(&w, 4);
    walk_config(&w);
    for (;;) {
        MigStreamElement el = { .offset = w.pos };
        const char *name;

        el.type = take_be(&w, 1);
        if (el.type == MIG_EL_EOF) {
            el.end = w.pos;
            g_array_append_val(s->elements, el);
            break;
        }
        if (el.type == MIG_EL_COMMAND) {
            el.command = take_be(&w, 2);
            take(&w, take_be(&w, 2));
            el.end = w.pos;
            g_array_append_val(s->elements, el);
            continue;
        }
        g_assert_cmpuint(el.type, >=, MIG_EL_START);
        g_assert_cmpuint(el.type, <=, MIG_EL_FULL);
        el.section_id = take_be(&w, 4);
        if (el.type == MIG_EL_START || el.type == MIG_EL_FULL) {
            el.name_offset = w.pos;
            take_str(&w, el.name);
            take(&w, 8);                /* instance id, version */
            g_hash_table_insert(names, GUINT_TO_POINTER(el.section_id),
                                g_strdup(el.name));
        }
        name = g_hash_table_lookup(names, GUINT_TO_POINTER(el.section_id));
        g_assert_nonnull(name);
        g_strlcpy(el.name, name, sizeof(el.name));
        el.payload = w.pos;
        if (!strcmp(name, "ram")) {
            walk_ram(&w, &el);
        } else if (!strcmp(name, "guest")) {
            take(&w, take_be(&w, 4));
        } else if (!strcmp(name, "globalstate")) {
            take(&w, 32);
        } else {
            walk_vfio(&w);
        }
        el.footer = w.pos;
        g_assert_cmpuint(take_be(&w, 1), ==, 0x7e);
        g_assert_cmpuint(take_be(&w, 4), ==, el.section_id);
        el.end = w.pos;
        g_array_append_val(s->elements, el);
    }
    g_assert_cmpuint(w.pos, ==, len);
    return s;
}

void mig_stream_free(MigStream *s)
{
    g_array_free(s->elements, true);
    g_free(s);
}

MigStreamElement *mig_stream_find(MigStream *s, uint8_t type,
                                  const char *name)
{
    for (guint i = 0; i < s->elements->len; i++) {
        MigStreamElement *el = mig_stream_element(s, i);

        if (el->type == type && (!name || !strcmp(el->name, name))) {
            return el;
        }
    }
    return NULL;
}

char *mig_stream_missing(MigStream *s, guint i)
{
    static const char *const kinds[] = {
        [MIG_EL_START] = "START", [MIG_EL_END] = "END",
        [MIG_EL_FULL] = "FULL",
    };

    for (; i < s->elements->len; i++) {
        MigStreamElement *el = mig_stream_element(s, i);

        switch (el->type) {
        case MIG_EL_EOF:
            return g_strdup("its EOF marker");
        case MIG_EL_COMMAND:
            if (el->command == MIG_CMD_SWITCHOVER_START) {
                return g_strdup("SWITCHOVER_START");
            }
            break;
        case MIG_EL_START:
        case MIG_EL_END:
        case MIG_EL_FULL:
            return g_strdup_printf("the %s section of '%s'", kinds[el->type],
                                   el->name);
        default:
            break;
        }
    }
    g_assert_not_reached();
}

/* The first @len bytes, and an EOF marker after them (for len + 1). */
static uint8_t *stream_prefix(MigStream *s, size_t len)
{
    uint8_t *d = g_malloc(len + 1);

    memcpy(d, s->data, len);
    d[len] = MIG_EL_EOF;
    return d;
}

void mig_stream_check_cut(MigStream *s, guint i, MigStreamExpectError *expect,
                          void *opaque)
{
    MigStreamElement *el = mig_stream_element(s, i);
    g_autofree char *missing = mig_stream_missing(s, i);
    g_autofree uint8_t *d = stream_prefix(s, el->offset);
    g_autofree char *cut = NULL, *marker = NULL;

    cut = g_strdup_printf("incomplete stream: truncated after %zu bytes, "
                          "before %s", el->offset, missing);
    expect(d, el->offset, cut, opaque);
    if (el->type != MIG_EL_EOF) {
        marker = g_strdup_printf("incomplete stream: an EOF marker at byte "
                                 "%zu, before %s", el->offset, missing);
        expect(d, el->offset + 1, marker, opaque);
    }
}

void mig_stream_check_cut_inside(MigStream *s, guint i,
                                 MigStreamExpectError *expect, void *opaque)
{
    MigStreamElement *el = mig_stream_element(s, i);
    size_t at = el->first_pages ? el->first_pages + 20
                                : el->payload + (el->footer - el->payload) / 2;
    g_autofree char *inside = g_strdup_printf(
        "*section '%s': *truncated after %zu bytes*", el->name, at);
    g_autofree uint8_t *d = stream_prefix(s, at);

    g_assert_cmpuint(el->footer, >, el->payload);
    expect(d, at, inside, opaque);
}

void mig_stream_check_truncations(MigStream *s, MigStreamExpectError *expect,
                                  void *opaque)
{
    g_autoptr(GHashTable) cut_inside = g_hash_table_new_full(
        g_str_hash, g_str_equal, g_free, NULL);
    g_autofree uint8_t *head = stream_prefix(s, s->config);

    /* The header alone: there is not even a configuration. */
    expect(head, s->config, "truncated after 8 bytes", opaque);
    expect(head, s->config + 1, "no configuration section", opaque);

    for (guint i = 0; i < s->elements->len; i++) {
        MigStreamElement *el = mig_stream_element(s, i);
        char *key = g_strdup_printf("%u %s", el->type, el->name);

        mig_stream_check_cut(s, i, expect, opaque);
        /* Inside the payload of each handler's first section of a kind. */
        if (el->type != MIG_EL_COMMAND && el->type != MIG_EL_EOF &&
            el->footer > el->payload && g_hash_table_add(cut_inside, key)) {
            mig_stream_check_cut_inside(s, i, expect, opaque);
        } else {
            g_free(key);
        }
    }
}

bool mig_error_matches(const char *err, const char *fragment)
{
    g_auto(GStrv) lines = NULL;

    if (!strchr(fragment, '*')) {
        return strstr(err, fragment);
    }
    lines = g_strsplit(err, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        if (g_pattern_match_simple(fragment, lines[i])) {
            return true;
        }
    }
    return false;
}

void mig_expect_load_error(const uint8_t *bytes, size_t len,
                           const char *vm_args, const char *fragment)
{
    g_autofree char *path = qtest_tmp_path("bad", "img");
    g_autofree char *args = NULL, *err = NULL;
    int status;

    g_assert_true(g_file_set_contents(path, (const char *)bytes, len, NULL));
    args = g_strdup_printf("%s -incoming file:%s", vm_args, path);
    status = qtest_run(args, NULL, &err);
    if (status != 1 || !mig_error_matches(err, fragment)) {
        g_error("loading a damaged stream: exit %d, stderr '%s', expected "
                "exit 1 and '%s'", status, err, fragment);
    }
    unlink(path);
}

void mig_expect_load_error_cb(const uint8_t *bytes, size_t len,
                              const char *fragment, void *opaque)
{
    mig_expect_load_error(bytes, len, opaque, fragment);
}
