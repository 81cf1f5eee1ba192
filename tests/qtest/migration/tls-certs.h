/*
 * Credentials for the TLS tests, made fresh by each test program with
 * GnuTLS (no files in the tree, nothing that expires):
 *
 *   DIR/server            ca-cert.pem, server-cert.pem, server-key.pem
 *                         (CN and DNS name TLS_TEST_HOSTNAME)
 *   DIR/client            ca-cert.pem, client-cert.pem, client-key.pem
 *                         (CN TLS_TEST_CLIENT_CN), same CA
 *   DIR/client-other-ca   the same, from a CA the server does not know,
 *                         which also does not know the server's CA
 *   DIR/psk               keys.psk: users "qemu" and "other"
 */
#ifndef MIGRATION_TEST_TLS_CERTS_H
#define MIGRATION_TEST_TLS_CERTS_H

#define TLS_TEST_HOSTNAME "migration.vmig.test"
#define TLS_TEST_CLIENT_CN "source.vmig.test"
/*
 * The client's distinguished name, as tls-authz sees it, with its comma
 * doubled for a -object option.
 */
#define TLS_TEST_CLIENT_DN_OPT "CN=" TLS_TEST_CLIENT_CN ",,O=vmig-tests"

void tls_test_certs(const char *dir);

#endif
