/*
 * Migration addresses: the URI forms users type after -incoming and in
 * the "uri" argument of migrate / migrate-incoming.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "migration/misc.h"

static const char *const address_type_names[MIGRATION_ADDRESS__MAX] = {
    [MIGRATION_ADDRESS_TCP] = "tcp",
    [MIGRATION_ADDRESS_UNIX] = "unix",
    [MIGRATION_ADDRESS_FD] = "fd",
    [MIGRATION_ADDRESS_EXEC] = "exec",
    [MIGRATION_ADDRESS_FILE] = "file",
    [MIGRATION_ADDRESS_DEFER] = "defer",
};

const char *migration_address_type_name(MigrationAddressType type)
{
    return type < MIGRATION_ADDRESS__MAX ? address_type_names[type] : "?";
}

void migration_address_clear(MigrationAddress *addr)
{
    g_free(addr->host);
    g_free(addr->port);
    g_free(addr->path);
    g_free(addr->fd_name);
    g_free(addr->command);
    memset(addr, 0, sizeof(*addr));
}

static bool parse_port(const char *uri, const char *str, char **port,
                       Error **errp)
{
    uint64_t value;

    if (!*str) {
        error_setg(errp, "migration address '%s': missing port", uri);
        return false;
    }
    for (const char *p = str; *p; p++) {
        if (!g_ascii_isdigit(*p)) {
            error_setg(errp, "migration address '%s': port '%s' is not a "
                       "decimal number", uri, str);
            return false;
        }
    }
    if (qemu_strtou64(str, &value) < 0 || value > 65535) {
        error_setg(errp, "migration address '%s': port '%s' is out of range "
                   "(0-65535)", uri, str);
        return false;
    }
    *port = g_strdup_printf("%" PRIu64, value);
    return true;
}

static bool parse_tcp(const char *uri, const char *rest,
                      MigrationAddress *addr, Error **errp)
{
    const char *colon;

    if (strchr(rest, ',')) {
        error_setg(errp, "migration address '%s': tcp takes no options",
                   uri);
        return false;
    }
    if (rest[0] == '[') {
        const char *close = strchr(rest, ']');

        if (!close || close[1] != ':') {
            error_setg(errp, "migration address '%s': expected [IPV6]:PORT",
                       uri);
            return false;
        }
        addr->host = g_strndup(rest + 1, close - rest - 1);
        colon = close + 1;
    } else {
        colon = strrchr(rest, ':');
        if (!colon) {
            error_setg(errp, "migration address '%s': expected tcp:HOST:PORT",
                       uri);
            return false;
        }
        addr->host = g_strndup(rest, colon - rest);
        if (strchr(addr->host, ':')) {
            error_setg(errp, "migration address '%s': write an IPv6 host "
                       "in brackets, as [%s]", uri, addr->host);
            return false;
        }
    }
    return parse_port(uri, colon + 1, &addr->port, errp);
}

static bool parse_file(const char *uri, const char *rest,
                       MigrationAddress *addr, Error **errp)
{
    const char *opt = g_strrstr(rest, ",offset=");
    const char *value;

    if (!opt) {
        if (!*rest) {
            error_setg(errp, "migration address '%s': missing file name", uri);
            return false;
        }
        addr->path = g_strdup(rest);
        return true;
    }
    value = opt + strlen(",offset=");
    if (opt == rest) {
        error_setg(errp, "migration address '%s': missing file name", uri);
        return false;
    }
    if (qemu_strtou64(value, &addr->offset) < 0 ||
        addr->offset > (uint64_t)INT64_MAX) {
        error_setg(errp, "migration address '%s': offset '%s' is not a "
                   "valid file offset", uri, value);
        return false;
    }
    addr->path = g_strndup(rest, opt - rest);
    return true;
}

bool migration_address_parse(const char *uri, MigrationAddress *addr,
                             Error **errp)
{
    const char *rest;
    bool ok = true;

    memset(addr, 0, sizeof(*addr));
    if (!uri || !*uri) {
        error_setg(errp, "empty migration address");
        return false;
    }
    if (!strcmp(uri, "defer")) {
        addr->type = MIGRATION_ADDRESS_DEFER;
        return true;
    }
    if ((rest = g_str_has_prefix(uri, "tcp:") ? uri + 4 : NULL)) {
        addr->type = MIGRATION_ADDRESS_TCP;
        ok = parse_tcp(uri, rest, addr, errp);
    } else if ((rest = g_str_has_prefix(uri, "unix:") ? uri + 5 : NULL)) {
        addr->type = MIGRATION_ADDRESS_UNIX;
        addr->path = g_strdup(rest);
        if (!*rest) {
            error_setg(errp, "migration address '%s': missing socket path",
                       uri);
            ok = false;
        }
    } else if ((rest = g_str_has_prefix(uri, "fd:") ? uri + 3 : NULL)) {
        addr->type = MIGRATION_ADDRESS_FD;
        addr->fd_name = g_strdup(rest);
        if (!*rest) {
            error_setg(errp, "migration address '%s': missing fd name", uri);
            ok = false;
        }
    } else if ((rest = g_str_has_prefix(uri, "exec:") ? uri + 5 : NULL)) {
        addr->type = MIGRATION_ADDRESS_EXEC;
        addr->command = g_strdup(rest);
        if (!*rest) {
            error_setg(errp, "migration address '%s': missing command", uri);
            ok = false;
        }
    } else if ((rest = g_str_has_prefix(uri, "file:") ? uri + 5 : NULL)) {
        addr->type = MIGRATION_ADDRESS_FILE;
        ok = parse_file(uri, rest, addr, errp);
    } else {
        error_setg(errp, "migration address '%s': unknown transport (expected "
                   "tcp:, unix:, fd:, exec:, file: or defer)", uri);
        return false;
    }
    if (!ok) {
        migration_address_clear(addr);
    }
    return ok;
}

char *migration_address_to_uri(const MigrationAddress *addr)
{
    switch (addr->type) {
    case MIGRATION_ADDRESS_TCP:
        if (strchr(addr->host, ':')) {
            return g_strdup_printf("tcp:[%s]:%s", addr->host, addr->port);
        }
        return g_strdup_printf("tcp:%s:%s", addr->host, addr->port);
    case MIGRATION_ADDRESS_UNIX:
        return g_strdup_printf("unix:%s", addr->path);
    case MIGRATION_ADDRESS_FD:
        return g_strdup_printf("fd:%s", addr->fd_name);
    case MIGRATION_ADDRESS_EXEC:
        return g_strdup_printf("exec:%s", addr->command);
    case MIGRATION_ADDRESS_FILE:
        if (addr->offset) {
            return g_strdup_printf("file:%s,offset=%" PRIu64, addr->path,
                                   addr->offset);
        }
        return g_strdup_printf("file:%s", addr->path);
    case MIGRATION_ADDRESS_DEFER:
    default:
        return g_strdup("defer");
    }
}
