/*
 * bench-vfio-user: how fast device state moves over vfio-user.
 *
 * 1. Reading 1 GiB of device state with MIG_DATA_READ from a
 *    vfio-user-dma server (STOP_COPY and PRE_COPY, 256K and 1M reads),
 *    next to a raw copy of 1 GiB over a UNIX socket in the same run (the
 *    ceiling: a writer process with memfd memory, like the device, and a
 *    reader here, with the same chunk size and socket buffers), and
 *    writing it back with MIG_DATA_WRITE.  Every transfer runs several
 *    times, interleaved; the tables give medians and the CPU time of
 *    both sides.
 * 2. The time of each FSM arc on the DMA device.
 *
 * A benchmark, not a test: it prints tables and fails only when
 * something does not work at all.  Usage: bench-vfio-user [--quick]
 * [--runs N] [--read-only] (--quick: 256 MiB and 3 runs).
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/error.h"
#include "hw/vfio-user/client.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

/* Runs of each transfer: the median of an odd count is one of them. */
#define RUNS 5
#define MAX_RUNS 15
/* Writes need two 1 GiB servers and are not the goal: fewer runs. */
#define WRITE_RUNS 3

static uint64_t state_size = 1 * GiB;
static char *tmp_dir;

typedef struct Server {
    pid_t pid;
    char *socket;
} Server;

static const char *dma_bin(void)
{
    const char *env = g_getenv("VUS_DMA_BIN");

    return env ? env : VUS_DMA_BIN;
}

static Server *server_start(const char *mem, const char *max_xfer,
                            const char *extra)
{
    static unsigned seq;
    Server *s = g_new0(Server, 1);
    g_autofree char *name = g_strdup_printf("dma%u.sock", seq++);
    pid_t parent = getpid();

    s->socket = g_build_filename(tmp_dir, name, NULL);
    s->pid = fork();
    if (s->pid < 0) {
        error_report("fork: %s", g_strerror(errno));
        exit(1);
    }
    if (s->pid == 0) {
        const char *argv[] = {
            dma_bin(), "--socket", s->socket, "--mem-size", mem,
            "--max-xfer", max_xfer, extra, NULL,
        };

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    for (int i = 0; i < 2000; i++) {
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int status;

        g_strlcpy(addr.sun_path, s->socket, sizeof(addr.sun_path));
        if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
            close(fd);
            return s;
        }
        close(fd);
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            error_report("%s exited at start (status 0x%x)", dma_bin(),
                         status);
            exit(1);
        }
        g_usleep(5000);
    }
    error_report("%s did not listen within 10 s", dma_bin());
    exit(1);
}

static void server_stop(Server *s)
{
    int status;

    kill(s->pid, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            goto done;
        }
        g_usleep(5000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
done:
    unlink(s->socket);
    g_free(s->socket);
    g_free(s);
}

static VFIOUserProxy *connect_to(Server *s)
{
    VFIOUserConnectOptions opts = {
        .timeout_ms = 60000,
        .max_data_xfer_size = VFIO_USER_MAX_MAX_XFER,
    };

    return vfio_user_connect(s->socket, &opts, &error_fatal);
}

/* ---- CPU time ---- */

/* CPU time of every thread of @pid so far, in seconds (0 if unknown). */
static double proc_cpu_s(pid_t pid)
{
    g_autofree char *dir_name = g_strdup_printf("/proc/%d/task", (int)pid);
    GDir *dir = g_dir_open(dir_name, 0, NULL);
    const char *tid;
    double total = 0;

    if (!dir) {
        return 0;
    }
    while ((tid = g_dir_read_name(dir))) {
        g_autofree char *path = g_strdup_printf("%s/%s/schedstat", dir_name,
                                                tid);
        g_autofree char *text = NULL;

        /* schedstat: ns on the CPU, ns waiting, timeslices. */
        if (g_file_get_contents(path, &text, NULL, NULL)) {
            total += g_ascii_strtod(text, NULL) / 1e9;
        }
    }
    g_dir_close(dir);
    return total;
}

static double self_cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One timed transfer: wall time, and the CPU time of each side. */
typedef struct Sample {
    double ms;
    double peer_cpu;    /* the server, or the raw copy's writer */
    double self_cpu;    /* this process: the client, or the raw reader */
} Sample;

typedef struct Meter {
    pid_t peer;
    int64_t start;
    double peer_cpu, self_cpu;
} Meter;

static void meter_start(Meter *m, pid_t peer)
{
    m->peer = peer;
    m->peer_cpu = proc_cpu_s(peer);
    m->self_cpu = self_cpu_s();
    m->start = get_clock_ns();
}

static Sample meter_stop(Meter *m)
{
    Sample s = { .ms = (get_clock_ns() - m->start) / 1e6 };

    s.peer_cpu = proc_cpu_s(m->peer) - m->peer_cpu;
    s.self_cpu = self_cpu_s() - m->self_cpu;
    return s;
}

/* ---- Raw socket copy ---- */

/*
 * The ceiling MIG_DATA_READ is measured against, laid out as the device
 * is: a separate process with @state_size bytes of memfd memory writes it
 * into a UNIX stream socket in @chunk pieces when asked, and this process
 * reads it into a @chunk buffer.  Both ends get the socket buffers the
 * vfio-user connection uses, so only the protocol differs.
 */
typedef struct RawPeer {
    pid_t pid;
    int fd;
} RawPeer;

static void raw_sock_bufs(int fd)
{
    int size = VFIO_USER_SOCKET_BUF_SIZE;

    /* Best effort, as on the connection: the kernel may cap it. */
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

static bool read_full(int fd, void *buf, size_t len)
{
    for (size_t done = 0; done < len; ) {
        ssize_t n = read(fd, (char *)buf + done, len - done);

        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return false;
        }
        done += n;
    }
    return true;
}

/* The writer process: no glib here, it runs after fork(). */
static void G_GNUC_NORETURN raw_writer(int fd)
{
    int mem_fd = memfd_create("raw-copy-state", MFD_CLOEXEC);
    uint8_t *src;
    uint32_t chunk;

    if (mem_fd < 0 || ftruncate(mem_fd, state_size) < 0) {
        _exit(1);
    }
    src = mmap(NULL, state_size, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_POPULATE, mem_fd, 0);
    if (src == MAP_FAILED) {
        _exit(1);
    }
    memset(src, 0x5a, state_size);
    if (write(fd, "r", 1) != 1) {
        _exit(1);
    }
    while (read_full(fd, &chunk, sizeof(chunk)) && chunk) {
        for (uint64_t off = 0; off < state_size; ) {
            ssize_t n = write(fd, src + off, MIN(chunk, state_size - off));

            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                _exit(1);
            }
            off += n;
        }
    }
    _exit(0);
}

static RawPeer raw_start(void)
{
    RawPeer r;
    int sv[2];
    char ready;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        error_report("socketpair: %s", g_strerror(errno));
        exit(1);
    }
    raw_sock_bufs(sv[0]);
    raw_sock_bufs(sv[1]);
    r.pid = fork();
    if (r.pid < 0) {
        error_report("fork: %s", g_strerror(errno));
        exit(1);
    }
    if (r.pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(sv[1]);
        raw_writer(sv[0]);
    }
    close(sv[0]);
    r.fd = sv[1];
    if (!read_full(r.fd, &ready, 1)) {
        error_report("raw copy: the writer process failed to start");
        exit(1);
    }
    return r;
}

static void raw_stop(RawPeer *r)
{
    int status;

    /* Closing the socket ends the writer's loop. */
    close(r->fd);
    waitpid(r->pid, &status, 0);
}

static Sample raw_copy(RawPeer *r, uint8_t *buf, size_t chunk)
{
    uint32_t ask = chunk;
    uint64_t got = 0;
    Meter m;

    meter_start(&m, r->pid);
    if (write(r->fd, &ask, sizeof(ask)) != sizeof(ask)) {
        error_report("raw copy: write: %s", g_strerror(errno));
        exit(1);
    }
    while (got < state_size) {
        ssize_t n = read(r->fd, buf, MIN(chunk, state_size - got));

        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            error_report("raw copy: read: %s", n ? g_strerror(errno) :
                         "the writer went away");
            exit(1);
        }
        got += n;
    }
    return meter_stop(&m);
}

/* ---- MIG_DATA_READ / WRITE ---- */

static bool sink_keep(void *opaque, const void *data, size_t len,
                      Error **errp)
{
    if (opaque) {
        g_byte_array_append(opaque, data, len);
    }
    return true;
}

/* Drain the device's stream as a VMM would (pipelined MIG_DATA_READs). */
static Sample drain(VFIOUserMigReader *r, pid_t server, uint64_t *bytes,
                    GByteArray *keep)
{
    bool end;
    Meter m;
    int64_t n;

    meter_start(&m, server);
    n = vfio_user_mig_reader_drain(r, UINT64_MAX, sink_keep, keep, &end,
                                   &error_fatal);
    *bytes = n;
    return meter_stop(&m);
}

/* Samples of one measurement over the runs. */
typedef struct Row {
    char *what;
    size_t chunk;       /* bytes per read / write */
    uint64_t bytes;
    unsigned nr;
    Sample s[MAX_RUNS];
} Row;

static int cmp_double(gconstpointer a, gconstpointer b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* The median of field @off of the samples of @r. */
static double row_median_at(const Row *r, size_t off)
{
    double v[MAX_RUNS];

    for (unsigned i = 0; i < r->nr; i++) {
        v[i] = *(const double *)((const char *)&r->s[i] + off);
    }
    qsort(v, r->nr, sizeof(v[0]), cmp_double);
    return r->nr % 2 ? v[r->nr / 2] : (v[r->nr / 2 - 1] + v[r->nr / 2]) / 2;
}

#define row_median(r, field) row_median_at(r, offsetof(Sample, field))

static double row_min_ms(const Row *r)
{
    double v = r->s[0].ms;

    for (unsigned i = 1; i < r->nr; i++) {
        v = MIN(v, r->s[i].ms);
    }
    return v;
}

static double row_max_ms(const Row *r)
{
    double v = r->s[0].ms;

    for (unsigned i = 1; i < r->nr; i++) {
        v = MAX(v, r->s[i].ms);
    }
    return v;
}

static double row_gibs(const Row *r)
{
    return r->bytes / (double)GiB / (row_median(r, ms) / 1000);
}

static const size_t read_sizes[] = { 256 << 10, 1 << 20 };
enum { NR_SIZES = ARRAY_SIZE(read_sizes) };

typedef struct ReadRows {
    Row raw[NR_SIZES], stop[NR_SIZES], pre[NR_SIZES];
} ReadRows;

/*
 * The raw copy and the reads take turns within each run, so that all of
 * them see the same machine (other load comes and goes); medians count.
 */
static void bench_read(const char *mem, ReadRows *rr, int runs)
{
    Server *s = server_start(mem, "4M", "--no-p2p");
    VFIOUserProxy *p = connect_to(s);
    VFIOUserMigReader *readers[NR_SIZES];
    RawPeer raw = raw_start();
    g_autofree uint8_t *buf = g_malloc(read_sizes[NR_SIZES - 1]);

    for (size_t i = 0; i < NR_SIZES; i++) {
        size_t k = read_sizes[i] >> 10;

        readers[i] = vfio_user_mig_reader_new(p, read_sizes[i], 0);
        rr->raw[i] = (Row) {
            .what = g_strdup_printf("raw UNIX socket copy, %zuK", k),
            .chunk = read_sizes[i], .bytes = state_size,
        };
        rr->stop[i] = (Row) {
            .what = g_strdup_printf("MIG_DATA_READ STOP_COPY, %zuK", k),
            .chunk = read_sizes[i],
        };
        rr->pre[i] = (Row) {
            .what = g_strdup_printf("MIG_DATA_READ PRE_COPY, %zuK", k),
            .chunk = read_sizes[i],
        };
    }
    for (int run = 0; run < runs; run++) {
        for (size_t i = 0; i < NR_SIZES; i++) {
            Row *r;

            r = &rr->raw[i];
            r->s[r->nr++] = raw_copy(&raw, buf, read_sizes[i]);

            r = &rr->stop[i];
            vfio_user_mig_set_state(p, VFIO_DEVICE_STATE_STOP_COPY, NULL,
                                    &error_fatal);
            r->s[r->nr++] = drain(readers[i], s->pid, &r->bytes, NULL);
            vfio_user_mig_set_state(p, VFIO_DEVICE_STATE_RUNNING, NULL,
                                    &error_fatal);

            r = &rr->pre[i];
            vfio_user_mig_set_state(p, VFIO_DEVICE_STATE_PRE_COPY, NULL,
                                    &error_fatal);
            r->s[r->nr++] = drain(readers[i], s->pid, &r->bytes, NULL);
            vfio_user_mig_set_state(p, VFIO_DEVICE_STATE_RUNNING, NULL,
                                    &error_fatal);
        }
    }
    for (size_t i = 0; i < NR_SIZES; i++) {
        vfio_user_mig_reader_free(readers[i]);
    }
    raw_stop(&raw);
    vfio_user_disconnect(p);
    server_stop(s);
}

/* Save a whole stream from one device and load it into another. */
static void bench_write(const char *mem, Row *row, int runs)
{
    Server *s1 = server_start(mem, "4M", "--no-p2p");
    Server *s2 = server_start(mem, "4M", "--no-p2p");
    VFIOUserProxy *src = connect_to(s1), *dst = connect_to(s2);
    g_autoptr(GByteArray) stream = g_byte_array_sized_new(state_size + MiB);
    VFIOUserMigReader *reader = vfio_user_mig_reader_new(src, 0, 0);
    uint64_t bytes;

    *row = (Row) { .what = g_strdup("MIG_DATA_WRITE RESUMING, 4M"),
                   .chunk = 4 * MiB };
    vfio_user_mig_set_state(src, VFIO_DEVICE_STATE_STOP_COPY, NULL,
                            &error_fatal);
    drain(reader, s1->pid, &bytes, stream);
    vfio_user_mig_reader_free(reader);
    for (int r = 0; r < runs; r++) {
        Meter m;

        vfio_user_mig_set_state(dst, VFIO_DEVICE_STATE_RESUMING, NULL,
                                &error_fatal);
        meter_start(&m, s2->pid);
        vfio_user_mig_data_write(dst, stream->data, stream->len, &error_fatal);
        row->s[row->nr++] = meter_stop(&m);
        vfio_user_mig_set_state(dst, VFIO_DEVICE_STATE_RUNNING, NULL,
                                &error_fatal);
    }
    row->bytes = stream->len;
    vfio_user_disconnect(src);
    vfio_user_disconnect(dst);
    server_stop(s1);
    server_stop(s2);
}

/* ---- FSM arcs ---- */

typedef struct ArcStat {
    uint32_t from, to;
    GArray *us;
} ArcStat;

static void arc_step(VFIOUserProxy *p, ArcStat *stats, size_t nr_stats,
                     uint32_t from, uint32_t to)
{
    int64_t start = get_clock_ns();
    double us;

    vfio_user_mig_set_state(p, to, NULL, &error_fatal);
    us = (get_clock_ns() - start) / 1e3;
    for (size_t i = 0; i < nr_stats; i++) {
        if (stats[i].from == from && stats[i].to == to) {
            g_array_append_val(stats[i].us, us);
            return;
        }
    }
    error_report("arc %u -> %u is not in the table", from, to);
    exit(1);
}

static void bench_arcs(int loops)
{
    /* One cycle through every direct arc of a P2P + PRE_COPY device. */
    static const uint32_t cycle[] = {
        VFIO_DEVICE_STATE_RUNNING,
        VFIO_DEVICE_STATE_RUNNING_P2P,
        VFIO_DEVICE_STATE_STOP,
        VFIO_DEVICE_STATE_RUNNING_P2P,
        VFIO_DEVICE_STATE_RUNNING,
        VFIO_DEVICE_STATE_PRE_COPY,
        VFIO_DEVICE_STATE_PRE_COPY_P2P,
        VFIO_DEVICE_STATE_PRE_COPY,
        VFIO_DEVICE_STATE_RUNNING,
        VFIO_DEVICE_STATE_PRE_COPY,
        VFIO_DEVICE_STATE_PRE_COPY_P2P,
        VFIO_DEVICE_STATE_RUNNING_P2P,
        VFIO_DEVICE_STATE_PRE_COPY_P2P,
        VFIO_DEVICE_STATE_STOP_COPY,
        VFIO_DEVICE_STATE_STOP,
        VFIO_DEVICE_STATE_STOP_COPY,
        VFIO_DEVICE_STATE_STOP,
        VFIO_DEVICE_STATE_RESUMING,
        VFIO_DEVICE_STATE_STOP,
        VFIO_DEVICE_STATE_RUNNING_P2P,
        VFIO_DEVICE_STATE_RUNNING,
    };
    ArcStat stats[ARRAY_SIZE(cycle)];
    size_t nr_stats = 0;
    Server *s = server_start("16M", "1M", "--dirty-rate=5%");
    VFIOUserProxy *p = connect_to(s);
    g_autoptr(GByteArray) stream = g_byte_array_new();
    VFIOUserMigReader *r;
    uint64_t bytes;

    /* A valid stream, so RESUMING -> STOP succeeds. */
    r = vfio_user_mig_reader_new(p, 0, 0);
    vfio_user_mig_set_state(p, VFIO_DEVICE_STATE_STOP_COPY, NULL,
                            &error_fatal);
    drain(r, s->pid, &bytes, stream);
    vfio_user_mig_reader_free(r);
    vfio_user_mig_set_state(p, VFIO_DEVICE_STATE_RUNNING, NULL, &error_fatal);

    for (size_t i = 0; i + 1 < ARRAY_SIZE(cycle); i++) {
        bool seen = false;

        for (size_t j = 0; j < nr_stats; j++) {
            seen |= stats[j].from == cycle[i] && stats[j].to == cycle[i + 1];
        }
        if (!seen) {
            stats[nr_stats++] = (ArcStat) {
                .from = cycle[i], .to = cycle[i + 1],
                .us = g_array_new(false, false, sizeof(double)),
            };
        }
    }
    for (int l = 0; l < loops; l++) {
        for (size_t i = 0; i + 1 < ARRAY_SIZE(cycle); i++) {
            arc_step(p, stats, nr_stats, cycle[i], cycle[i + 1]);
            if (cycle[i + 1] == VFIO_DEVICE_STATE_RESUMING) {
                vfio_user_mig_data_write(p, stream->data, stream->len,
                                         &error_fatal);
            }
        }
    }

    printf("\nFSM arcs on vfio-user-dma (16 MiB, 5%%/s dirtying, P2P + "
           "PRE_COPY), %d samples each, round trip over the socket:\n\n",
           loops);
    printf("| arc                            | median us |    min us |"
           "    max us |\n");
    printf("|--------------------------------|-----------|-----------|"
           "-----------|\n");
    for (size_t i = 0; i < nr_stats; i++) {
        GArray *a = stats[i].us;
        g_autofree char *arc = g_strdup_printf(
            "%s -> %s", vfio_user_mig_state_name(stats[i].from),
            vfio_user_mig_state_name(stats[i].to));

        g_array_sort(a, cmp_double);
        printf("| %-30s | %9.1f | %9.1f | %9.1f |\n", arc,
               g_array_index(a, double, a->len / 2),
               g_array_index(a, double, 0),
               g_array_index(a, double, a->len - 1));
        g_array_free(a, true);
    }
    vfio_user_disconnect(p);
    server_stop(s);
}

/*
 * What the transfer would reach on two otherwise idle CPUs, as a share of
 * the raw copy: each side has a CPU of its own and the busier one sets
 * the pace.  Unlike wall time, it hardly moves with other load.
 */
static double cpu_bound_pct(const Row *r, const Row *raw)
{
    double mine = MAX(row_median(r, peer_cpu), row_median(r, self_cpu));
    double theirs = MAX(row_median(raw, peer_cpu), row_median(raw, self_cpu));

    return mine > 0 ? 100 * theirs / mine * r->bytes / raw->bytes : 0;
}

static void print_row(const Row *r, const Row *raw)
{
    g_autofree char *range = g_strdup_printf("%.0f-%.0f", row_min_ms(r),
                                             row_max_ms(r));
    g_autofree char *pct = raw ?
        g_strdup_printf("%.0f%%", 100 * row_median(raw, ms) /
                        row_median(r, ms) * r->bytes / raw->bytes) :
        g_strdup("");
    g_autofree char *cpu_pct = raw ?
        g_strdup_printf("%.0f%%", cpu_bound_pct(r, raw)) : g_strdup("");

    printf("| %-32s | %9.1f | %11s | %6.2f | %5s | %8.2f | %8.2f | %9s |\n",
           r->what, row_median(r, ms), range, row_gibs(r), pct,
           row_median(r, peer_cpu), row_median(r, self_cpu), cpu_pct);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench-vfio-user [--quick] [--runs N] "
            "[--read-only]\n"
            "  --quick      256 MiB of state, 3 runs, fewer arc samples\n"
            "  --runs N     runs of each transfer (1-%d; default %d)\n"
            "  --read-only  only MIG_DATA_READ and the raw copy (profiling)\n",
            MAX_RUNS, RUNS);
    exit(2);
}

int main(int argc, char **argv)
{
    g_autoptr(GError) gerr = NULL;
    g_autofree char *mem = NULL;
    ReadRows rr = { 0 };
    Row write_row = { 0 };
    bool quick = false, read_only = false;
    int runs = 0;

    error_set_progname("bench-vfio-user");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            quick = true;
        } else if (!strcmp(argv[i], "--read-only")) {
            read_only = true;
        } else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atoi(argv[++i]);
            if (runs < 1 || runs > MAX_RUNS) {
                usage();
            }
        } else {
            usage();
        }
    }
    if (!runs) {
        runs = quick ? 3 : RUNS;
    }
    signal(SIGPIPE, SIG_IGN);
    if (quick) {
        state_size = 256 * MiB;
    }
    mem = g_strdup_printf("%" PRIu64 "M", state_size / (uint64_t)MiB);
    tmp_dir = g_dir_make_tmp("bench-vfio-user-XXXXXX", &gerr);
    if (!tmp_dir) {
        error_report("temporary directory: %s", gerr->message);
        return 1;
    }

    bench_read(mem, &rr, runs);
    if (!read_only) {
        bench_write(mem, &write_row, MIN(runs, WRITE_RUNS));
    }

    printf("Device state over vfio-user: %s of vfio-user-dma memory, median "
           "of %d runs (min-max ms).\n%% raw: the raw copy's median time over "
           "this one's, same chunk size.  CPU srv / cli: median CPU\n"
           "seconds of the device server (or the raw writer) and of this "
           "client process (or the raw reader).\n%% raw CPU: the same ratio "
           "on two idle CPUs, from the busier side's CPU time (steadier\n"
           "than wall time on a loaded machine).\n\n", mem, runs);
    printf("| %-32s | %9s | %11s | %6s | %5s | %8s | %8s | %9s |\n",
           "measurement", "median ms", "min-max ms", "GiB/s", "% raw",
           "CPU srv", "CPU cli", "% raw CPU");
    printf("|----------------------------------|-----------|-------------|"
           "--------|-------|----------|----------|-----------|\n");
    for (size_t i = 0; i < NR_SIZES; i++) {
        print_row(&rr.raw[i], NULL);
        print_row(&rr.stop[i], &rr.raw[i]);
        print_row(&rr.pre[i], &rr.raw[i]);
    }
    if (!read_only) {
        print_row(&write_row, NULL);
    }
    printf("\nSTOP_COPY read / raw copy, median of %d runs (goal: 80%%):",
           runs);
    for (size_t i = 0; i < NR_SIZES; i++) {
        printf(" %zuK %.0f%% (CPU %.0f%%)%s", read_sizes[i] >> 10,
               100 * row_median(&rr.raw[i], ms) / row_median(&rr.stop[i], ms) *
               rr.stop[i].bytes / rr.raw[i].bytes,
               cpu_bound_pct(&rr.stop[i], &rr.raw[i]),
               i + 1 < NR_SIZES ? "," : "\n");
    }
    fflush(stdout);
    for (size_t i = 0; i < NR_SIZES; i++) {
        g_free(rr.raw[i].what);
        g_free(rr.stop[i].what);
        g_free(rr.pre[i].what);
    }
    g_free(write_row.what);

    if (!read_only) {
        bench_arcs(quick ? 10 : 50);
    }
    rmdir(tmp_dir);
    g_free(tmp_dir);
    return 0;
}
