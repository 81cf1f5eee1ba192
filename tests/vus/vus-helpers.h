/*
 * Helpers of the vfio-user integration tests: a private temporary
 * directory, vfio-user-dma server processes on sockets in it, and clean-up
 * that also runs when an assertion aborts the test program.
 */
#ifndef TESTS_VUS_HELPERS_H
#define TESTS_VUS_HELPERS_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "hw/vfio-user/client.h"
#include "hw/misc/vfio-user-dma-regs.h"

#define VUS_TEST_MAX_SERVERS 8

typedef struct VusServer {
    GPid pid;
    char *socket;
    char *log;          /* the server's stderr, for diagnostics */
} VusServer;

/* Create the temp dir and the abort-time clean-up; call first in main(). */
void vus_test_init(int *argc, char ***argv);
/* A path inside the temp dir (g_free it). */
char *vus_test_path(const char *name);
/* The path of a built program, from the environment variable @env. */
const char *vus_test_bin(const char *env);

/*
 * Start vfio-user-dma with the extra @args (NULL-terminated) on a fresh
 * socket and wait until it accepts connections (5 s at most).
 */
VusServer *vus_server_start(const char *first_arg, ...) G_GNUC_NULL_TERMINATED;
/* The same on @socket (whatever is there: the server decides). */
VusServer *vus_server_start_at(const char *socket, const char *first_arg, ...)
    G_GNUC_NULL_TERMINATED;
/*
 * Stop it with SIGTERM (SIGKILL after 5 s) and reap it; fails the test
 * unless it exited cleanly.  Returns the wait status.
 */
int vus_server_stop(VusServer *s);
/* SIGKILL it and reap it. */
void vus_server_kill(VusServer *s);

/* Connect with a short timeout; asserts success. */
VFIOUserProxy *vus_connect(VusServer *s, const VFIOUserConnectOptions *opts);

/* BAR0 register access; asserts success. */
uint64_t vus_reg_read(VFIOUserProxy *p, uint32_t reg);
void vus_reg_write(VFIOUserProxy *p, uint32_t reg, uint64_t val);
void vus_set_state(VFIOUserProxy *p, uint32_t state);
uint32_t vus_get_state(VFIOUserProxy *p);

/*
 * Save the whole stream of a device in PRE_COPY / STOP_COPY (whichever
 * state it is in) until a short read; returns the bytes appended.
 */
size_t vus_drain(VFIOUserProxy *p, GByteArray *out);

/* Run a program to completion (10 s bound); returns its exit status. */
int vus_run(char **out, char **err, const char *first_arg, ...)
    G_GNUC_NULL_TERMINATED;

#endif
