/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The QMP schema at run time: the type tables scripts/qapi-gen.py makes
 * from the schema files (migration/migration.json, ...), and the one
 * generic marshaller that checks a request against them and fills the
 * command's typed argument struct (docs/devel/qapi.rst).
 *
 * Argument structs borrow from the request: strings, 'any' values and
 * alternates point into its JSON, so they live while the handler runs;
 * a handler that keeps one copies it.  Lists are arrays the marshaller
 * allocates and frees.
 */
#ifndef MONITOR_QAPI_H
#define MONITOR_QAPI_H

#include <json-glib/json-glib.h>
#include "qemu/error.h"

typedef enum QapiKind {
    QAPI_KIND_STR,
    QAPI_KIND_BOOL,
    QAPI_KIND_INT,          /* int64_t, range min..max */
    QAPI_KIND_UINT,         /* uint64_t, range 0..max */
    QAPI_KIND_NUMBER,       /* double; an integer is accepted too */
    QAPI_KIND_ANY,          /* JsonNode *, any JSON value */
    QAPI_KIND_NULL,
    QAPI_KIND_ENUM,         /* int: the index of the value */
    QAPI_KIND_OBJECT,       /* a struct, or a flat union */
    QAPI_KIND_ARRAY,        /* a struct { size_t len; T *v; } */
    QAPI_KIND_ALTERNATE,    /* JsonNode *, one of .alternatives */
} QapiKind;

typedef struct QapiType QapiType;

/* has_offset of a member whose value says "absent" itself (NULL). */
#define QAPI_NO_HAS ((size_t)-1)

typedef struct QapiMember {
    const char *name;           /* NULL ends a table */
    const QapiType *type;
    bool optional;
    size_t offset;              /* of the value in the C struct */
    size_t has_offset;          /* of its has_ flag, or QAPI_NO_HAS */
} QapiMember;

typedef struct QapiVariant {
    int tag_value;              /* -1 ends a table */
    const QapiType *type;       /* its members sit in the same JSON object */
    size_t offset;
} QapiVariant;

struct QapiType {
    const char *name;           /* the schema's name, "[elem]" for arrays */
    QapiKind kind;
    size_t size;                /* of the C value */
    int64_t min;                /* INT */
    uint64_t max;               /* INT, UINT */
    const char *const *values;  /* ENUM */
    int nvalues;
    const QapiMember *members;  /* OBJECT */
    const QapiType *base;       /* OBJECT: a named base, at offset 0 */
    const char *tag;            /* OBJECT: a union's discriminator */
    const QapiVariant *variants;
    const QapiType *element;    /* ARRAY */
    const QapiType *const *alternatives;    /* ALTERNATE, NULL-terminated */
};

/*
 * One command of the schema: its argument type (an object), its return
 * type (NULL: nothing) and the marshal wrapper that calls the typed
 * handler qmp_<name>().
 */
typedef void QapiMarshalFunc(const void *args, JsonNode **ret, Error **errp);

typedef enum QmpCommandFlags {
    QMP_CMD_NONE = 0,
    /* Allowed before qmp_capabilities (only qmp_capabilities itself). */
    QMP_CMD_NEGOTIATION = 1 << 0,
} QmpCommandFlags;

typedef struct QapiCommand {
    const char *name;
    const QapiType *args;
    const QapiType *ret;
    QapiMarshalFunc *marshal;
    QmpCommandFlags flags;
} QapiCommand;

typedef struct QapiEvent {
    const char *name;
    const QapiType *data;
} QapiEvent;

/*
 * Check @node against @type and, when @out is not NULL, fill the C value
 * at @out (type->size bytes, zeroed by the caller).  Errors use QEMU's
 * words and name the member by its full path from @name ("Parameter
 * 'capabilities[0].state' is missing"); @name NULL is the top level of
 * a command's arguments.  On failure, what was filled is freed.
 */
bool qapi_input(const QapiType *type, const char *name, JsonNode *node,
                void *out, Error **errp);
/* Free what qapi_input() allocated inside @value (not @value itself). */
void qapi_input_free(const QapiType *type, void *value);

/* The name of enum value @value, or "?" out of range. */
const char *qapi_enum_str(const QapiType *type, int value);

/* The schema's commands and events, by name, or NULL. */
const QapiCommand *qapi_command_lookup(const char *name);
const QapiEvent *qapi_event_lookup(const char *name);

#endif
