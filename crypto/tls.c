/*
 * TLS credentials and sessions with GnuTLS.  See include/crypto/tls.h.
 */
#include "qemu/osdep.h"
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include "qom/object.h"
#include "crypto/authz.h"
#include "crypto/tls.h"

typedef enum TLSCredsKind { TLS_CREDS_X509, TLS_CREDS_PSK } TLSCredsKind;

struct TLSCreds {
    Object parent;
    /* properties */
    char *dir;
    char *endpoint;             /* "client" or "server" */
    bool verify_peer;           /* x509 */
    char *priority;
    char *username;             /* psk client */
    /* loaded at realize */
    TLSCredsKind kind;
    bool server;
    gnutls_certificate_credentials_t x509;
    gnutls_psk_client_credentials_t psk_client;
    gnutls_psk_server_credentials_t psk_server;
    GHashTable *psk_keys;       /* username -> gnutls_datum_t *, server */
};

static void tls_global_init(void)
{
    static gsize done;

    if (g_once_init_enter(&done)) {
        /* GnuTLS >= 3.3 initialises itself; this only checks the library. */
        gnutls_global_init();
        g_once_init_leave(&done, 1);
    }
}

static char *creds_file(TLSCreds *c, const char *name)
{
    return g_build_filename(c->dir, name, NULL);
}

/* Fail with GnuTLS's reason and the file. */
static bool gnutls_ok(int ret, const char *what, const char *file,
                      Error **errp)
{
    if (ret < 0) {
        error_setg(errp, "%s '%s': %s", what, file, gnutls_strerror(ret));
        return false;
    }
    return true;
}

static bool x509_load(TLSCreds *c, Object *obj, Error **errp)
{
    const char *role = c->server ? "server" : "client";
    g_autofree char *ca = creds_file(c, "ca-cert.pem");
    g_autofree char *crl = creds_file(c, "ca-crl.pem");
    g_autofree char *cert = g_strdup_printf("%s/%s-cert.pem", c->dir, role);
    g_autofree char *key = g_strdup_printf("%s/%s-key.pem", c->dir, role);
    bool need_ca = c->verify_peer;
    int ret;

    ret = gnutls_certificate_allocate_credentials(&c->x509);
    if (ret < 0) {
        error_setg(errp, "tls-creds-x509 '%s': %s", obj->name,
                   gnutls_strerror(ret));
        return false;
    }
    if (g_file_test(ca, G_FILE_TEST_EXISTS) || need_ca) {
        ret = gnutls_certificate_set_x509_trust_file(c->x509, ca,
                                                     GNUTLS_X509_FMT_PEM);
        if (!gnutls_ok(ret, "cannot load the CA certificate", ca, errp)) {
            return false;
        }
    }
    if (g_file_test(crl, G_FILE_TEST_EXISTS)) {
        ret = gnutls_certificate_set_x509_crl_file(c->x509, crl,
                                                   GNUTLS_X509_FMT_PEM);
        if (!gnutls_ok(ret, "cannot load the CRL", crl, errp)) {
            return false;
        }
    }
    /* A server always shows a certificate; a client when it has one. */
    if (c->server || g_file_test(cert, G_FILE_TEST_EXISTS)) {
        ret = gnutls_certificate_set_x509_key_file(c->x509, cert, key,
                                                   GNUTLS_X509_FMT_PEM);
        if (!gnutls_ok(ret, "cannot load the certificate and key", cert,
                       errp)) {
            return false;
        }
    }
    return true;
}

/* "username:hexkey" lines; the key of @want, or every key (server). */
static bool psk_load(TLSCreds *c, Object *obj, Error **errp)
{
    g_autofree char *path = creds_file(c, "keys.psk");
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    g_autoptr(GError) gerr = NULL;
    const char *user = c->username ? c->username : "qemu";
    bool found = false;
    int ret;

    if (!g_file_get_contents(path, &text, NULL, &gerr)) {
        error_setg(errp, "tls-creds-psk '%s': %s", obj->name, gerr->message);
        return false;
    }
    if (c->server) {
        ret = gnutls_psk_allocate_server_credentials(&c->psk_server);
        c->psk_keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                            g_free);
    } else {
        ret = gnutls_psk_allocate_client_credentials(&c->psk_client);
    }
    if (ret < 0) {
        error_setg(errp, "tls-creds-psk '%s': %s", obj->name,
                   gnutls_strerror(ret));
        return false;
    }
    lines = g_strsplit(text, "\n", -1);
    for (unsigned i = 0; lines[i]; i++) {
        char *line = g_strstrip(lines[i]);
        char *colon = strchr(line, ':');

        if (!*line) {
            continue;
        }
        if (!colon || colon == line || !colon[1] || strlen(colon + 1) % 2 ||
            strspn(colon + 1, "0123456789abcdefABCDEF") !=
                strlen(colon + 1)) {
            error_setg(errp, "tls-creds-psk '%s': %s line %u is not "
                       "'username:hexkey'", obj->name, path, i + 1);
            return false;
        }
        *colon = '\0';
        if (c->server) {
            g_hash_table_replace(c->psk_keys, g_strdup(line),
                                 g_strdup(colon + 1));
            found = true;
        } else if (!strcmp(line, user)) {
            gnutls_datum_t key = {
                .data = (unsigned char *)colon + 1,
                .size = strlen(colon + 1),
            };

            ret = gnutls_psk_set_client_credentials(c->psk_client, user, &key,
                                                    GNUTLS_PSK_KEY_HEX);
            if (ret < 0) {
                error_setg(errp, "tls-creds-psk '%s': the key of '%s': %s",
                           obj->name, user, gnutls_strerror(ret));
                return false;
            }
            found = true;
        }
    }
    if (!found) {
        error_setg(errp, "tls-creds-psk '%s': %s has %s", obj->name, path,
                   c->server ? "no key" : "no key for the username");
        if (!c->server) {
            error_append_hint(errp, "username is '%s'\n", user);
        }
        return false;
    }
    return true;
}

static int psk_server_lookup(gnutls_session_t session, const char *username,
                             gnutls_datum_t *key)
{
    TLSCreds *c = gnutls_session_get_ptr(session);
    const char *hex = g_hash_table_lookup(c->psk_keys, username);
    size_t size;

    if (!hex) {
        return -1;
    }
    size = strlen(hex) / 2;
    key->data = gnutls_malloc(size);
    if (!key->data) {
        return -1;
    }
    for (size_t i = 0; i < size; i++) {
        key->data[i] = g_ascii_xdigit_value(hex[2 * i]) << 4 |
                       g_ascii_xdigit_value(hex[2 * i + 1]);
    }
    key->size = size;
    return 0;
}

static bool creds_realize(Object *obj, TLSCredsKind kind, Error **errp)
{
    TLSCreds *c = (TLSCreds *)obj;

    tls_global_init();
    c->kind = kind;
    if (!c->dir) {
        error_setg(errp, "%s '%s': property 'dir' is required",
                   object_type(obj), obj->name);
        return false;
    }
    if (!strcmp(c->endpoint, "server")) {
        c->server = true;
    } else if (strcmp(c->endpoint, "client")) {
        error_setg(errp, "%s '%s': endpoint must be 'client' or 'server', "
                   "not '%s'", object_type(obj), obj->name, c->endpoint);
        return false;
    }
    if (kind == TLS_CREDS_PSK && c->server && c->username) {
        error_setg(errp, "tls-creds-psk '%s': username is for a client "
                   "endpoint", obj->name);
        return false;
    }
    if (c->priority) {
        const char *err_pos = NULL;
        gnutls_priority_t prio;

        if (gnutls_priority_init(&prio, c->priority, &err_pos) < 0) {
            error_setg(errp, "%s '%s': bad priority string at '%s'",
                       object_type(obj), obj->name, err_pos ? err_pos : "");
            return false;
        }
        gnutls_priority_deinit(prio);
    }
    return kind == TLS_CREDS_X509 ? x509_load(c, obj, errp)
                                  : psk_load(c, obj, errp);
}

static bool x509_realize(Object *obj, Error **errp)
{
    return creds_realize(obj, TLS_CREDS_X509, errp);
}

static bool psk_realize(Object *obj, Error **errp)
{
    return creds_realize(obj, TLS_CREDS_PSK, errp);
}

static void creds_finalize(Object *obj)
{
    TLSCreds *c = (TLSCreds *)obj;

    if (c->x509) {
        gnutls_certificate_free_credentials(c->x509);
    }
    if (c->psk_client) {
        gnutls_psk_free_client_credentials(c->psk_client);
    }
    if (c->psk_server) {
        gnutls_psk_free_server_credentials(c->psk_server);
    }
    if (c->psk_keys) {
        g_hash_table_destroy(c->psk_keys);
    }
}

#define CREDS_COMMON_PROPS \
    DEFINE_PROP("dir", PROP_TYPE_STR, TLSCreds, dir, NULL, \
                "the directory of the credential files"), \
    DEFINE_PROP("endpoint", PROP_TYPE_STR, TLSCreds, endpoint, "client", \
                "client (the migration source) or server (destination)"), \
    DEFINE_PROP("priority", PROP_TYPE_STR, TLSCreds, priority, NULL, \
                "a GnuTLS priority string (default: the system's)")

static const Property x509_props[] = {
    CREDS_COMMON_PROPS,
    DEFINE_PROP("verify-peer", PROP_TYPE_BOOL, TLSCreds, verify_peer, "on",
                "check the peer's certificate (and a server's host name)"),
    { 0 }
};

static const Property psk_props[] = {
    CREDS_COMMON_PROPS,
    DEFINE_PROP("username", PROP_TYPE_STR, TLSCreds, username, NULL,
                "the client's username in keys.psk (default qemu)"),
    { 0 }
};

static const ObjectClass x509_class = {
    .name = TYPE_TLS_CREDS_X509,
    .desc = "TLS credentials from x509 certificates (tls-creds=ID of "
            "migration)",
    .instance_size = sizeof(TLSCreds),
    .props = x509_props,
    .user_creatable = true,
    .realize = x509_realize,
    .finalize = creds_finalize,
};

static const ObjectClass psk_class = {
    .name = TYPE_TLS_CREDS_PSK,
    .desc = "TLS credentials from pre-shared keys (tls-creds=ID of "
            "migration)",
    .instance_size = sizeof(TLSCreds),
    .props = psk_props,
    .user_creatable = true,
    .realize = psk_realize,
    .finalize = creds_finalize,
};

static void tls_register_types(void)
{
    type_register(&x509_class);
    type_register(&psk_class);
}
type_init(tls_register_types)

TLSCreds *tls_creds_find(const char *id, bool server, Error **errp)
{
    Object *obj = object_child(object_get_container("/objects"), id);
    TLSCreds *c;

    if (!obj || !(object_is_type(obj, TYPE_TLS_CREDS_X509) ||
                  object_is_type(obj, TYPE_TLS_CREDS_PSK))) {
        error_setg(errp, "TLS credentials '%s' do not exist (create them "
                   "with -object tls-creds-x509,id=%s,... or "
                   "tls-creds-psk)", id, id);
        return NULL;
    }
    c = (TLSCreds *)obj;
    if (c->server != server) {
        error_setg(errp, "TLS credentials '%s' are for a %s endpoint; this "
                   "side needs endpoint=%s", id, c->endpoint,
                   server ? "server" : "client");
        return NULL;
    }
    return c;
}

/* ---- sessions ---- */

struct TLSSession {
    int refs;                   /* atomic */
    int fd;                     /* a dup of the channel's socket */
    gnutls_session_t s;
    TLSCreds *creds;
    bool server;
    char *hostname;
    char *authz_id;
    char *peer;                 /* identity, after the handshake */
};

TLSSession *tls_session_new(TLSCreds *creds, bool server, int fd,
                            const char *hostname, const char *authz_id,
                            Error **errp)
{
    g_autofree TLSSession *ts = g_new0(TLSSession, 1);
    const char *err_pos = NULL;
    int ret;

    ret = gnutls_init(&ts->s, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                      GNUTLS_NONBLOCK);
    if (ret < 0) {
        error_setg(errp, "TLS: cannot start a session: %s",
                   gnutls_strerror(ret));
        return NULL;
    }
    ts->refs = 1;
    ts->creds = creds;
    ts->server = server;
    if (creds->priority) {
        ret = gnutls_priority_set_direct(ts->s, creds->priority, &err_pos);
    } else if (creds->kind == TLS_CREDS_PSK) {
        /* The defaults leave the PSK key exchanges out. */
        ret = gnutls_priority_set_direct(ts->s, "@SYSTEM:+ECDHE-PSK:+DHE-PSK:"
                                         "+PSK", &err_pos);
        if (ret < 0) {
            ret = gnutls_priority_set_direct(ts->s, "NORMAL:+ECDHE-PSK:"
                                             "+DHE-PSK:+PSK", &err_pos);
        }
    } else {
        ret = gnutls_set_default_priority(ts->s);
    }
    if (ret < 0) {
        goto fail;
    }
    if (creds->kind == TLS_CREDS_X509) {
        ret = gnutls_credentials_set(ts->s, GNUTLS_CRD_CERTIFICATE,
                                     creds->x509);
        if (ret < 0) {
            goto fail;
        }
        if (server && creds->verify_peer) {
            gnutls_certificate_server_set_request(ts->s, GNUTLS_CERT_REQUIRE);
            gnutls_session_set_verify_cert(ts->s, NULL, 0);
        } else if (!server && creds->verify_peer) {
            if (!hostname || !*hostname) {
                error_setg(errp, "TLS: no host name to check the server's "
                           "certificate against: set the migration "
                           "parameter tls-hostname");
                gnutls_deinit(ts->s);
                return NULL;
            }
            ret = gnutls_server_name_set(ts->s, GNUTLS_NAME_DNS, hostname,
                                         strlen(hostname));
            if (ret < 0) {
                goto fail;
            }
            gnutls_session_set_verify_cert(ts->s, hostname, 0);
        }
    } else if (server) {
        gnutls_psk_set_server_credentials_function(creds->psk_server,
                                                   psk_server_lookup);
        ret = gnutls_credentials_set(ts->s, GNUTLS_CRD_PSK,
                                     creds->psk_server);
    } else {
        ret = gnutls_credentials_set(ts->s, GNUTLS_CRD_PSK,
                                     creds->psk_client);
    }
    if (ret < 0) {
        goto fail;
    }
    gnutls_session_set_ptr(ts->s, creds);
    /* Its own fd on the socket: it lives as long as the last user. */
    ts->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (ts->fd < 0) {
        error_setg_errno(errp, errno, "TLS: cannot duplicate the socket");
        gnutls_deinit(ts->s);
        return NULL;
    }
    gnutls_transport_set_int(ts->s, ts->fd);
    ts->hostname = g_strdup(hostname);
    ts->authz_id = g_strdup(authz_id && *authz_id ? authz_id : NULL);
    return g_steal_pointer(&ts);

fail:
    error_setg(errp, "TLS: cannot set the session up: %s",
               gnutls_strerror(ret));
    gnutls_deinit(ts->s);
    return NULL;
}

void tls_session_ref(TLSSession *s)
{
    __atomic_fetch_add(&s->refs, 1, __ATOMIC_SEQ_CST);
}

void tls_session_unref(TLSSession *s)
{
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_SEQ_CST)) {
        return;
    }
    /* Non-blocking: a close_notify when there is room, nothing more. */
    gnutls_bye(s->s, GNUTLS_SHUT_WR);
    gnutls_deinit(s->s);
    close(s->fd);
    g_free(s->hostname);
    g_free(s->authz_id);
    g_free(s->peer);
    g_free(s);
}

/* The DN of the client's certificate, or its PSK username. */
static char *peer_identity(TLSSession *s)
{
    const gnutls_datum_t *certs;
    unsigned n = 0;
    gnutls_x509_crt_t crt;
    gnutls_datum_t dn = { 0 };
    char *id = NULL;

    if (s->creds->kind == TLS_CREDS_PSK) {
        const char *user = gnutls_psk_server_get_username(s->s);

        return g_strdup(user ? user : "");
    }
    certs = gnutls_certificate_get_peers(s->s, &n);
    if (!certs || !n || gnutls_x509_crt_init(&crt) < 0) {
        return NULL;
    }
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0 &&
        gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
        id = g_strndup((const char *)dn.data, dn.size);
        gnutls_free(dn.data);
    }
    gnutls_x509_crt_deinit(crt);
    return id;
}

static void handshake_error(TLSSession *s, int ret, Error **errp)
{
    if (ret == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
        unsigned status = gnutls_session_get_verify_cert_status(s->s);
        gnutls_datum_t out = { 0 };

        gnutls_certificate_verification_status_print(
            status, GNUTLS_CRT_X509, &out, 0);
        error_setg(errp, "TLS handshake failed: the %s's certificate was "
                   "refused: %s", s->server ? "client" : "server",
                   out.data ? (const char *)out.data : "?");
        gnutls_free(out.data);
        return;
    }
    error_setg(errp, "TLS handshake failed: %s", gnutls_strerror(ret));
    if (ret == GNUTLS_E_UNEXPECTED_PACKET_LENGTH ||
        ret == GNUTLS_E_UNSUPPORTED_VERSION_PACKET) {
        error_append_hint(errp, "is the peer speaking TLS?\n");
    }
}

int tls_session_handshake(TLSSession *s, bool *want_write, Error **errp)
{
    int ret = gnutls_handshake(s->s);

    if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
        *want_write = gnutls_record_get_direction(s->s) == 1;
        return 0;
    }
    if (ret < 0) {
        handshake_error(s, ret, errp);
        return -1;
    }
    if (s->server && s->creds->kind == TLS_CREDS_X509 &&
        !s->creds->verify_peer && s->authz_id) {
        error_setg(errp, "TLS: tls-authz needs the client's certificate: "
                   "set verify-peer=on on the server's credentials");
        return -1;
    }
    s->peer = peer_identity(s);
    if (s->server && s->authz_id &&
        !authz_is_allowed(s->authz_id, s->peer ? s->peer : "", errp)) {
        error_prepend(errp, "TLS: ");
        return -1;
    }
    return 1;
}

static ssize_t record_result(TLSSession *s, ssize_t ret, bool *want_write,
                             const char *what, Error **errp)
{
    if (ret >= 0) {
        return ret;
    }
    if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
        *want_write = gnutls_record_get_direction(s->s) == 1;
        return -2;
    }
    /* The stream has its own end marker: a bare close is an end too. */
    if (ret == GNUTLS_E_PREMATURE_TERMINATION) {
        return 0;
    }
    error_setg(errp, "TLS %s failed: %s", what, gnutls_strerror(ret));
    return -1;
}

ssize_t tls_session_recv(TLSSession *s, void *buf, size_t len,
                         bool *want_write, Error **errp)
{
    return record_result(s, gnutls_record_recv(s->s, buf, len), want_write,
                         "read", errp);
}

ssize_t tls_session_send(TLSSession *s, const void *buf, size_t len,
                         bool *want_write, Error **errp)
{
    return record_result(s, gnutls_record_send(s->s, buf, len), want_write,
                         "write", errp);
}

const char *tls_session_peer_identity(TLSSession *s)
{
    return s->peer;
}
