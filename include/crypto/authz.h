/*
 * Authorisation of a peer's identity (a TLS client's distinguished name
 * or PSK username), with QEMU's objects:
 *
 *   -object authz-simple,id=,identity=NAME      exactly NAME is allowed
 *   -object authz-list,id=,policy=allow|deny,
 *           rules.N.match=,rules.N.policy=allow|deny,
 *           rules.N.format=exact|glob            (N from 0 to 7)
 *
 * authz-list goes through its rules in order; the first whose match
 * fits decides, and policy (default deny) decides when none does.
 */
#ifndef CRYPTO_AUTHZ_H
#define CRYPTO_AUTHZ_H

#include "qemu/osdep.h"
#include "qemu/error.h"

#define TYPE_AUTHZ_SIMPLE "authz-simple"
#define TYPE_AUTHZ_LIST "authz-list"
#define AUTHZ_LIST_MAX_RULES 8

/* Whether the authz object @id lets @identity in; errp says why not. */
bool authz_is_allowed(const char *id, const char *identity, Error **errp);

#endif
