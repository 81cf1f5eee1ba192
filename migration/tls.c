/*
 * TLS on migration channels: the parameters tls-creds, tls-hostname and
 * tls-authz decide, each side reading its own when a channel is made.
 * Every socket channel of a migration (main stream, return path, multifd
 * channels) is wrapped; the return path shares its socket's session.
 */
#include "qemu/osdep.h"
#include "crypto/tls.h"
#include "migration/channel.h"
#include "migration/options.h"
#include "migration/tls.h"

bool migration_tls_check_transport(const MigrationAddress *addr,
                                   Error **errp)
{
    g_autofree char *creds = migrate_tls_param(MIGRATE_TLS_CREDS);

    if (!creds) {
        return true;
    }
    if (migrate_mapped_ram()) {
        error_setg(errp, "Cannot use TLS with mapped-ram");
        return false;
    }
    if (addr->type == MIGRATION_ADDRESS_FILE ||
        addr->type == MIGRATION_ADDRESS_EXEC) {
        error_setg(errp, "tls-creds is set, but %s: is no socket: TLS "
                   "needs a connection both ways",
                   migration_address_type_name(addr->type));
        return false;
    }
    return true;
}

static bool tls_wrap(MigChannel *ch, bool server, const char *hostname,
                     Error **errp)
{
    g_autofree char *creds_id = migrate_tls_param(MIGRATE_TLS_CREDS);
    g_autofree char *authz = migrate_tls_param(MIGRATE_TLS_AUTHZ);
    TLSCreds *creds;
    TLSSession *s;

    if (!creds_id) {
        return true;
    }
    if (!ch->is_socket) {
        error_setg(errp, "%s: tls-creds is set, but this channel is no "
                   "socket", ch->desc);
        return false;
    }
    creds = tls_creds_find(creds_id, server, errp);
    if (!creds) {
        return false;
    }
    s = tls_session_new(creds, server, ch->fd, hostname, authz, errp);
    if (!s) {
        return false;
    }
    /* The channel owns the session from here, also on failure. */
    if (!mig_channel_tls_handshake(ch, s, errp)) {
        return false;
    }
    return true;
}

bool migration_tls_client(MigChannel *ch, const MigrationAddress *addr,
                          Error **errp)
{
    g_autofree char *hostname = migrate_tls_param(MIGRATE_TLS_HOSTNAME);

    if (!hostname && addr->type == MIGRATION_ADDRESS_TCP) {
        hostname = g_strdup(addr->host);
    }
    return tls_wrap(ch, false, hostname, errp);
}

bool migration_tls_server(MigChannel *ch, Error **errp)
{
    return tls_wrap(ch, true, NULL, errp);
}
