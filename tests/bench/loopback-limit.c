/*
 * The loopback TCP limit: one stream, 4 MiB writes and reads, the reader
 * in a child process.  Prints GiB/s.  Used by bench-migration.py, so the
 * migration figures stand next to what the wire itself can do.
 *
 * Usage: loopback-limit [GIB]
 */
#include "qemu/osdep.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define CHUNK (4 * MiB)

int main(int argc, char **argv)
{
    uint64_t total = (argc > 1 ? strtoull(argv[1], NULL, 0) : 4) * GiB;
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
        while (c >= 0 && read(c, buf, CHUNK) > 0) {
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
