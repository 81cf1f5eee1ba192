/*
 * TLS on migration channels (migration/tls.c).  With the parameter
 * tls-creds set, every socket channel is wrapped right after it is made:
 * the source as TLS client, checking the destination's certificate
 * against tls-hostname (else the host of a tcp: address), the destination
 * as TLS server, checking the source's identity with tls-authz.  Without
 * it, these do nothing.
 */
#ifndef MIGRATION_TLS_H
#define MIGRATION_TLS_H

#include "migration/channel.h"

/* Refuse what TLS cannot carry (file:, exec:, mapped-ram), as QEMU does. */
bool migration_tls_check_transport(const MigrationAddress *addr,
                                   Error **errp);
/* Source: the handshake on a new channel to @addr. */
bool migration_tls_client(MigChannel *ch, const MigrationAddress *addr,
                          Error **errp);
/* Destination: the handshake on an accepted channel. */
bool migration_tls_server(MigChannel *ch, Error **errp);

#endif
