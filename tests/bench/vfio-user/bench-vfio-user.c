/*
 * bench-vfio-user: how fast device state moves over vfio-user.
 *
 * 1. Reading 1 GiB of device state with MIG_DATA_READ from a
 *    vfio-user-dma server (STOP_COPY and PRE_COPY, at several message
 *    sizes), next to a raw copy of 1 GiB over a UNIX socket in the same
 *    run (the ceiling), and writing it back with MIG_DATA_WRITE.
 * 2. The time of each FSM arc on the DMA device.
 *
 * A benchmark, not a test: it prints tables and fails only when
 * something does not work at all.  Usage: bench-vfio-user [--quick]
 * (--quick: 256 MiB and fewer repetitions).
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

#define RUNS 3

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

/* ---- Raw socket copy ---- */

typedef struct RawWriter {
    int fd;
    const uint8_t *src;
    uint64_t len;
    size_t chunk;
} RawWriter;

static gpointer raw_writer(gpointer opaque)
{
    RawWriter *w = opaque;

    for (uint64_t off = 0; off < w->len; ) {
        ssize_t n = write(w->fd, w->src + off, MIN(w->chunk, w->len - off));

        if (n <= 0) {
            error_report("raw copy: write: %s", g_strerror(errno));
            exit(1);
        }
        off += n;
    }
    return NULL;
}

/*
 * 1 GiB from a 1 GiB buffer (as the device reads its memory) through a
 * UNIX stream socket into a @chunk buffer: the best MIG_DATA_READ could do.
 */
static double raw_copy_ms(uint8_t *src, size_t chunk)
{
    int sv[2];
    RawWriter w = { .src = src, .len = state_size, .chunk = chunk };
    g_autofree uint8_t *buf = g_malloc(chunk);
    uint64_t got = 0;
    int64_t start;
    GThread *t;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        error_report("socketpair: %s", g_strerror(errno));
        exit(1);
    }
    w.fd = sv[0];
    start = get_clock_ns();
    t = g_thread_new("raw-writer", raw_writer, &w);
    while (got < state_size) {
        ssize_t n = read(sv[1], buf, chunk);

        if (n <= 0) {
            error_report("raw copy: read: %s", g_strerror(errno));
            exit(1);
        }
        got += n;
    }
    g_thread_join(t);
    close(sv[0]);
    close(sv[1]);
    return (get_clock_ns() - start) / 1e6;
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

/*
 * Drain the device's stream as a VMM would (pipelined MIG_DATA_READs);
 * returns ms and the bytes in *@bytes.
 */
static double drain_ms(VFIOUserMigReader *r, uint64_t *bytes, GByteArray *keep)
{
    int64_t start = get_clock_ns();
    bool end;
    int64_t n = vfio_user_mig_reader_drain(r, UINT64_MAX, sink_keep, keep,
                                           &end, &error_fatal);

    *bytes = n;
    return (get_clock_ns() - start) / 1e6;
}

typedef struct Row {
    const char *what;
    uint64_t bytes;
    double ms;          /* best of the runs */
    size_t chunk;       /* bytes per read / write */
} Row;

static double gibs(const Row *r)
{
    return r->bytes / (double)GiB / (r->ms / 1000);
}

static double best(double a, double b)
{
    return a == 0 || b < a ? b : a;
}

static const size_t read_sizes[] = { 256 << 10, 1 << 20 };

/*
 * The raw copy and the reads take turns within each run, so that both see
 * the same machine (other load comes and goes); the best run counts.
 */
static void bench_read(const char *mem, Row *rows, unsigned *nr, int runs,
                       double *raw_ms)
{
    enum { NR_SIZES = ARRAY_SIZE(read_sizes) };
    Server *s = server_start(mem, "4M", "--no-p2p");
    VFIOUserProxy *p = connect_to(s);
    VFIOUserMigReader *readers[NR_SIZES];
    Row raw[NR_SIZES], stop[NR_SIZES], pre[NR_SIZES];
    uint8_t *src;

    src = mmap(NULL, state_size, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (src == MAP_FAILED) {
        error_report("cannot map %" PRIu64 " bytes", state_size);
        exit(1);
    }
    memset(src, 0x5a, state_size);
    for (size_t i = 0; i < NR_SIZES; i++) {
        readers[i] = vfio_user_mig_reader_new(p, read_sizes[i], 0);
        raw[i] = (Row) { .chunk = read_sizes[i], .bytes = state_size };
        stop[i] = (Row) { .chunk = read_sizes[i] };
        pre[i] = (Row) { .chunk = read_sizes[i] };
    }
    for (int run = 0; run < runs; run++) {
        for (size_t i = 0; i < NR_SIZES; i++) {
            uint64_t bytes;

            raw[i].ms = best(raw[i].ms, raw_copy_ms(src, read_sizes[i]));

            vfio_user_mig_set_state(p, VFIO_DEVICE_STATE_STOP_COPY, NULL,
                                    &error_fatal);
            stop[i].ms = best(stop[i].ms, drain_ms(readers[i], &bytes, NULL));
            stop[i].bytes = bytes;
            vfio_user_mig_set_state(p, VFIO_DEVICE_STATE_RUNNING, NULL,
                                    &error_fatal);

            vfio_user_mig_set_state(p, VFIO_DEVICE_STATE_PRE_COPY, NULL,
                                    &error_fatal);
            pre[i].ms = best(pre[i].ms, drain_ms(readers[i], &bytes, NULL));
            pre[i].bytes = bytes;
            vfio_user_mig_set_state(p, VFIO_DEVICE_STATE_RUNNING, NULL,
                                    &error_fatal);
        }
    }
    for (size_t i = 0; i < NR_SIZES; i++) {
        raw[i].what = g_strdup_printf("raw UNIX socket copy, %zuK writes",
                                      read_sizes[i] >> 10);
        raw_ms[i] = raw[i].ms;
        rows[(*nr)++] = raw[i];
    }
    for (size_t i = 0; i < NR_SIZES; i++) {
        stop[i].what = g_strdup_printf("MIG_DATA_READ STOP_COPY, %zuK reads",
                                       read_sizes[i] >> 10);
        pre[i].what = g_strdup_printf("MIG_DATA_READ PRE_COPY,  %zuK reads",
                                      read_sizes[i] >> 10);
        rows[(*nr)++] = stop[i];
        rows[(*nr)++] = pre[i];
        vfio_user_mig_reader_free(readers[i]);
    }
    munmap(src, state_size);
    vfio_user_disconnect(p);
    server_stop(s);
}

/* Save a whole stream from one device and load it into another. */
static void bench_write(const char *mem, Row *rows, unsigned *nr, int runs)
{
    Server *s1 = server_start(mem, "4M", "--no-p2p");
    Server *s2 = server_start(mem, "4M", "--no-p2p");
    VFIOUserProxy *src = connect_to(s1), *dst = connect_to(s2);
    g_autoptr(GByteArray) stream = g_byte_array_sized_new(state_size + MiB);
    Row row = { .what = g_strdup("MIG_DATA_WRITE RESUMING, 4M writes"),
                .chunk = 4 * MiB };
    VFIOUserMigReader *reader = vfio_user_mig_reader_new(src, 0, 0);
    uint64_t bytes;

    vfio_user_mig_set_state(src, VFIO_DEVICE_STATE_STOP_COPY, NULL,
                            &error_fatal);
    drain_ms(reader, &bytes, stream);
    vfio_user_mig_reader_free(reader);
    for (int r = 0; r < runs; r++) {
        int64_t start;

        vfio_user_mig_set_state(dst, VFIO_DEVICE_STATE_RESUMING, NULL,
                                &error_fatal);
        start = get_clock_ns();
        vfio_user_mig_data_write(dst, stream->data, stream->len, &error_fatal);
        row.ms = best(row.ms, (get_clock_ns() - start) / 1e6);
        vfio_user_mig_set_state(dst, VFIO_DEVICE_STATE_RUNNING, NULL,
                                &error_fatal);
    }
    row.bytes = stream->len;
    rows[(*nr)++] = row;
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

static int cmp_double(gconstpointer a, gconstpointer b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

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
    drain_ms(r, &bytes, stream);
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

int main(int argc, char **argv)
{
    bool quick = argc > 1 && !strcmp(argv[1], "--quick");
    g_autoptr(GError) gerr = NULL;
    g_autofree char *mem = NULL;
    Row rows[16];
    unsigned nr = 0;
    double raw_ms[ARRAY_SIZE(read_sizes)];
    double best_read = 0, best_raw = 0;
    int runs = quick ? 1 : RUNS;

    error_set_progname("bench-vfio-user");
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

    bench_read(mem, rows, &nr, runs, raw_ms);
    bench_write(mem, rows, &nr, runs);

    printf("Device state over vfio-user: %s of vfio-user-dma memory, best of "
           "%d runs; %% raw: of the raw copy with the same read size\n\n",
           mem, runs);
    printf("| %-38s | %12s | %9s | %6s | %6s |\n", "measurement", "bytes",
           "ms", "GiB/s", "% raw");
    printf("|----------------------------------------|--------------|"
           "-----------|--------|--------|\n");
    for (unsigned i = 0; i < nr; i++) {
        double raw = 0;

        for (size_t j = 0; j < ARRAY_SIZE(read_sizes); j++) {
            if (rows[i].chunk == read_sizes[j]) {
                raw = raw_ms[j];
            }
        }
        if (!strncmp(rows[i].what, "raw", 3)) {
            best_raw = MAX(best_raw, gibs(&rows[i]));
        } else if (!strncmp(rows[i].what, "MIG_DATA_READ STOP", 18)) {
            best_read = MAX(best_read, gibs(&rows[i]));
        }
        if (raw) {
            printf("| %-38s | %12" PRIu64 " | %9.1f | %6.2f | %5.0f%% |\n",
                   rows[i].what, rows[i].bytes, rows[i].ms, gibs(&rows[i]),
                   100.0 * (rows[i].bytes / rows[i].ms) / (state_size / raw));
        } else {
            printf("| %-38s | %12" PRIu64 " | %9.1f | %6.2f | %6s |\n",
                   rows[i].what, rows[i].bytes, rows[i].ms, gibs(&rows[i]),
                   "");
        }
        g_free((char *)rows[i].what);
    }
    printf("\nBest STOP_COPY read %.2f GiB/s = %.0f%% of the best raw copy "
           "%.2f GiB/s (goal: 80%%)\n", best_read, 100 * best_read / best_raw,
           best_raw);
    fflush(stdout);

    bench_arcs(quick ? 10 : 50);
    rmdir(tmp_dir);
    g_free(tmp_dir);
    return 0;
}
