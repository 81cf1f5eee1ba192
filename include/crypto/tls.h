/*
 * TLS with GnuTLS: the credential objects (-object tls-creds-x509 and
 * tls-creds-psk, with QEMU's properties and file names) and a session
 * over a non-blocking socket.
 *
 * tls-creds-x509,id=,dir=,endpoint=client|server,verify-peer=on|off,
 * priority=: in dir, ca-cert.pem (the CA that signed the peer; needed
 * when verifying it), server-cert.pem and server-key.pem (server),
 * client-cert.pem and client-key.pem (client; needed when the server
 * verifies its clients), ca-crl.pem (optional).  A client verifies the
 * server's chain and host name; a server with verify-peer=on requires a
 * client certificate and verifies its chain.
 *
 * tls-creds-psk,id=,dir=,endpoint=,username=: dir/keys.psk holds lines
 * "username:hexkey"; a client uses its username's key (default username
 * "qemu"), a server accepts any username in the file.
 *
 * Objects are created at start-up and never removed, so other threads
 * may use them without the BQL.
 */
#ifndef CRYPTO_TLS_H
#define CRYPTO_TLS_H

#include "qemu/osdep.h"
#include "qemu/error.h"

#define TYPE_TLS_CREDS_X509 "tls-creds-x509"
#define TYPE_TLS_CREDS_PSK "tls-creds-psk"

typedef struct TLSCreds TLSCreds;

/*
 * The credentials object @id, which must be for a @server (or client)
 * endpoint; NULL with errp set otherwise.
 */
TLSCreds *tls_creds_find(const char *id, bool server, Error **errp);

typedef struct TLSSession TLSSession;

/*
 * A session over @fd (non-blocking; the session keeps a dup of it).  A
 * client checks the server's certificate against @hostname (x509 with
 * verify-peer); a server checks the client's identity (its certificate's
 * distinguished name, or its PSK username) with the authz object
 * @authz_id, if any.
 */
TLSSession *tls_session_new(TLSCreds *creds, bool server, int fd,
                            const char *hostname, const char *authz_id,
                            Error **errp);
void tls_session_ref(TLSSession *s);
/* The last unref sends close_notify (best effort) and frees. */
void tls_session_unref(TLSSession *s);

/*
 * Handshake steps: 1 when done and the peer is accepted, 0 when it must
 * wait for the socket (*want_write says which way), -1 with errp set.
 */
int tls_session_handshake(TLSSession *s, bool *want_write, Error **errp);

/*
 * Record I/O after the handshake.  Returns the bytes moved (> 0), 0 at
 * the end of the stream (recv), -2 when the socket must be waited for
 * (*want_write says which way; call again with the same arguments), -1
 * with errp set.  One thread may send while another receives.
 */
ssize_t tls_session_recv(TLSSession *s, void *buf, size_t len,
                         bool *want_write, Error **errp);
ssize_t tls_session_send(TLSSession *s, const void *buf, size_t len,
                         bool *want_write, Error **errp);

/* The peer's identity once the handshake is done (DN or username). */
const char *tls_session_peer_identity(TLSSession *s);

#endif
