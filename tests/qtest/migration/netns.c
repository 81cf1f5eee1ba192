/*
 * Two hosts on one machine.  See netns.h.
 */
#include "qemu/osdep.h"
#include <signal.h>
#include "libqtest.h"
#include "migration/netns.h"

struct NetPair {
    char *ns[2];
    char *dev[2];
    uint64_t rate;              /* bytes/s, 0: unshaped */
};

static const char *const addrs[2] = { "198.18.0.1", "198.18.0.2" };

/* Run @argv; false with the command's stderr in *err when it fails. */
static bool run(const char *const *argv, char **err)
{
    g_autoptr(GError) gerr = NULL;
    g_autofree char *out = NULL, *errtext = NULL;
    int status = 0;

    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL,
                      NULL, &out, &errtext, &status, &gerr)) {
        *err = g_strdup(gerr->message);
        return false;
    }
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_autofree char *cmd = g_strjoinv(" ", (char **)argv);

        *err = g_strdup_printf("'%s': %s", cmd, g_strstrip(errtext));
        return false;
    }
    return true;
}

/* The same, failing the test. */
static void run_or_die(const char *const *argv)
{
    g_autofree char *err = NULL;

    if (!run(argv, &err)) {
        g_error("%s", err);
    }
}

/* Rates as tc writes them: "1gbit" is 10^9 bits/s. */
static uint64_t parse_rate(const char *rate)
{
    char *end;
    uint64_t n = g_ascii_strtoull(rate, &end, 10);

    if (!strcmp(end, "gbit")) {
        return n * 1000000000 / 8;
    }
    if (!strcmp(end, "mbit")) {
        return n * 1000000 / 8;
    }
    g_error("netpair: unknown rate '%s'", rate);
}

/*
 * Namespaces that a test which died left behind (its pid gone): the
 * names carry the pid.
 */
static void remove_stale(void)
{
    g_autoptr(GDir) dir = g_dir_open("/run/netns", 0, NULL);
    const char *name;

    while (dir && (name = g_dir_read_name(dir))) {
        unsigned pid;
        char side;

        if (sscanf(name, "vmig-t%u-%c", &pid, &side) == 2 &&
            kill(pid, 0) < 0 && errno == ESRCH) {
            const char *argv[] = { "ip", "netns", "del", name, NULL };
            g_autofree char *err = NULL;

            run(argv, &err);
        }
    }
}

NetPair *netpair_new(const char *rate)
{
    static unsigned counter;
    g_autoptr(NetPair) p = g_new0(NetPair, 1);
    g_autofree char *err = NULL;
    g_autofree char *ip = g_find_program_in_path("ip");
    g_autofree char *tc = g_find_program_in_path("tc");

    if (geteuid() != 0) {
        g_test_skip("network namespaces need root (CAP_SYS_ADMIN and "
                    "CAP_NET_ADMIN); run as root to test two hosts");
        return NULL;
    }
    if (!ip || !tc) {
        g_test_skip("'ip' and 'tc' (Debian's iproute2) are needed to make "
                    "two hosts");
        return NULL;
    }
    remove_stale();
    counter++;
    for (int i = 0; i < 2; i++) {
        p->ns[i] = g_strdup_printf("vmig-t%u-%c%u", (unsigned)getpid(),
                                   'a' + i, counter);
        p->dev[i] = g_strdup_printf("vm%c%u", 'a' + i, counter);
    }
    {
        const char *argv[] = { "ip", "netns", "add", p->ns[NET_A], NULL };

        if (!run(argv, &err)) {
            g_free(p->ns[NET_B]);
            p->ns[NET_B] = NULL;
            g_free(p->ns[NET_A]);
            p->ns[NET_A] = NULL;
            g_test_skip_printf("cannot make a network namespace: %s", err);
            return NULL;
        }
    }
    {
        const char *argv[] = { "ip", "netns", "add", p->ns[NET_B], NULL };

        run_or_die(argv);
    }
    {
        const char *argv[] = { "ip", "link", "add", p->dev[NET_A], "netns",
                               p->ns[NET_A], "type", "veth", "peer", "name",
                               p->dev[NET_B], "netns", p->ns[NET_B], NULL };

        if (!run(argv, &err)) {
            g_test_skip_printf("cannot make a veth pair: %s", err);
            return NULL;
        }
    }
    for (int i = 0; i < 2; i++) {
        g_autofree char *cidr = g_strdup_printf("%s/24", addrs[i]);
        const char *addr[] = { "ip", "-n", p->ns[i], "addr", "add", cidr,
                               "dev", p->dev[i], NULL };
        const char *up[] = { "ip", "-n", p->ns[i], "link", "set", p->dev[i],
                             "up", NULL };
        const char *lo[] = { "ip", "-n", p->ns[i], "link", "set", "lo", "up",
                             NULL };

        run_or_die(addr);
        run_or_die(up);
        run_or_die(lo);
    }
    if (rate) {
        p->rate = parse_rate(rate);
        for (int i = 0; i < 2; i++) {
            /*
             * A bucket of 1 ms at the rate, and at least two 64 KiB GSO
             * segments, or TBF drops whole segments; 50 ms of queue.
             */
            g_autofree char *burst = g_strdup_printf(
                "%" PRIu64, MAX(p->rate / 1000, 2 * 65536 + 4096));
            const char *argv[] = { "tc", "-n", p->ns[i], "qdisc", "add",
                                   "dev", p->dev[i], "root", "tbf", "rate",
                                   rate, "burst", burst, "latency", "50ms",
                                   NULL };

            if (!run(argv, &err)) {
                g_test_skip_printf("cannot shape the link with TBF: %s", err);
                return NULL;
            }
        }
    }
    return g_steal_pointer(&p);
}

void netpair_free(NetPair *p)
{
    if (!p) {
        return;
    }
    qtest_set_netns(NULL);
    for (int i = 0; i < 2; i++) {
        if (p->ns[i]) {
            /* The veth goes with its namespaces. */
            const char *argv[] = { "ip", "netns", "del", p->ns[i], NULL };
            g_autofree char *err = NULL;

            if (!run(argv, &err)) {
                g_printerr("netpair: %s\n", err);
            }
        }
        g_free(p->ns[i]);
        g_free(p->dev[i]);
    }
    g_free(p);
}

const char *netpair_ns(NetPair *p, int side)
{
    return p->ns[side];
}

const char *netpair_addr(NetPair *p, int side)
{
    return addrs[side];
}

char *netpair_uri(NetPair *p, int side, unsigned port)
{
    return g_strdup_printf("tcp:%s:%u", addrs[side], port);
}

uint64_t netpair_rate(NetPair *p)
{
    return p->rate;
}

void netpair_link(NetPair *p, bool up)
{
    /*
     * Down on NET_B's end only: NET_A then loses its carrier but keeps
     * its route, as with a pulled cable, so its packets are dropped, not
     * refused at once ("Network is unreachable").
     */
    const char *argv[] = { "ip", "-n", p->ns[NET_B], "link", "set",
                           p->dev[NET_B], up ? "up" : "down", NULL };

    run_or_die(argv);
    if (!up) {
        return;
    }
    /*
     * Back: forget the neighbours that failed to answer meanwhile (or
     * the first connect fails at once, "No route to host"), and wait
     * until both ends have their carrier.
     */
    for (int i = 0; i < 2; i++) {
        const char *flush[] = { "ip", "-n", p->ns[i], "neigh", "flush", "dev",
                                p->dev[i], NULL };

        run_or_die(flush);
    }
    for (int i = 0; i < 500; i++) {
        g_autofree char *out = NULL;
        const char *show[] = { "ip", "-n", p->ns[NET_A], "-o", "link", "show",
                               "dev", p->dev[NET_A], NULL };

        if (g_spawn_sync(NULL, (char **)show, NULL, G_SPAWN_SEARCH_PATH, NULL,
                         NULL, &out, NULL, NULL, NULL) &&
            strstr(out, "state UP")) {
            return;
        }
        g_usleep(10 * 1000);
    }
    g_error("netpair: the link did not come back up within 5 s");
}
