/*
 * authz-simple and authz-list.  See include/crypto/authz.h.
 */
#include "qemu/osdep.h"
#include <fnmatch.h>
#include "qom/object.h"
#include "qemu/cutils.h"
#include "crypto/authz.h"

typedef struct AuthzSimple {
    Object parent;
    char *identity;
} AuthzSimple;

typedef struct AuthzRule {
    char *match;
    char *policy;               /* allow, deny */
    char *format;               /* exact, glob */
} AuthzRule;

typedef struct AuthzList {
    Object parent;
    char *policy;
    AuthzRule rules[AUTHZ_LIST_MAX_RULES];
} AuthzList;

static bool simple_realize(Object *obj, Error **errp)
{
    AuthzSimple *a = (AuthzSimple *)obj;

    if (!a->identity) {
        error_setg(errp, "authz-simple '%s': property 'identity' is required",
                   obj->name);
        return false;
    }
    return true;
}

static bool is_policy(const char *p)
{
    return !strcmp(p, "allow") || !strcmp(p, "deny");
}

static bool list_realize(Object *obj, Error **errp)
{
    AuthzList *a = (AuthzList *)obj;

    if (!is_policy(a->policy)) {
        error_setg(errp, "authz-list '%s': policy must be 'allow' or 'deny', "
                   "not '%s'", obj->name, a->policy);
        return false;
    }
    for (unsigned i = 0; i < AUTHZ_LIST_MAX_RULES; i++) {
        AuthzRule *r = &a->rules[i];

        if (!r->match) {
            if (r->policy) {
                error_setg(errp, "authz-list '%s': rules.%u has no match",
                           obj->name, i);
                return false;
            }
            continue;
        }
        if (!r->policy || !is_policy(r->policy)) {
            error_setg(errp, "authz-list '%s': rules.%u.policy must be "
                       "'allow' or 'deny'", obj->name, i);
            return false;
        }
        if (strcmp(r->format, "exact") && strcmp(r->format, "glob")) {
            error_setg(errp, "authz-list '%s': rules.%u.format must be "
                       "'exact' or 'glob', not '%s'", obj->name, i, r->format);
            return false;
        }
    }
    return true;
}

static const Property simple_props[] = {
    DEFINE_PROP("identity", PROP_TYPE_STR, AuthzSimple, identity, NULL,
                "the one identity allowed"),
    { 0 }
};

#define RULE_PROPS(n) \
    DEFINE_PROP("rules." #n ".match", PROP_TYPE_STR, AuthzList, \
                rules[n].match, NULL, "an identity, or a glob pattern"), \
    DEFINE_PROP("rules." #n ".policy", PROP_TYPE_STR, AuthzList, \
                rules[n].policy, NULL, "allow or deny, when it matches"), \
    DEFINE_PROP("rules." #n ".format", PROP_TYPE_STR, AuthzList, \
                rules[n].format, "exact", "exact or glob")

static const Property list_props[] = {
    DEFINE_PROP("policy", PROP_TYPE_STR, AuthzList, policy, "deny",
                "allow or deny, when no rule matches"),
    RULE_PROPS(0), RULE_PROPS(1), RULE_PROPS(2), RULE_PROPS(3),
    RULE_PROPS(4), RULE_PROPS(5), RULE_PROPS(6), RULE_PROPS(7),
    { 0 }
};

static const ObjectClass simple_class = {
    .name = TYPE_AUTHZ_SIMPLE,
    .desc = "allows one identity (tls-authz=ID of migration)",
    .instance_size = sizeof(AuthzSimple),
    .props = simple_props,
    .user_creatable = true,
    .realize = simple_realize,
};

static const ObjectClass list_class = {
    .name = TYPE_AUTHZ_LIST,
    .desc = "allows or denies identities by a list of rules "
            "(tls-authz=ID of migration)",
    .instance_size = sizeof(AuthzList),
    .props = list_props,
    .user_creatable = true,
    .realize = list_realize,
};

static void authz_register_types(void)
{
    type_register(&simple_class);
    type_register(&list_class);
}
type_init(authz_register_types)

static bool list_allows(AuthzList *a, const char *identity)
{
    for (unsigned i = 0; i < AUTHZ_LIST_MAX_RULES; i++) {
        AuthzRule *r = &a->rules[i];
        bool match;

        if (!r->match) {
            continue;
        }
        match = !strcmp(r->format, "glob") ? !fnmatch(r->match, identity, 0)
                                           : !strcmp(r->match, identity);
        if (match) {
            return !strcmp(r->policy, "allow");
        }
    }
    return !strcmp(a->policy, "allow");
}

bool authz_is_allowed(const char *id, const char *identity, Error **errp)
{
    Object *obj = object_child(object_get_container("/objects"), id);
    bool ok;

    if (obj && object_is_type(obj, TYPE_AUTHZ_SIMPLE)) {
        ok = !strcmp(((AuthzSimple *)obj)->identity, identity);
    } else if (obj && object_is_type(obj, TYPE_AUTHZ_LIST)) {
        ok = list_allows((AuthzList *)obj, identity);
    } else {
        error_setg(errp, "authorization object '%s' does not exist (create "
                   "it with -object authz-simple,id=%s,identity=...)", id, id);
        return false;
    }
    if (!ok) {
        g_autofree char *shown = qemu_escape_bytes(identity,
                                                   strlen(identity));

        error_setg(errp, "the client '%s' is not authorised by '%s'", shown,
                   id);
    }
    return ok;
}
