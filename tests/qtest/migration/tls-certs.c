/*
 * Certificates for the TLS tests, made with GnuTLS.  See tls-certs.h.
 */
#include "qemu/osdep.h"
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include "migration/tls-certs.h"

#define CHECK(call) \
    do { \
        int ret_ = (call); \
        if (ret_ < 0) { \
            g_error("%s: %s", #call, gnutls_strerror(ret_)); \
        } \
    } while (0)

typedef struct Issuer {
    gnutls_x509_crt_t crt;
    gnutls_x509_privkey_t key;
} Issuer;

static gnutls_x509_privkey_t new_key(void)
{
    gnutls_x509_privkey_t key;

    CHECK(gnutls_x509_privkey_init(&key));
    CHECK(gnutls_x509_privkey_generate(
              key, GNUTLS_PK_ECDSA,
              GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0));
    return key;
}

static void write_pem(const char *dir, const char *name,
                      const gnutls_datum_t *pem)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autoptr(GError) gerr = NULL;

    if (!g_file_set_contents(path, (const char *)pem->data, pem->size,
                             &gerr)) {
        g_error("%s", gerr->message);
    }
}

/*
 * A certificate for @key with common name @cn, valid from an hour ago for
 * a day, signed by @issuer (NULL: self-signed CA).
 */
static gnutls_x509_crt_t new_crt(gnutls_x509_privkey_t key, const char *cn,
                                 Issuer *issuer, unsigned serial,
                                 const char *dns, const char *purpose)
{
    gnutls_x509_crt_t crt;
    time_t now = time(NULL);
    unsigned char serial_be[4] = { serial >> 24, serial >> 16, serial >> 8,
                                   serial };

    CHECK(gnutls_x509_crt_init(&crt));
    CHECK(gnutls_x509_crt_set_version(crt, 3));
    CHECK(gnutls_x509_crt_set_key(crt, key));
    CHECK(gnutls_x509_crt_set_serial(crt, serial_be, sizeof(serial_be)));
    CHECK(gnutls_x509_crt_set_activation_time(crt, now - 3600));
    CHECK(gnutls_x509_crt_set_expiration_time(crt, now + 24 * 3600));
    CHECK(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME,
                                        0, "vmig-tests", strlen("vmig-tests")));
    CHECK(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
                                        cn, strlen(cn)));
    if (!issuer) {
        CHECK(gnutls_x509_crt_set_basic_constraints(crt, 1, -1));
        CHECK(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN |
                                            GNUTLS_KEY_CRL_SIGN));
        CHECK(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0));
        return crt;
    }
    CHECK(gnutls_x509_crt_set_basic_constraints(crt, 0, -1));
    CHECK(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE |
                                        GNUTLS_KEY_KEY_ENCIPHERMENT));
    CHECK(gnutls_x509_crt_set_key_purpose_oid(crt, purpose, 0));
    if (dns) {
        CHECK(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME,
                                                   dns, strlen(dns),
                                                   GNUTLS_FSAN_SET));
    }
    CHECK(gnutls_x509_crt_sign2(crt, issuer->crt, issuer->key,
                                GNUTLS_DIG_SHA256, 0));
    return crt;
}

static void export_crt(const char *dir, const char *name,
                       gnutls_x509_crt_t crt)
{
    gnutls_datum_t pem;

    CHECK(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem));
    write_pem(dir, name, &pem);
    gnutls_free(pem.data);
}

static void export_key(const char *dir, const char *name,
                       gnutls_x509_privkey_t key)
{
    gnutls_datum_t pem;

    CHECK(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &pem));
    write_pem(dir, name, &pem);
    gnutls_free(pem.data);
}

/* An end entity of @ca in @dir: ca-cert.pem, ROLE-cert.pem, ROLE-key.pem. */
static void make_entity(const char *dir, Issuer *ca, const char *role,
                        const char *cn, const char *dns, unsigned serial)
{
    gnutls_x509_privkey_t key = new_key();
    gnutls_x509_crt_t crt;
    g_autofree char *cert_name = g_strdup_printf("%s-cert.pem", role);
    g_autofree char *key_name = g_strdup_printf("%s-key.pem", role);

    g_assert_cmpint(g_mkdir_with_parents(dir, 0700), ==, 0);
    crt = new_crt(key, cn, ca, serial, dns,
                  !strcmp(role, "server") ? GNUTLS_KP_TLS_WWW_SERVER
                                          : GNUTLS_KP_TLS_WWW_CLIENT);
    export_crt(dir, "ca-cert.pem", ca->crt);
    export_crt(dir, cert_name, crt);
    export_key(dir, key_name, key);
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(key);
}

static void make_ca(Issuer *ca, const char *cn)
{
    ca->key = new_key();
    ca->crt = new_crt(ca->key, cn, NULL, 1, NULL, NULL);
}

static void free_ca(Issuer *ca)
{
    gnutls_x509_crt_deinit(ca->crt);
    gnutls_x509_privkey_deinit(ca->key);
}

void tls_test_certs(const char *dir)
{
    Issuer ca, other;
    g_autofree char *server = g_build_filename(dir, "server", NULL);
    g_autofree char *client = g_build_filename(dir, "client", NULL);
    g_autofree char *wrong = g_build_filename(dir, "client-other-ca", NULL);
    g_autofree char *psk_dir = g_build_filename(dir, "psk", NULL);
    g_autofree char *psk = g_build_filename(psk_dir, "keys.psk", NULL);

    make_ca(&ca, "vmig test CA");
    make_ca(&other, "another CA");
    make_entity(server, &ca, "server", TLS_TEST_HOSTNAME, TLS_TEST_HOSTNAME,
                2);
    make_entity(client, &ca, "client", TLS_TEST_CLIENT_CN, NULL, 3);
    make_entity(wrong, &other, "client", TLS_TEST_CLIENT_CN, NULL, 4);
    g_assert_cmpint(g_mkdir_with_parents(psk_dir, 0700), ==, 0);
    g_assert_true(g_file_set_contents(
        psk, "qemu:9d6b3b1c0e5f4a2d8c7e6f5a4b3c2d1e\n"
             "other:00112233445566778899aabbccddeeff\n", -1, NULL));
    free_ca(&ca);
    free_ca(&other);
}
