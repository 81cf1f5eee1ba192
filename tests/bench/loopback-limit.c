/*
 * The loopback TCP limit: one stream, 4 MiB writes and reads, the reader
 * in a child process.  Prints GiB/s.  Used by bench-migration.py, so the
 * migration figures stand next to what the wire itself can do.  With
 * "fresh", the reader reads into never-touched memory of the whole size,
 * as a migration destination does, so its kernel faults and zeroes each
 * page first: the limit for a destination whose memory is fresh.
 *
 * Usage: loopback-limit [GIB [fresh]]
 */
#include "qemu/osdep.h"

#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define CHUNK (4 * MiB)

int main(int argc, char **argv)
{
    uint64_t total = (argc > 1 ? strtoull(argv[1], NULL, 0) : 4) * GiB;
    bool fresh = argc > 2 && !strcmp(argv[2], "fresh");
    struct sockaddr_in addr = { .sin_family = AF_INET,
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(addr);
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    char *buf = g_malloc(CHUNK);
    pid_t pid;
    int fd;

    memset(buf, 0x5a, CHUNK);
    if (srv < 0 || bind(srv, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(srv, 1) < 0 || getsockname(srv, (struct sockaddr *)&addr, &alen) < 0) {
        perror("loopback-limit: listen");
        return 1;
    }
    pid = fork();
    if (pid == 0) {
        int c = accept(srv, NULL, NULL);
        uint8_t *dst = fresh ? mmap(NULL, total, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                             : NULL;
        uint64_t off = 0;
        ssize_t n;

        if (dst == MAP_FAILED) {
            perror("loopback-limit: mmap");
            _exit(1);
        }
        while (c >= 0 &&
               (n = read(c, fresh ? (void *)(dst + off) : (void *)buf,
                         fresh ? MIN(CHUNK, total - off) : CHUNK)) > 0) {
            off += n;
            if (fresh && off == total) {
                off = 0;
            }
        }
        _exit(0);
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        perror("loopback-limit: connect");
        return 1;
    }
    int64_t start = g_get_monotonic_time();
    for (uint64_t sent = 0; sent < total;) {
        ssize_t n = write(fd, buf, CHUNK);
        if (n < 0) {
            perror("loopback-limit: write");
            return 1;
        }
        sent += n;
    }
    close(fd);
    waitpid(pid, NULL, 0);
    double secs = (g_get_monotonic_time() - start) / 1e6;
    printf("%.2f\n", total / (double)GiB / secs);
    g_free(buf);
    return 0;
}
