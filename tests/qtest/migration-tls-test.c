/*
 * TLS on every migration channel: x509 and PSK handshakes that succeed
 * (main stream, return path, multifd), and each way one must fail: a
 * CA the client does not trust, a host name the certificate does not
 * show, a client identity tls-authz refuses, a plain-text peer on either
 * side.  Each failure names the problem and leaves the source running.
 * What TLS cannot carry (file:, mapped-ram) is refused up front.
 */
#include "qemu/osdep.h"
#include "migration/framework.h"
#include "migration/tls-certs.h"

static char *certs;

/* A source whose -object tls-creds-x509 reads @dir (under certs). */
static QTestState *start_src(const char *creds_obj)
{
    return mig_start_vm(creds_obj);
}

static char *x509(const char *id, const char *sub, const char *endpoint,
                  const char *extra)
{
    return g_strdup_printf("-object tls-creds-x509,id=%s,dir=%s/%s,"
                           "endpoint=%s%s", id, certs, sub, endpoint,
                           extra ? extra : "");
}

static void set_str(QTestState *s, const char *name, const char *value)
{
    qtest_qmp_assert_ok(s, "{\"execute\": \"migrate-set-parameters\", "
                        "\"arguments\": {\"%s\": \"%s\"}}", name, value);
}

static char *listen_tcp(QTestState *dst)
{
    g_autoptr(JsonNode) q = NULL;
    JsonObject *a;

    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"tcp:127.0.0.1:0\", "
                        "\"exit-on-error\": false}}");
    q = mig_query(dst);
    a = json_array_get_object_element(
        json_object_get_array_member(qtest_obj(q), "socket-address"), 0);
    return g_strdup_printf("tcp:127.0.0.1:%s",
                           json_object_get_string_member(a, "port"));
}

typedef struct TLSCase {
    const char *src_dir;        /* under certs; NULL: no TLS on the source */
    const char *dst_dir;        /* NULL: no TLS on the destination */
    bool psk;
    const char *hostname;       /* tls-hostname; NULL: the tcp host */
    const char *authz;          /* the destination's -object, or NULL */
    bool multifd;
    bool return_path;
    /* NULL: success; else a piece of each failing side's error */
    const char *src_error;
    const char *dst_error;
} TLSCase;

static char *creds_args(const TLSCase *c, const char *dir, bool server)
{
    const char *endpoint = server ? "server" : "client";

    if (!dir) {
        return g_strdup("");
    }
    if (c->psk) {
        return g_strdup_printf("-object tls-creds-psk,id=tls0,dir=%s/%s,"
                               "endpoint=%s", certs, dir, endpoint);
    }
    return x509("tls0", dir, endpoint, NULL);
}

static void run_case(gconstpointer opaque)
{
    const TLSCase *c = opaque;
    g_autofree char *src_creds = creds_args(c, c->src_dir, false);
    g_autofree char *dst_creds = creds_args(c, c->dst_dir, true);
    g_autofree char *dst_args = g_strdup_printf("%s %s", dst_creds,
                                                c->authz ? c->authz : "");
    g_autoptr(QTestState) src = start_src(src_creds);
    g_autoptr(QTestState) dst = mig_start_dst("defer", dst_args);
    g_autofree char *uri = NULL;

    if (c->src_dir) {
        set_str(src, "tls-creds", "tls0");
    }
    if (c->dst_dir) {
        set_str(dst, "tls-creds", "tls0");
    }
    if (c->hostname) {
        set_str(src, "tls-hostname", c->hostname);
    }
    if (c->authz) {
        set_str(dst, "tls-authz", "authz0");
    }
    if (c->multifd) {
        mig_set_cap(src, "multifd", true);
        mig_set_cap(dst, "multifd", true);
        mig_set_param(src, "multifd-channels", 3);
        mig_set_param(dst, "multifd-channels", 3);
    }
    if (c->return_path) {
        mig_set_cap(src, "return-path", true);
        mig_set_cap(dst, "return-path", true);
    }
    mig_set_param(src, "x-channel-timeout", 5000);
    uri = listen_tcp(dst);
    mig_set_fast(src);
    mig_wait_guest_progress(src, 8 * MiB);
    mig_migrate(src, uri);
    if (!c->src_error) {
        mig_check_success(src, dst);
        return;
    }
    {
        g_autofree char *desc = mig_wait_failed(src, 30000);

        g_test_message("source: %s", desc);
        g_assert_nonnull(strstr(desc, c->src_error));
    }
    if (c->dst_error) {
        g_autofree char *desc = mig_wait_failed(dst, 30000);

        g_test_message("destination: %s", desc);
        g_assert_nonnull(strstr(desc, c->dst_error));
    }
    /* Nothing is lost: the source runs its guest as before. */
    mig_assert_runstate(src, "running");
    mig_wait_guest_progress(src, 8 * MiB);
    mig_assert_guest_ok(src);
}

static const TLSCase x509_ok = {
    .src_dir = "client", .dst_dir = "server", .hostname = TLS_TEST_HOSTNAME,
};
static const TLSCase x509_rp_multifd = {
    .src_dir = "client", .dst_dir = "server", .hostname = TLS_TEST_HOSTNAME,
    .multifd = true, .return_path = true,
};
static const TLSCase x509_authz_ok = {
    .src_dir = "client", .dst_dir = "server", .hostname = TLS_TEST_HOSTNAME,
    .authz = "-object authz-simple,id=authz0,identity=" TLS_TEST_CLIENT_DN_OPT,
};
static const TLSCase x509_authz_list_ok = {
    .src_dir = "client", .dst_dir = "server", .hostname = TLS_TEST_HOSTNAME,
    .authz = "-object authz-list,id=authz0,policy=deny,"
             "rules.0.match=CN=evil*,rules.0.policy=deny,rules.0.format=glob,"
             "rules.1.match=CN=*.vmig.test*,rules.1.policy=allow,"
             "rules.1.format=glob",
};
static const TLSCase psk_ok = {
    .src_dir = "psk", .dst_dir = "psk", .psk = true, .multifd = true,
};
static const TLSCase wrong_ca = {
    .src_dir = "client-other-ca", .dst_dir = "server",
    .hostname = TLS_TEST_HOSTNAME,
    .src_error = "the server's certificate was refused",
    .dst_error = "TLS handshake failed",
};
static const TLSCase wrong_hostname = {
    .src_dir = "client", .dst_dir = "server", .hostname = "other.vmig.test",
    .src_error = "the server's certificate was refused",
    .dst_error = "TLS handshake failed",
};
static const TLSCase no_hostname = {
    /* 127.0.0.1 is not the name the certificate shows. */
    .src_dir = "client", .dst_dir = "server",
    .src_error = "the server's certificate was refused",
};
static const TLSCase authz_refused = {
    .src_dir = "client", .dst_dir = "server", .hostname = TLS_TEST_HOSTNAME,
    .authz = "-object authz-simple,id=authz0,identity=CN=someone-else",
    .src_error = "",
    .dst_error = "is not authorised by 'authz0'",
};
static const TLSCase plain_client = {
    .dst_dir = "server",
    .src_error = "",
    .dst_error = "TLS handshake failed",
};
static const TLSCase plain_server = {
    .src_dir = "client", .hostname = TLS_TEST_HOSTNAME,
    .src_error = "TLS handshake failed",
    .dst_error = "the source speaks TLS, set tls-creds here too",
};

/* postcopy-ram with preempt: the page channel is encrypted too. */
static void test_postcopy_preempt(void)
{
    static const char *const done[] = { "completed", NULL };
    g_autofree char *src_creds = x509("tls0", "client", "client", NULL);
    g_autofree char *dst_creds = x509("tls0", "server", "server", NULL);
    g_autofree char *src_args = g_strdup_printf("%s %s", MIG_TEST_BUSY_GUEST,
                                                src_creds);
    g_autofree char *dst_args = g_strdup_printf("%s %s", MIG_TEST_BUSY_GUEST,
                                                dst_creds);
    g_autoptr(QTestState) src = mig_start_vm(src_args);
    g_autoptr(QTestState) dst = mig_start_dst("defer", dst_args);
    g_autofree char *uri = NULL, *st = NULL;
    g_autoptr(JsonNode) q = NULL;

    set_str(src, "tls-creds", "tls0");
    set_str(src, "tls-hostname", TLS_TEST_HOSTNAME);
    set_str(dst, "tls-creds", "tls0");
    for (int i = 0; i < 2; i++) {
        QTestState *s = i ? dst : src;

        mig_set_cap(s, "return-path", true);
        mig_set_cap(s, "postcopy-ram", true);
        mig_set_cap(s, "postcopy-preempt", true);
    }
    uri = listen_tcp(dst);
    mig_wait_guest_progress(src, 64 * MiB);
    mig_migrate(src, uri);
    mig_wait_sync_count(src, 2, 60000);
    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate-start-postcopy\"}");
    st = mig_wait_status(src, done, -1);
    q = mig_query(src);
    g_assert_cmpint(json_object_get_int_member(
                        json_object_get_object_member(qtest_obj(q), "ram"),
                        "postcopy-bytes"), >, 0);
    mig_check_success(src, dst);
}

static void test_refused(void)
{
    g_autofree char *creds = x509("tls0", "client", "client", NULL);
    g_autoptr(QTestState) src = start_src(creds);
    g_autofree char *file = qtest_tmp_path("tls", "mig");
    g_autofree char *uri = g_strdup_printf("file:%s", file);
    g_autofree char *err = NULL;

    set_str(src, "tls-creds", "tls0");
    err = mig_migrate_expect_error(src, uri);
    g_assert_nonnull(strstr(err, "TLS needs a connection both ways"));
    g_free(err);
    err = mig_migrate_expect_error(src, "exec:cat >/dev/null");
    g_assert_nonnull(strstr(err, "exec: is no socket"));
    g_free(err);
    mig_set_cap(src, "mapped-ram", true);
    err = mig_migrate_expect_error(src, uri);
    g_assert_nonnull(strstr(err, "Cannot use TLS with mapped-ram"));
    mig_set_cap(src, "mapped-ram", false);
    /* Credentials that do not exist, or are for the other endpoint. */
    set_str(src, "tls-creds", "nope");
    {
        g_autofree char *u = mig_sock_uri();
        g_autoptr(QTestState) dst = mig_start_dst(u, "");
        g_autofree char *desc = NULL;

        mig_migrate(src, u);
        desc = mig_wait_failed(src, 30000);
        g_assert_nonnull(strstr(desc, "TLS credentials 'nope' do not exist"));
    }
    mig_assert_error(src, "migrate-set-parameters", "{\"tls-creds\": 5}",
                     "Invalid parameter type for 'tls-creds', expected: "
                     "StrOrNull");
    /* null resets to "", as in QEMU. */
    qtest_qmp_assert_ok(src, "{\"execute\": \"migrate-set-parameters\", "
                        "\"arguments\": {\"tls-creds\": null}}");
    {
        g_autoptr(JsonNode) r = qtest_qmp_assert_success(
            src, "{\"execute\": \"query-migrate-parameters\"}");

        g_assert_cmpstr(qtest_get_str(r, "tls-creds"), ==, "");
    }
}

static void test_bad_objects(void)
{
    static const struct {
        const char *args;
        const char *error;
    } cases[] = {
        { "-object tls-creds-x509,id=t,dir=/nonexistent,endpoint=server",
          "cannot load the CA certificate" },
        { "-object tls-creds-x509,id=t,dir=/tmp,endpoint=both",
          "endpoint must be 'client' or 'server'" },
        { "-object tls-creds-psk,id=t,dir=/nonexistent",
          "keys.psk" },
        { "-object authz-simple,id=a", "property 'identity' is required" },
        { "-object authz-list,id=a,policy=maybe", "policy must be" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *err = NULL;
        int status = qtest_run(cases[i].args, NULL, &err);

        g_assert_cmpint(status, !=, 0);
        if (!strstr(err, cases[i].error)) {
            g_error("'%s' printed '%s', not '%s'", cases[i].args, err,
                    cases[i].error);
        }
    }
}

int main(int argc, char **argv)
{
    g_autoptr(GError) gerr = NULL;
    int ret;

    g_test_init(&argc, &argv, NULL);
    certs = g_dir_make_tmp("vmig-tls-XXXXXX", &gerr);
    g_assert_nonnull(certs);
    tls_test_certs(certs);
    g_test_add_data_func("/migration/tls/x509", &x509_ok, run_case);
    g_test_add_data_func("/migration/tls/x509-return-path-multifd",
                         &x509_rp_multifd, run_case);
    g_test_add_data_func("/migration/tls/authz-simple", &x509_authz_ok,
                         run_case);
    g_test_add_data_func("/migration/tls/authz-list", &x509_authz_list_ok,
                         run_case);
    g_test_add_data_func("/migration/tls/psk-multifd", &psk_ok, run_case);
    g_test_add_data_func("/migration/tls/wrong-ca", &wrong_ca, run_case);
    g_test_add_data_func("/migration/tls/wrong-hostname", &wrong_hostname,
                         run_case);
    g_test_add_data_func("/migration/tls/no-hostname", &no_hostname,
                         run_case);
    g_test_add_data_func("/migration/tls/authz-refused", &authz_refused,
                         run_case);
    g_test_add_data_func("/migration/tls/plain-client", &plain_client,
                         run_case);
    g_test_add_data_func("/migration/tls/plain-server", &plain_server,
                         run_case);
    g_test_add_func("/migration/tls/postcopy-preempt", test_postcopy_preempt);
    g_test_add_func("/migration/tls/refused", test_refused);
    g_test_add_func("/migration/tls/bad-objects", test_bad_objects);
    ret = g_test_run();
    {
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", certs);

        if (system(cmd) != 0) {
            g_printerr("could not remove %s\n", certs);
        }
    }
    g_free(certs);
    return ret;
}
