/*
 * Multifd throughput: SIZE of random pages from a source buffer into a
 * destination RAM block, both in this process, over loopback TCP (or a
 * UNIX socket), with 1, 2 and 4 channels and each compression method.
 * Prints a table; the time runs from the first queued page to the
 * destination's sync, and every run is checked byte for byte afterwards.
 *
 *   bench-multifd [--size 1G] [--unix] [--zero] [--channels 1,2,4]
 *                 [--methods none,zlib,zstd]
 *
 * --zero makes every source page zero (written, so resident): the send
 * threads find them and only offsets travel.
 */
#include "qemu/osdep.h"
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include "qemu/cutils.h"
#include "migration/multifd/multifd-internal.h"

static const uint8_t bench_uuid[16] = { 0xbe, 0x4c, 0x11 };

typedef struct Bench {
    uint64_t size;
    bool use_unix;
    bool zero;
    RAMBlock src;               /* described only: not in the block list */
    RAMBlock *dst;
    char *dir;
} Bench;

typedef struct Acceptor {
    MigListener *listener;
    unsigned channels;
    Error *err;
} Acceptor;

static gpointer acceptor_thread(gpointer opaque)
{
    Acceptor *a = opaque;

    for (unsigned i = 0; i < a->channels; i++) {
        MigChannel *ch = mig_listener_accept(a->listener, NULL, &a->err);
        uint8_t prefix[MULTIFD_HELLO_PEEK_LEN];

        if (!ch) {
            return NULL;
        }
        if (!multifd_read_full(ch, prefix, sizeof(prefix), &a->err)) {
            mig_channel_close(ch);
            return NULL;
        }
        if (!multifd_is_channel_hello(prefix)) {
            error_setg(&a->err, "connection %u is not a multifd channel", i);
            mig_channel_close(ch);
            return NULL;
        }
        if (!multifd_recv_new_channel(ch, prefix, sizeof(prefix), &a->err)) {
            return NULL;
        }
    }
    return NULL;
}

typedef struct SourceRun {
    Bench *b;
    Error *err;
} SourceRun;

static gpointer source_thread(gpointer opaque)
{
    SourceRun *run = opaque;
    RAMBlock *rb = &run->b->src;

    for (uint64_t off = 0; off < rb->size; off += TARGET_PAGE_SIZE) {
        if (!multifd_queue_ram_page(rb, off, &run->err)) {
            return NULL;
        }
    }
    multifd_send_sync(&run->err);
    return NULL;
}

static double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static MigListener *bench_listen(Bench *b, MigrationAddress *addr,
                                 Error **errp)
{
    MigListener *l;

    memset(addr, 0, sizeof(*addr));
    if (b->use_unix) {
        g_autofree char *uri = g_strdup_printf("unix:%s/sock", b->dir);

        if (!migration_address_parse(uri, addr, errp)) {
            return NULL;
        }
        return mig_listener_new(addr, errp);
    }
    if (!migration_address_parse("tcp:127.0.0.1:0", addr, errp)) {
        return NULL;
    }
    l = mig_listener_new(addr, errp);
    if (l) {
        /* Connect to the port the kernel picked. */
        g_free(addr->port);
        addr->port = g_strdup(mig_listener_port_or_path(l));
    }
    return l;
}

/* One run; false with errp set when anything fails. */
static bool bench_run(Bench *b, unsigned channels, MultiFDCompression method,
                      double *seconds, double *cpu, uint64_t *wire_bytes,
                      Error **errp)
{
    MultiFDParams params;
    MigrationAddress addr;
    Acceptor acc = { .channels = channels };
    SourceRun run = { .b = b };
    GThread *acceptor, *source;
    int64_t start;
    double cpu_start;
    bool ok = false;

    multifd_params_init(&params);
    params.channels = channels;
    params.compression = method;
    acc.listener = bench_listen(b, &addr, errp);
    if (!acc.listener) {
        goto out_addr;
    }
    memset(b->dst->host, 0, b->size);
    if (!multifd_recv_setup(bench_uuid, &params, NULL, errp)) {
        goto out_listener;
    }
    acceptor = g_thread_new("acceptor", acceptor_thread, &acc);
    if (!multifd_send_setup(&addr, bench_uuid, &params, NULL, errp)) {
        /* Unblock the acceptor: connect the missing channels ourselves. */
        for (unsigned i = 0; i < channels; i++) {
            mig_channel_close(mig_channel_connect(&addr, NULL, NULL));
        }
        g_thread_join(acceptor);
        error_free(acc.err);
        goto out_recv;
    }
    g_thread_join(acceptor);
    if (acc.err) {
        error_propagate(errp, acc.err);
        goto out_send;
    }

    start = get_clock_ns();
    cpu_start = cpu_seconds();
    source = g_thread_new("source", source_thread, &run);
    ok = multifd_recv_sync_main(errp);
    g_thread_join(source);
    *seconds = (get_clock_ns() - start) / 1e9;
    *cpu = cpu_seconds() - cpu_start;
    *wire_bytes = multifd_bytes_transferred();
    if (ok && run.err) {
        error_propagate(errp, run.err);
        ok = false;
    } else {
        error_free(run.err);
    }
    if (ok && memcmp(b->src.host, b->dst->host, b->size)) {
        error_setg(errp, "destination differs from the source");
        ok = false;
    }

out_send:
    multifd_send_shutdown();
out_recv:
    multifd_recv_shutdown();
out_listener:
    mig_listener_free(acc.listener);
out_addr:
    migration_address_clear(&addr);
    return ok;
}

typedef struct RawRun {
    int fd;
    uint8_t *buf;
    uint64_t size;
} RawRun;

static gpointer raw_reader(gpointer opaque)
{
    RawRun *r = opaque;
    uint64_t done = 0;

    while (done < r->size) {
        ssize_t n = read(r->fd, r->buf + done, MIN(r->size - done, 1 * MiB));

        if (n <= 0) {
            break;
        }
        done += n;
    }
    return NULL;
}

/* The loopback limit: one plain stream of SIZE bytes, no multifd at all. */
static double bench_raw_stream(Bench *b, Error **errp)
{
    MigrationAddress addr;
    MigListener *l = bench_listen(b, &addr, errp);
    MigChannel *out = NULL, *in = NULL;
    RawRun run = { .buf = b->dst->host, .size = b->size };
    double seconds = -1;
    int64_t start;
    GThread *th;
    int flags;

    if (!l) {
        goto out;
    }
    out = mig_channel_connect(&addr, NULL, errp);
    in = out ? mig_listener_accept(l, NULL, errp) : NULL;
    if (!in) {
        goto out;
    }
    /* Plain blocking reads, as fast as the kernel allows. */
    run.fd = in->fd;
    flags = fcntl(run.fd, F_GETFL);
    fcntl(run.fd, F_SETFL, flags & ~O_NONBLOCK);
    start = get_clock_ns();
    th = g_thread_new("raw-reader", raw_reader, &run);
    for (uint64_t off = 0; off < b->size; off += 1 * MiB) {
        struct iovec iov = {
            .iov_base = b->src.host + off,
            .iov_len = MIN(1 * MiB, b->size - off),
        };

        if (!mig_channel_writev_all(out, &iov, 1, errp)) {
            mig_channel_shutdown(in);
            break;
        }
    }
    g_thread_join(th);
    seconds = (get_clock_ns() - start) / 1e9;
out:
    mig_channel_close(in);
    mig_channel_close(out);
    mig_listener_free(l);
    migration_address_clear(&addr);
    return seconds;
}

static void fill_random(uint8_t *p, uint64_t size)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;

    for (uint64_t i = 0; i < size; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(p + i, &x, 8);
    }
}

static bool parse_list(const char *s, unsigned *vals, unsigned *n,
                       unsigned max)
{
    g_auto(GStrv) parts = g_strsplit(s, ",", -1);

    *n = 0;
    for (char **p = parts; *p && *n < max; p++) {
        uint64_t v;

        if (qemu_strtou64(*p, &v) < 0 || v < 1 || v > MULTIFD_MAX_CHANNELS) {
            return false;
        }
        vals[(*n)++] = v;
    }
    return *n > 0;
}

int main(int argc, char **argv)
{
    unsigned channels[8] = { 1, 2, 4 }, nr_channels = 3;
    MultiFDCompression methods[MULTIFD_COMPRESSION__MAX] = {
        MULTIFD_COMPRESSION_NONE, MULTIFD_COMPRESSION_ZLIB,
        MULTIFD_COMPRESSION_ZSTD,
    };
    unsigned nr_methods = 3;
    Bench b = { .size = 1 * GiB };
    Error *err = NULL;
    double raw;

    signal(SIGPIPE, SIG_IGN);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            if (qemu_strtosz(argv[++i], &b.size) < 0 || !b.size) {
                fprintf(stderr, "bench-multifd: bad size '%s'\n", argv[i]);
                return 1;
            }
            b.size = QEMU_ALIGN_UP(b.size, TARGET_PAGE_SIZE);
        } else if (!strcmp(argv[i], "--unix")) {
            b.use_unix = true;
        } else if (!strcmp(argv[i], "--zero")) {
            b.zero = true;
        } else if (!strcmp(argv[i], "--channels") && i + 1 < argc) {
            if (!parse_list(argv[++i], channels, &nr_channels,
                            ARRAY_SIZE(channels))) {
                fprintf(stderr, "bench-multifd: bad channel list '%s'\n",
                        argv[i]);
                return 1;
            }
        } else if (!strcmp(argv[i], "--methods") && i + 1 < argc) {
            g_auto(GStrv) parts = g_strsplit(argv[++i], ",", -1);

            nr_methods = 0;
            for (char **p = parts; *p && nr_methods < ARRAY_SIZE(methods);
                 p++) {
                if (!multifd_compression_parse(*p, &methods[nr_methods++],
                                               &err)) {
                    error_report_err(err);
                    return 1;
                }
            }
        } else {
            fprintf(stderr, "usage: %s [--size SIZE] [--unix] [--zero] "
                    "[--channels 1,2,4] [--methods none,zlib,zstd]\n",
                    argv[0]);
            return 1;
        }
    }

    b.dir = g_dir_make_tmp("bench-multifd-XXXXXX", NULL);
    b.src.host = mmap(NULL, b.size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!b.dir || b.src.host == MAP_FAILED) {
        fprintf(stderr, "bench-multifd: cannot allocate %" PRIu64 " bytes\n",
                b.size);
        return 1;
    }
    g_strlcpy(b.src.idstr, "bench.ram", sizeof(b.src.idstr));
    b.src.size = b.size;
    b.src.pages = b.size / TARGET_PAGE_SIZE;
    b.dst = ram_block_add("bench.ram", 0, b.size, -1, 0, false, &err);
    if (!b.dst) {
        error_report_err(err);
        return 1;
    }
    if (b.zero) {
        memset(b.src.host, 0, b.size);
    } else {
        fill_random(b.src.host, b.size);
    }
    /* Fault the destination in once: this measures multifd, not mmap. */
    memset(b.dst->host, 0, b.size);

    printf("multifd: %" PRIu64 " MiB of %s pages, %s loopback, "
           "%ld CPUs, destination pre-faulted\n", (uint64_t)(b.size / MiB),
           b.zero ? "zero" : "random", b.use_unix ? "UNIX socket" : "TCP",
           sysconf(_SC_NPROCESSORS_ONLN));
    /* Best of three: the first run also warms up the socket buffers. */
    raw = 0;
    for (int i = 0; i < 3; i++) {
        double t = bench_raw_stream(&b, &err);

        if (t <= 0) {
            error_report_err(err);
            return 1;
        }
        raw = raw ? MIN(raw, t) : t;
    }
    printf("%-10s %-6s %9s %9s %10s %12s\n", "channels", "method", "seconds",
           "GiB/s", "CPU s", "wire MiB");
    printf("%-10s %-6s %9.3f %9.2f %10s %12" PRIu64 "\n", "raw 1", "-", raw,
           b.size / (double)GiB / raw, "-", (uint64_t)(b.size / MiB));
    for (unsigned m = 0; m < nr_methods; m++) {
        for (unsigned c = 0; c < nr_channels; c++) {
            double seconds, cpu;
            uint64_t wire;

            if (!bench_run(&b, channels[c], methods[m], &seconds, &cpu, &wire,
                           &err)) {
                error_prepend(&err, "%u channels, %s: ", channels[c],
                              multifd_compression_name(methods[m]));
                error_report_err(err);
                return 1;
            }
            printf("%-10u %-6s %9.3f %9.2f %10.2f %12" PRIu64 "\n",
                   channels[c], multifd_compression_name(methods[m]), seconds,
                   b.size / (double)GiB / seconds, cpu,
                   (uint64_t)(wire / MiB));
            fflush(stdout);
        }
    }
    ram_blocks_free();
    munmap(b.src.host, b.size);
    rmdir(b.dir);
    g_free(b.dir);
    return 0;
}
