/*
 * key=value option string parsing.
 */
#include "qemu/osdep.h"
#include "qemu/keyval.h"

typedef struct KeyValPair {
    char *key;
    char *value;
    bool used;
} KeyValPair;

struct KeyVal {
    char *what;
    GArray *pairs;          /* of KeyValPair */
};

static void pair_clear(gpointer p)
{
    KeyValPair *kvp = p;

    g_free(kvp->key);
    g_free(kvp->value);
}

void keyval_free(KeyVal *kv)
{
    if (kv) {
        g_array_free(kv->pairs, TRUE);
        g_free(kv->what);
        g_free(kv);
    }
}

/* Read up to the next unescaped ',' (or '=' when @stop_at_eq). */
static const char *scan_token(const char *p, bool stop_at_eq, GString *out)
{
    for (; *p; p++) {
        if (*p == ',') {
            if (p[1] == ',') {
                g_string_append_c(out, ',');
                p++;
                continue;
            }
            break;
        }
        if (stop_at_eq && *p == '=') {
            break;
        }
        g_string_append_c(out, *p);
    }
    return p;
}

static KeyValPair *find_pair(const KeyVal *kv, const char *key)
{
    for (guint i = 0; i < kv->pairs->len; i++) {
        KeyValPair *kvp = &g_array_index(kv->pairs, KeyValPair, i);
        if (!strcmp(kvp->key, key)) {
            return kvp;
        }
    }
    return NULL;
}

KeyVal *keyval_parse(const char *str, const char *implied_key,
                     const char *what, Error **errp)
{
    KeyVal *kv = g_new0(KeyVal, 1);
    const char *p = str;
    bool first = true;

    kv->what = g_strdup(what);
    kv->pairs = g_array_new(FALSE, TRUE, sizeof(KeyValPair));
    g_array_set_clear_func(kv->pairs, pair_clear);

    if (!*p) {
        if (implied_key) {
            error_setg(errp, "%s: missing %s", what, implied_key);
            goto fail;
        }
        return kv;
    }
    for (;;) {
        g_autoptr(GString) key = g_string_new(NULL);
        g_autoptr(GString) value = g_string_new(NULL);
        const char *q = scan_token(p, true, key);

        if (*q == '=') {
            q = scan_token(q + 1, false, value);
        } else if (first && implied_key) {
            /* "drv,..." : the whole token is the implied key's value */
            g_string_truncate(key, 0);
            q = scan_token(p, false, value);
            g_string_assign(key, implied_key);
        } else {
            error_setg(errp, "%s: expected key=value, got '%s'", what, key->str);
            goto fail;
        }
        if (key->len == 0) {
            error_setg(errp, "%s: empty key in '%s'", what, str);
            goto fail;
        }
        if (find_pair(kv, key->str)) {
            error_setg(errp, "%s: '%s' given more than once", what, key->str);
            goto fail;
        }
        KeyValPair kvp = {
            .key = g_string_free(g_steal_pointer(&key), FALSE),
            .value = g_string_free(g_steal_pointer(&value), FALSE),
        };
        g_array_append_val(kv->pairs, kvp);
        first = false;
        if (*q == '\0') {
            break;
        }
        p = q + 1;          /* skip ',' */
        if (*p == '\0') {
            error_setg(errp, "%s: trailing comma in '%s'", what, str);
            goto fail;
        }
    }
    return kv;

fail:
    keyval_free(kv);
    return NULL;
}

const char *keyval_what(const KeyVal *kv)
{
    return kv->what;
}

unsigned keyval_count(const KeyVal *kv)
{
    return kv->pairs->len;
}

const char *keyval_key(const KeyVal *kv, unsigned i)
{
    return g_array_index(kv->pairs, KeyValPair, i).key;
}

const char *keyval_value(const KeyVal *kv, unsigned i)
{
    return g_array_index(kv->pairs, KeyValPair, i).value;
}

bool keyval_has(const KeyVal *kv, const char *key)
{
    return find_pair(kv, key) != NULL;
}

const char *keyval_get(KeyVal *kv, const char *key)
{
    KeyValPair *kvp = find_pair(kv, key);

    if (!kvp) {
        return NULL;
    }
    kvp->used = true;
    return kvp->value;
}

bool keyval_get_size(KeyVal *kv, const char *key, uint64_t *val, Error **errp)
{
    const char *s = keyval_get(kv, key);
    int ret;

    if (!s) {
        return true;
    }
    ret = qemu_strtosz(s, val);
    if (ret == -ERANGE) {
        error_setg(errp, "%s: %s='%s' is too large", kv->what, key, s);
        return false;
    }
    if (ret < 0) {
        error_setg(errp, "%s: %s='%s' is not a size (use a number with an "
                   "optional K, M, G or T suffix)", kv->what, key, s);
        return false;
    }
    return true;
}

bool keyval_get_u64(KeyVal *kv, const char *key, uint64_t *val, Error **errp)
{
    const char *s = keyval_get(kv, key);

    if (!s) {
        return true;
    }
    if (qemu_strtou64(s, val) < 0) {
        error_setg(errp, "%s: %s='%s' is not a non-negative integer",
                   kv->what, key, s);
        return false;
    }
    return true;
}

bool keyval_get_u32(KeyVal *kv, const char *key, uint32_t *val, Error **errp)
{
    uint64_t v = *val;

    if (!keyval_get_u64(kv, key, &v, errp)) {
        return false;
    }
    if (v > UINT32_MAX) {
        error_setg(errp, "%s: %s=%" PRIu64 " is out of range (at most %u)",
                   kv->what, key, v, UINT32_MAX);
        return false;
    }
    *val = v;
    return true;
}

bool keyval_get_bool(KeyVal *kv, const char *key, bool *val, Error **errp)
{
    const char *s = keyval_get(kv, key);

    if (s && !qemu_parse_bool(s, val)) {
        error_setg(errp, "%s: %s='%s' is not on or off", kv->what, key, s);
        return false;
    }
    return true;
}

bool keyval_get_onoffauto(KeyVal *kv, const char *key, OnOffAuto *val,
                          Error **errp)
{
    const char *s = keyval_get(kv, key);

    if (s && !qemu_parse_onoffauto(s, val)) {
        error_setg(errp, "%s: %s='%s' is not on, off or auto", kv->what, key, s);
        return false;
    }
    return true;
}

bool keyval_check_unused(const KeyVal *kv, Error **errp)
{
    for (guint i = 0; i < kv->pairs->len; i++) {
        KeyValPair *kvp = &g_array_index(kv->pairs, KeyValPair, i);
        if (!kvp->used) {
            error_setg(errp, "%s: unknown parameter '%s'", kv->what, kvp->key);
            return false;
        }
    }
    return true;
}
