/*
 * Helpers of the VFIO migration tests: vfio-user-dma device servers as
 * child processes, and the vmig command line that uses them.
 */
#ifndef VFIO_TEST_FRAMEWORK_H
#define VFIO_TEST_FRAMEWORK_H

#include "qemu/osdep.h"
#include "libqtest.h"

/* Small device memory, so that every test takes seconds. */
#define VFIO_TEST_MEM_SIZE "16M"

typedef struct VfioServer {
    GPid pid;
    char *socket;
    char *log;          /* its stderr, for vfio_server_spawn()'s servers */
} VfioServer;

/*
 * Start vfio-user-dma (found next to VMIG_BINARY's build tree) on a
 * fresh socket with the arguments in $VFIO_TEST_SERVER_ARGS (the suites
 * run once more with --strict-regions, and once with --strict-regions
 * --no-extensions), then @extra (may be ""), and wait (bounded) until it
 * listens.
 */
VfioServer *vfio_server_start(const char *extra);
/*
 * Whether $VFIO_TEST_SERVER_ARGS makes plain 0.9.2 servers
 * (--no-extensions): without the P2P states, a VM with several devices
 * cannot migrate, and says so.
 */
bool vfio_servers_plain(void);
/*
 * Start contrib's @device server (e.g. "vfio-user-virtio-net") on a
 * fresh socket with @args, its stderr in srv->log, and wait (bounded)
 * until it listens.
 */
VfioServer *vfio_server_spawn(const char *device, const char *args);
/* The server's stderr so far ("" when none was kept). */
char *vfio_server_log(VfioServer *srv);
/* Kill with @sig and reap (bounded; SIGKILL after a while). */
void vfio_server_kill(VfioServer *srv, int sig);
/* Stop if still running, reap and free. */
void vfio_server_free(VfioServer *srv);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VfioServer, vfio_server_free)

/*
 * "-device vfio-user-pci,socket=...,id=devN[,@props]" for each of the
 * @n servers, plus "-guest dma,..." driving them (the stress guest runs
 * too, from the migration framework's machine).
 */
char *vfio_vm_args(VfioServer **srvs, unsigned n, const char *props);
/* The same with @guest ("-guest ...") instead of the default guest. */
char *vfio_vm_args_guest(const char *guest, VfioServer **srvs, unsigned n,
                         const char *props);
/* Whether the server still runs (it did not exit or die). */
bool vfio_server_alive(VfioServer *srv);

/* qom-get of a device's migration-state. */
char *vfio_mig_state(QTestState *s, const char *id);
/* qom-get of a string / integer property of device @id. */
char *vfio_dev_get_str(QTestState *s, const char *id, const char *prop);
int64_t vfio_dev_get_int(QTestState *s, const char *id, const char *prop);
/* query-migrate's vfio.transferred (0 before device data was sent). */
int64_t vfio_transferred(QTestState *s);
/* x-guest-verify's "ok" (and its detail when it failed, in *@detail). */
bool vfio_guest_verify(QTestState *s, char **detail);
/* Wait (bounded) until the guest's dma program made @rounds more trips. */
void vfio_wait_dma_progress(QTestState *s, int64_t pages);
/* The same for guest program @name (its pages-written in x-query-guest). */
void vfio_wait_program_progress(QTestState *s, const char *name,
                                int64_t pages);

#endif
