/*
 * A small object model in the spirit of QEMU's QOM: typed objects in a
 * tree (/machine, /machine/peripheral/ID, /objects/ID), each with named,
 * typed properties that the command line sets as text and QMP's qom-get
 * / qom-set read and write as JSON.
 *
 * A type is an ObjectClass with a table of static properties (fields at
 * an offset in the instance, with a default).  An object may also add
 * dynamic properties with getter/setter callbacks (computed values such
 * as a device's migration state).  All functions are called with the BQL
 * held; properties that threads read while the VM runs are read with
 * atomics by their users.
 */
#ifndef QOM_OBJECT_H
#define QOM_OBJECT_H

#include "qemu/cutils.h"
#include "qemu/error.h"
#include "qemu/keyval.h"

typedef struct Object Object;
typedef struct ObjectClass ObjectClass;
typedef struct ObjectProperty ObjectProperty;

typedef enum PropertyType {
    PROP_TYPE_STR,
    PROP_TYPE_BOOL,
    PROP_TYPE_U32,
    PROP_TYPE_U64,
    PROP_TYPE_SIZE,         /* u64 written with K/M/G/T on the command line */
    PROP_TYPE_ONOFFAUTO,
    PROP_TYPE_CHILD,        /* link to a child object (qom-list only) */
} PropertyType;

/* A property value in its C form.  str is owned by whoever holds it. */
typedef union PropValue {
    char *str;
    bool b;
    uint64_t u64;           /* U32, U64 and SIZE */
    OnOffAuto ona;
} PropValue;

/* A static property: a field of the instance struct. */
typedef struct Property {
    const char *name;
    PropertyType type;
    size_t offset;          /* char * for STR, bool, uint32_t, uint64_t, OnOffAuto */
    const char *defval;     /* default, as the command line would write it */
    const char *desc;
    /*
     * qom-set allowed after realize.  Not for PROP_TYPE_STR (type_register
     * asserts): setting a string frees the old one while other threads
     * may read it.
     */
    bool runtime;
    /* Optional check of a new value; may refuse it with a message. */
    bool (*check)(Object *obj, const struct Property *prop,
                  const PropValue *val, Error **errp);
} Property;

#define DEFINE_PROP(_name, _type, _state, _field, _def, _desc) \
    { .name = (_name), .type = (_type), \
      .offset = offsetof(_state, _field), .defval = (_def), .desc = (_desc) }
#define DEFINE_PROP_RT(_name, _type, _state, _field, _def, _desc) \
    { .name = (_name), .type = (_type), .offset = offsetof(_state, _field), \
      .defval = (_def), .desc = (_desc), .runtime = true }
/* A runtime property whose new values @_check must accept first. */
#define DEFINE_PROP_RT_CHECK(_name, _type, _state, _field, _def, _desc, \
                             _check) \
    { .name = (_name), .type = (_type), .offset = offsetof(_state, _field), \
      .defval = (_def), .desc = (_desc), .runtime = true, .check = (_check) }

typedef bool ObjectPropertyGet(Object *obj, ObjectProperty *prop,
                               PropValue *val, Error **errp);
typedef bool ObjectPropertySet(Object *obj, ObjectProperty *prop,
                               const PropValue *val, Error **errp);

struct ObjectProperty {
    char *name;
    PropertyType type;
    const char *desc;
    const Property *sprop;      /* static property, or NULL */
    ObjectPropertyGet *get;     /* dynamic getter */
    ObjectPropertySet *set;     /* dynamic setter; NULL: read-only */
    Object *child;              /* PROP_TYPE_CHILD */
    void *opaque;
};

struct ObjectClass {
    const char *name;           /* type name, e.g. "memory-backend-memfd" */
    const char *parent;         /* abstract parent, e.g. "device", or NULL */
    const char *desc;           /* one line for "-device help" */
    size_t instance_size;       /* >= sizeof(Object), Object first */
    const Property *props;      /* terminated by a zeroed entry */
    bool user_creatable;        /* -object / -device may create it */
    /* After every property has its initial value. */
    bool (*realize)(Object *obj, Error **errp);
    /* Undo realize and free what the instance owns (not the object). */
    void (*finalize)(Object *obj);
};

struct Object {
    const ObjectClass *klass;
    char *name;                 /* last path component */
    Object *parent;
    GPtrArray *props;           /* ObjectProperty *, in order */
    bool realized;
};

/* Register a type (from a constructor, see type_init). */
void type_register(const ObjectClass *klass);
#define type_init(fn) \
    static void __attribute__((constructor)) do_type_init_##fn(void) { fn(); }
const ObjectClass *object_class_by_name(const char *name);
/* Types whose parent is @parent (NULL: all), sorted by name. */
GPtrArray *object_class_list(const char *parent);
const char *prop_type_name(PropertyType type);

/* The root "/" and well-known containers, created on first use. */
Object *object_get_root(void);
Object *object_get_container(const char *path);  /* e.g. "/machine/peripheral" */

/*
 * Create an object of @type: defaults, then every property in @opts
 * (keys the caller consumed already, such as "driver" and "id", must be
 * marked used), realize, and add it as @parent/@name.  Any error undoes
 * everything.  @opts may be NULL.
 */
Object *object_create(const char *type, Object *parent, const char *name,
                      KeyVal *opts, Error **errp);
/* Remove from the tree, finalize and free (children first). */
void object_unparent(Object *obj);

/* "/machine/peripheral/dev0", or a unique partial path ("dev0"). */
Object *object_resolve_path(const char *path, Error **errp);
char *object_get_canonical_path(const Object *obj);
Object *object_child(Object *obj, const char *name);
const char *object_type(const Object *obj);
bool object_is_type(const Object *obj, const char *type_or_parent);

void object_property_add(Object *obj, const char *name, PropertyType type,
                         const char *desc, ObjectPropertyGet *get,
                         ObjectPropertySet *set, void *opaque);
ObjectProperty *object_property_find(Object *obj, const char *name);
/* val->str from a get is newly allocated: free it. */
bool object_property_get(Object *obj, const char *name, PropValue *val,
                         Error **errp);
/* Checks type, "runtime" after realize, and the property's check. */
bool object_property_set(Object *obj, const char *name, const PropValue *val,
                         Error **errp);
/* Parse @str as the property's type (as on the command line) and set. */
bool object_property_parse(Object *obj, const char *name, const char *str,
                           Error **errp);
/* The value as command-line text (newly allocated). */
char *object_property_print(Object *obj, const char *name, Error **errp);

/* Print "-device DRIVER,help"-style property lines for a type. */
void object_class_print_props(const ObjectClass *klass, FILE *out);

#endif
