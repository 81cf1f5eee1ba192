/*
 * The object model: types, the object tree and typed properties.
 */
#include "qemu/osdep.h"
#include "qom/object.h"
#include "qemu/main-loop.h"

static GHashTable *type_table;      /* name -> const ObjectClass * */
static Object *root;

static const ObjectClass container_class = {
    .name = "container",
    .desc = "a node of the object tree",
    .instance_size = sizeof(Object),
};

void type_register(const ObjectClass *klass)
{
    if (!type_table) {
        type_table = g_hash_table_new(g_str_hash, g_str_equal);
    }
    assert(klass->instance_size >= sizeof(Object));
    assert(!g_hash_table_contains(type_table, klass->name));
    for (const Property *p = klass->props; p && p->name; p++) {
        /*
         * A new string frees the old one, which threads reading it while
         * the object is in use could still hold: strings are fixed once
         * realized.
         */
        assert(!(p->runtime && p->type == PROP_TYPE_STR));
    }
    g_hash_table_insert(type_table, (gpointer)klass->name, (gpointer)klass);
}

const ObjectClass *object_class_by_name(const char *name)
{
    return type_table ? g_hash_table_lookup(type_table, name) : NULL;
}

static gint compare_class_names(gconstpointer a, gconstpointer b)
{
    const ObjectClass *ca = *(const ObjectClass *const *)a;
    const ObjectClass *cb = *(const ObjectClass *const *)b;

    return strcmp(ca->name, cb->name);
}

GPtrArray *object_class_list(const char *parent)
{
    GPtrArray *list = g_ptr_array_new();
    GHashTableIter it;
    gpointer value;

    if (type_table) {
        g_hash_table_iter_init(&it, type_table);
        while (g_hash_table_iter_next(&it, NULL, &value)) {
            const ObjectClass *klass = value;
            if (!parent || g_strcmp0(klass->parent, parent) == 0) {
                g_ptr_array_add(list, value);
            }
        }
    }
    g_ptr_array_sort(list, compare_class_names);
    return list;
}

const char *prop_type_name(PropertyType type)
{
    switch (type) {
    case PROP_TYPE_STR: return "str";
    case PROP_TYPE_BOOL: return "bool";
    case PROP_TYPE_U32: return "uint32";
    case PROP_TYPE_U64: return "uint64";
    case PROP_TYPE_SIZE: return "size";
    case PROP_TYPE_ONOFFAUTO: return "OnOffAuto";
    case PROP_TYPE_CHILD: return "child";
    }
    g_assert_not_reached();
}

/* ---- Property storage ---- */

static void *prop_field(Object *obj, const Property *sprop)
{
    return (char *)obj + sprop->offset;
}

static void static_prop_read(Object *obj, const Property *sprop, PropValue *val)
{
    void *field = prop_field(obj, sprop);

    switch (sprop->type) {
    case PROP_TYPE_STR:
        val->str = g_strdup(*(char **)field);
        break;
    case PROP_TYPE_BOOL:
        val->b = __atomic_load_n((bool *)field, __ATOMIC_RELAXED);
        break;
    case PROP_TYPE_U32:
        val->u64 = __atomic_load_n((uint32_t *)field, __ATOMIC_RELAXED);
        break;
    case PROP_TYPE_U64:
    case PROP_TYPE_SIZE:
        val->u64 = __atomic_load_n((uint64_t *)field, __ATOMIC_RELAXED);
        break;
    case PROP_TYPE_ONOFFAUTO:
        val->ona = __atomic_load_n((OnOffAuto *)field, __ATOMIC_RELAXED);
        break;
    case PROP_TYPE_CHILD:
        g_assert_not_reached();
    }
}

/* Fields are written atomically: vCPU or device threads may read them. */
static void static_prop_write(Object *obj, const Property *sprop,
                              const PropValue *val)
{
    void *field = prop_field(obj, sprop);

    switch (sprop->type) {
    case PROP_TYPE_STR:
        g_free(*(char **)field);
        *(char **)field = g_strdup(val->str);
        break;
    case PROP_TYPE_BOOL:
        __atomic_store_n((bool *)field, val->b, __ATOMIC_RELAXED);
        break;
    case PROP_TYPE_U32:
        __atomic_store_n((uint32_t *)field, (uint32_t)val->u64, __ATOMIC_RELAXED);
        break;
    case PROP_TYPE_U64:
    case PROP_TYPE_SIZE:
        __atomic_store_n((uint64_t *)field, val->u64, __ATOMIC_RELAXED);
        break;
    case PROP_TYPE_ONOFFAUTO:
        __atomic_store_n((OnOffAuto *)field, val->ona, __ATOMIC_RELAXED);
        break;
    case PROP_TYPE_CHILD:
        g_assert_not_reached();
    }
}

/* Parse command-line text as a value of @type; val->str is allocated. */
static bool prop_value_parse(const char *what, const char *name,
                             PropertyType type, const char *str,
                             PropValue *val, Error **errp)
{
    int ret;

    switch (type) {
    case PROP_TYPE_STR:
        val->str = g_strdup(str);
        return true;
    case PROP_TYPE_BOOL:
        if (!qemu_parse_bool(str, &val->b)) {
            error_setg(errp, "%s: %s='%s' is not on or off", what, name, str);
            return false;
        }
        return true;
    case PROP_TYPE_U32:
    case PROP_TYPE_U64:
        if (qemu_strtou64(str, &val->u64) < 0 ||
            (type == PROP_TYPE_U32 && val->u64 > UINT32_MAX)) {
            error_setg(errp, "%s: %s='%s' is not a %s", what, name, str,
                       type == PROP_TYPE_U32 ? "32-bit unsigned integer"
                                             : "non-negative integer");
            return false;
        }
        return true;
    case PROP_TYPE_SIZE:
        ret = qemu_strtosz(str, &val->u64);
        if (ret < 0) {
            error_setg(errp, "%s: %s='%s' is %s", what, name, str,
                       ret == -ERANGE ? "too large" :
                       "not a size (use a number with an optional K, M, G or T suffix)");
            return false;
        }
        return true;
    case PROP_TYPE_ONOFFAUTO:
        if (!qemu_parse_onoffauto(str, &val->ona)) {
            error_setg(errp, "%s: %s='%s' is not on, off or auto", what, name, str);
            return false;
        }
        return true;
    case PROP_TYPE_CHILD:
        break;
    }
    error_setg(errp, "%s: property '%s' cannot be set", what, name);
    return false;
}

static char *prop_value_print(PropertyType type, const PropValue *val)
{
    switch (type) {
    case PROP_TYPE_STR:
        return g_strdup(val->str ? val->str : "");
    case PROP_TYPE_BOOL:
        return g_strdup(val->b ? "on" : "off");
    case PROP_TYPE_U32:
    case PROP_TYPE_U64:
    case PROP_TYPE_SIZE:
        return g_strdup_printf("%" PRIu64, val->u64);
    case PROP_TYPE_ONOFFAUTO:
        return g_strdup(onoffauto_str(val->ona));
    case PROP_TYPE_CHILD:
        break;
    }
    return g_strdup("");
}

static void prop_value_clear(PropertyType type, PropValue *val)
{
    if (type == PROP_TYPE_STR) {
        g_free(val->str);
        val->str = NULL;
    }
}

static void object_property_free(gpointer p)
{
    ObjectProperty *prop = p;

    g_free(prop->name);
    g_free(prop);
}

static ObjectProperty *property_new(Object *obj, const char *name,
                                    PropertyType type, const char *desc)
{
    ObjectProperty *prop = g_new0(ObjectProperty, 1);

    assert(!object_property_find(obj, name));
    prop->name = g_strdup(name);
    prop->type = type;
    prop->desc = desc;
    g_ptr_array_add(obj->props, prop);
    return prop;
}

void object_property_add(Object *obj, const char *name, PropertyType type,
                         const char *desc, ObjectPropertyGet *get,
                         ObjectPropertySet *set, void *opaque)
{
    ObjectProperty *prop = property_new(obj, name, type, desc);

    prop->get = get;
    prop->set = set;
    prop->opaque = opaque;
}

ObjectProperty *object_property_find(Object *obj, const char *name)
{
    for (guint i = 0; i < obj->props->len; i++) {
        ObjectProperty *prop = g_ptr_array_index(obj->props, i);
        if (!strcmp(prop->name, name)) {
            return prop;
        }
    }
    return NULL;
}

static ObjectProperty *property_lookup(Object *obj, const char *name,
                                       Error **errp)
{
    ObjectProperty *prop = object_property_find(obj, name);

    if (!prop) {
        error_setg(errp, "Property '%s.%s' not found", object_type(obj), name);
    }
    return prop;
}

bool object_property_get(Object *obj, const char *name, PropValue *val,
                         Error **errp)
{
    ObjectProperty *prop = property_lookup(obj, name, errp);

    if (!prop) {
        return false;
    }
    memset(val, 0, sizeof(*val));
    if (prop->type == PROP_TYPE_CHILD) {
        val->str = object_get_canonical_path(prop->child);
        return true;
    }
    if (prop->get) {
        return prop->get(obj, prop, val, errp);
    }
    static_prop_read(obj, prop->sprop, val);
    return true;
}

bool object_property_set(Object *obj, const char *name, const PropValue *val,
                         Error **errp)
{
    ObjectProperty *prop = property_lookup(obj, name, errp);

    if (!prop) {
        return false;
    }
    if (prop->type == PROP_TYPE_CHILD || (!prop->sprop && !prop->set)) {
        error_setg(errp, "Property '%s.%s' is read-only", object_type(obj), name);
        return false;
    }
    if (prop->sprop) {
        if (obj->realized && !prop->sprop->runtime) {
            error_setg(errp, "Property '%s.%s' cannot be changed while the "
                       "object is in use", object_type(obj), name);
            return false;
        }
        if (prop->sprop->check && !prop->sprop->check(obj, prop->sprop, val, errp)) {
            return false;
        }
        static_prop_write(obj, prop->sprop, val);
        return true;
    }
    return prop->set(obj, prop, val, errp);
}

bool object_property_parse(Object *obj, const char *name, const char *str,
                           Error **errp)
{
    ObjectProperty *prop = property_lookup(obj, name, errp);
    PropValue val = { 0 };
    bool ok;

    if (!prop) {
        return false;
    }
    if (!prop_value_parse(object_type(obj), name, prop->type, str, &val, errp)) {
        return false;
    }
    ok = object_property_set(obj, name, &val, errp);
    prop_value_clear(prop->type, &val);
    return ok;
}

char *object_property_print(Object *obj, const char *name, Error **errp)
{
    ObjectProperty *prop = property_lookup(obj, name, errp);
    PropValue val;
    char *s;

    if (!prop || !object_property_get(obj, name, &val, errp)) {
        return NULL;
    }
    s = prop->type == PROP_TYPE_CHILD ? g_strdup(val.str)
                                      : prop_value_print(prop->type, &val);
    if (prop->type == PROP_TYPE_STR || prop->type == PROP_TYPE_CHILD) {
        g_free(val.str);
    }
    return s;
}

/* ---- Objects and the tree ---- */

static Object *object_alloc(const ObjectClass *klass, const char *name)
{
    Object *obj = g_malloc0(klass->instance_size);

    obj->klass = klass;
    obj->name = g_strdup(name);
    obj->props = g_ptr_array_new_with_free_func(object_property_free);
    for (const Property *sp = klass->props; sp && sp->name; sp++) {
        ObjectProperty *prop = property_new(obj, sp->name, sp->type, sp->desc);
        PropValue val = { 0 };

        prop->sprop = sp;
        if (sp->defval) {
            /* Defaults are written by the type's author: must parse. */
            prop_value_parse(klass->name, sp->name, sp->type, sp->defval,
                             &val, &error_abort);
        }
        static_prop_write(obj, sp, &val);
        prop_value_clear(sp->type, &val);
    }
    return obj;
}

static void object_add_child(Object *parent, Object *child)
{
    ObjectProperty *prop = property_new(parent, child->name, PROP_TYPE_CHILD,
                                        NULL);

    prop->child = child;
    child->parent = parent;
}

Object *object_get_root(void)
{
    if (!root) {
        root = object_alloc(&container_class, "");
    }
    return root;
}

Object *object_child(Object *obj, const char *name)
{
    ObjectProperty *prop = object_property_find(obj, name);

    return prop && prop->type == PROP_TYPE_CHILD ? prop->child : NULL;
}

Object *object_get_container(const char *path)
{
    Object *obj = object_get_root();
    g_auto(GStrv) parts = g_strsplit(path, "/", -1);

    for (char **p = parts; *p; p++) {
        if (!**p) {
            continue;
        }
        Object *child = object_child(obj, *p);
        if (!child) {
            child = object_alloc(&container_class, *p);
            child->realized = true;
            object_add_child(obj, child);
        }
        obj = child;
    }
    return obj;
}

static void object_free(Object *obj)
{
    const ObjectClass *klass = obj->klass;

    /* Children go first: they may depend on their parent. */
    for (guint i = obj->props->len; i-- > 0;) {
        ObjectProperty *prop = g_ptr_array_index(obj->props, i);
        if (prop->type == PROP_TYPE_CHILD) {
            object_free(prop->child);
        }
    }
    if (obj->realized && klass->finalize) {
        klass->finalize(obj);
    }
    for (const Property *sp = klass->props; sp && sp->name; sp++) {
        if (sp->type == PROP_TYPE_STR) {
            g_free(*(char **)prop_field(obj, sp));
        }
    }
    g_ptr_array_free(obj->props, TRUE);
    g_free(obj->name);
    g_free(obj);
}

void object_unparent(Object *obj)
{
    Object *parent = obj->parent;

    if (parent) {
        for (guint i = 0; i < parent->props->len; i++) {
            ObjectProperty *prop = g_ptr_array_index(parent->props, i);
            if (prop->type == PROP_TYPE_CHILD && prop->child == obj) {
                g_ptr_array_remove_index(parent->props, i);
                break;
            }
        }
        obj->parent = NULL;
    }
    if (obj == root) {
        root = NULL;
    }
    object_free(obj);
}

Object *object_create(const char *type, Object *parent, const char *name,
                      KeyVal *opts, Error **errp)
{
    const ObjectClass *klass = object_class_by_name(type);
    Object *obj;
    const char *what = opts ? keyval_what(opts) : type;

    if (!klass) {
        error_setg(errp, "%s: unknown type '%s'", what, type);
        return NULL;
    }
    if (object_child(parent, name)) {
        error_setg(errp, "%s: an object with id '%s' already exists", what, name);
        return NULL;
    }
    obj = object_alloc(klass, name);
    for (unsigned i = 0; opts && i < keyval_count(opts); i++) {
        const char *key = keyval_key(opts, i);
        ObjectProperty *prop;

        if (!strcmp(key, "driver") || !strcmp(key, "qom-type") ||
            !strcmp(key, "id")) {
            continue;
        }
        prop = object_property_find(obj, key);
        if (!prop || prop->type == PROP_TYPE_CHILD) {
            error_setg(errp, "%s: '%s' has no property '%s' (try %s,help)",
                       what, type, key, type);
            goto fail;
        }
        keyval_get(opts, key);
        if (!object_property_parse(obj, key, keyval_value(opts, i), errp)) {
            error_prepend(errp, "%s: ", what);
            goto fail;
        }
    }
    if (klass->realize && !klass->realize(obj, errp)) {
        error_prepend(errp, "%s: ", what);
        goto fail;
    }
    obj->realized = true;
    object_add_child(parent, obj);
    return obj;

fail:
    object_free(obj);
    return NULL;
}

char *object_get_canonical_path(const Object *obj)
{
    GString *path = g_string_new(NULL);

    for (const Object *o = obj; o && o->parent; o = o->parent) {
        g_string_prepend(path, o->name);
        g_string_prepend_c(path, '/');
    }
    if (path->len == 0) {
        g_string_assign(path, "/");
    }
    return g_string_free(path, FALSE);
}

static void find_by_name(Object *obj, const char *name, GPtrArray *found)
{
    for (guint i = 0; i < obj->props->len; i++) {
        ObjectProperty *prop = g_ptr_array_index(obj->props, i);
        if (prop->type != PROP_TYPE_CHILD) {
            continue;
        }
        if (!strcmp(prop->child->name, name)) {
            g_ptr_array_add(found, prop->child);
        }
        find_by_name(prop->child, name, found);
    }
}

Object *object_resolve_path(const char *path, Error **errp)
{
    Object *obj = object_get_root();

    if (path[0] != '/') {
        /* A partial path: a unique object of that name anywhere. */
        g_autoptr(GPtrArray) found = g_ptr_array_new();

        find_by_name(obj, path, found);
        if (found->len == 1) {
            return g_ptr_array_index(found, 0);
        }
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, found->len ?
                  "Path '%s' is ambiguous" : "Device '%s' not found", path);
        return NULL;
    }
    g_auto(GStrv) parts = g_strsplit(path, "/", -1);
    for (char **p = parts; *p; p++) {
        if (!**p) {
            continue;
        }
        obj = object_child(obj, *p);
        if (!obj) {
            error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND,
                      "Device '%s' not found", path);
            return NULL;
        }
    }
    return obj;
}

const char *object_type(const Object *obj)
{
    return obj->klass->name;
}

bool object_is_type(const Object *obj, const char *type_or_parent)
{
    return !strcmp(obj->klass->name, type_or_parent) ||
           g_strcmp0(obj->klass->parent, type_or_parent) == 0;
}

void object_class_print_props(const ObjectClass *klass, FILE *out)
{
    bool any = false;

    fprintf(out, "%s options:\n", klass->name);
    for (const Property *sp = klass->props; sp && sp->name; sp++) {
        g_autofree char *head = g_strdup_printf("  %s=<%s>", sp->name,
                                                prop_type_name(sp->type));
        fprintf(out, "%-36s", head);
        if (sp->desc) {
            fprintf(out, " - %s", sp->desc);
        }
        if (sp->defval) {
            fprintf(out, " (default: %s)", sp->defval);
        }
        if (sp->runtime) {
            fprintf(out, " [runtime]");
        }
        fputc('\n', out);
        any = true;
    }
    if (!any) {
        fprintf(out, "  (no options)\n");
    }
}
