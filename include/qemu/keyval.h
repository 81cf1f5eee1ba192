/*
 * key=value,key=value option strings, as in "-device drv,id=x,size=1G".
 *
 * A leading element without '=' is the value of the implied key (the
 * driver of -device, the path of -qmp unix:...).  ",," is a literal comma
 * in a value.  Keys may not repeat.  Getters mark a key as used, so that
 * keyval_check_unused() can name any key nobody asked for.
 *
 * Every error names the option (@what, e.g. "-device vfio-user-pci") and
 * the key.
 */
#ifndef QEMU_KEYVAL_H
#define QEMU_KEYVAL_H

#include "qemu/cutils.h"
#include "qemu/error.h"

typedef struct KeyVal KeyVal;

KeyVal *keyval_parse(const char *str, const char *implied_key,
                     const char *what, Error **errp);
void keyval_free(KeyVal *kv);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KeyVal, keyval_free)

const char *keyval_what(const KeyVal *kv);
unsigned keyval_count(const KeyVal *kv);
/* The i-th key and value, in the order given. */
const char *keyval_key(const KeyVal *kv, unsigned i);
const char *keyval_value(const KeyVal *kv, unsigned i);

bool keyval_has(const KeyVal *kv, const char *key);
/* The value, or NULL when absent.  Marks the key used. */
const char *keyval_get(KeyVal *kv, const char *key);

/*
 * Typed getters: absent keys leave *val untouched and succeed, so callers
 * set the default first.  A present but bad value fails with a message.
 */
bool keyval_get_size(KeyVal *kv, const char *key, uint64_t *val, Error **errp);
bool keyval_get_u64(KeyVal *kv, const char *key, uint64_t *val, Error **errp);
bool keyval_get_u32(KeyVal *kv, const char *key, uint32_t *val, Error **errp);
bool keyval_get_bool(KeyVal *kv, const char *key, bool *val, Error **errp);
bool keyval_get_onoffauto(KeyVal *kv, const char *key, OnOffAuto *val,
                          Error **errp);

/* Fail naming the first key no getter asked for. */
bool keyval_check_unused(const KeyVal *kv, Error **errp);

#endif
