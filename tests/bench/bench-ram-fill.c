/*
 * How fast can a migration destination put arriving pages into guest RAM
 * it has never touched?  The data arrives in runs of 256 pages (1 MiB,
 * ram.c's longest run); each way below fills SIZE of fresh anonymous
 * memory from one such run held in a cache-hot buffer, which stands for
 * the socket's data:
 *
 *   write-4k     written in place, memory without huge pages: each 4 KiB
 *                page faults, is zeroed, then overwritten
 *   write-thp    the same with MADV_HUGEPAGE, as vmig maps guest RAM: one
 *                fault and one zeroing per 2 MiB
 *   uffd-copy    the memory registered with userfaultfd (MISSING), each
 *                run copied to a bounce buffer (the receive) and placed
 *                with one UFFDIO_COPY: no zeroing, but 4 KiB pages and
 *                two copies
 *   uffd-copy-thp  the same over MADV_HUGEPAGE memory (UFFDIO_COPY still
 *                places 4 KiB pages there)
 *
 * and, as the machine's limit for the same bytes, a copy into a reused,
 * already-faulted buffer.  Ways run interleaved, round after round; each
 * cell is the median [min-max] of the rounds in GiB/s.
 *
 * Usage: bench-ram-fill [MIB [ROUNDS]]   (default 1024 MiB, 5 rounds)
 */
#include "qemu/osdep.h"

#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define RUN (256 * 4096)

enum { WRITE_4K, WRITE_THP, UFFD_COPY, UFFD_COPY_THP, REUSED, N_WAYS };
static const char *const way_name[N_WAYS] = {
    "write-4k", "write-thp", "uffd-copy", "uffd-copy-thp", "limit (reused)",
};

static uint8_t *src, *bounce;

static int uffd_open(void)
{
    int fd = syscall(__NR_userfaultfd, O_CLOEXEC);
    struct uffdio_api api = { .api = UFFD_API };

    if (fd < 0) {
        fd = syscall(__NR_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
    }
    if (fd >= 0 && ioctl(fd, UFFDIO_API, &api) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* One fill of @size bytes the given way; seconds, or -1 if not here. */
static double fill(int way, size_t size, uint8_t *reused)
{
    bool uffd_way = way == UFFD_COPY || way == UFFD_COPY_THP;
    uint8_t *dst = reused;
    int uffd = -1;
    int64_t start;

    if (way != REUSED) {
        dst = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (dst == MAP_FAILED) {
            perror("bench-ram-fill: mmap");
            exit(1);
        }
        madvise(dst, size, way == WRITE_THP || way == UFFD_COPY_THP ?
                MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    }
    if (uffd_way) {
        struct uffdio_register reg = {
            .range = { .start = (uintptr_t)dst, .len = size },
            .mode = UFFDIO_REGISTER_MODE_MISSING,
        };

        uffd = uffd_open();
        if (uffd < 0 || ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
            if (uffd >= 0) {
                close(uffd);
            }
            munmap(dst, size);
            return -1;
        }
    }
    start = g_get_monotonic_time();
    for (size_t off = 0; off < size; off += RUN) {
        if (uffd_way) {
            struct uffdio_copy c = { .dst = (uintptr_t)(dst + off),
                                     .src = (uintptr_t)bounce, .len = RUN };

            memcpy(bounce, src, RUN);
            if (ioctl(uffd, UFFDIO_COPY, &c) < 0) {
                perror("bench-ram-fill: UFFDIO_COPY");
                exit(1);
            }
        } else {
            memcpy(dst + off, src, RUN);
        }
    }
    double secs = (g_get_monotonic_time() - start) / 1e6;

    if (uffd >= 0) {
        close(uffd);
    }
    if (way != REUSED) {
        munmap(dst, size);
    }
    return secs;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    size_t size = (argc > 1 ? strtoull(argv[1], NULL, 0) : 1024) * MiB;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    double *rate, *v;
    uint8_t *reused;

    size = DIV_ROUND_UP(MAX(size, RUN), RUN) * RUN;
    rounds = MAX(rounds, 1);
    rate = g_new0(double, rounds * N_WAYS);
    v = g_new0(double, rounds);
    src = aligned_alloc(4096, RUN);
    bounce = aligned_alloc(4096, RUN);
    reused = aligned_alloc(4096, size);
    for (size_t i = 0; i < RUN; i++) {
        src[i] = g_random_int();
    }
    memset(reused, 1, size);

    for (int r = 0; r < rounds; r++) {
        for (int w = 0; w < N_WAYS; w++) {
            /* Rotate who goes first: freed memory favours the later ones. */
            int way = (w + r) % N_WAYS;
            double secs = fill(way, size, reused);

            rate[r * N_WAYS + way] = secs < 0 ? -1 : size / (double)GiB / secs;
        }
    }

    printf("fill %zu MiB of fresh anonymous memory from 1 MiB runs, "
           "%d rounds (GiB/s, median [min-max])\n", (size_t)(size / MiB), rounds);
    for (int w = 0; w < N_WAYS; w++) {
        for (int r = 0; r < rounds; r++) {
            v[r] = rate[r * N_WAYS + w];
        }
        qsort(v, rounds, sizeof(v[0]), cmp_double);
        if (v[0] < 0) {
            printf("  %-15s  not here (no userfaultfd)\n", way_name[w]);
            continue;
        }
        printf("  %-15s  %5.2f [%.2f-%.2f]\n", way_name[w], v[rounds / 2],
               v[0], v[rounds - 1]);
    }
    free(src);
    free(bounce);
    free(reused);
    g_free(rate);
    g_free(v);
    return 0;
}
