/*
 * make-tls-certs DIR: the TLS tests' credentials (see
 * tests/qtest/migration/tls-certs.h), for benchmarks run by hand.
 */
#include "qemu/osdep.h"
#include "migration/tls-certs.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make-tls-certs DIR\n");
        return 2;
    }
    tls_test_certs(argv[1]);
    return 0;
}
