/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer target for the migration stream loader.  One input is one
 * whole incoming stream, loaded the way "-incoming" loads it: the real
 * listener, incoming thread, qemu_loadvm_state() and every handler under
 * it, into a small machine built once (256 KiB of RAM, one vCPU that runs
 * the stress program, and, when the input asks for it, a VFIO device
 * whose transport is kept in memory: fuzz-vfio-device.c).
 *
 * Input: byte 0 sets up the destination (FUZZ_OPT_* in the header), the
 * rest is the stream.  It reaches the loader through a memfd opened as
 * a "file:" (any capability), or through one end of a socketpair given
 * as "fd:" while a thread writes the stream into the other end and
 * reads what the return path sends back.  tests/fuzz/make-seeds.py
 * saves real streams in this form.  Each run starts from the same
 * state: the incoming side clears RAM before a load, capabilities are
 * set from byte 0, and the device is created afresh.
 *
 * Besides crashes, hangs, leaks and sanitizer reports, the target fails
 * on two results (docs/devel/fuzzing.rst):
 *   truncated  a load that completed although the stream lacked state
 *              this destination needs (RAM, global state, guest state,
 *              the device's);
 *   utf8       an error-desc (what query-migrate shows) that is not
 *              valid UTF-8.
 * VMIG_FUZZ_IGNORE=truncated,utf8 turns them off; VMIG_FUZZ_LOG=1
 * prints what became of each input.
 */
#include "qemu/osdep.h"
#include <sys/mman.h>
#include "qemu/cutils.h"
#include "qemu/log.h"
#include "qemu/main-loop.h"
#include "qemu/trace.h"
#include "system/cpus.h"
#include "system/guest.h"
#include "system/hostmem.h"
#include "system/runstate.h"
#include "migration/misc.h"
#include "migration/options.h"
#include "migration/migration.h"
#include "fuzz-common.h"
#include "fuzz-migration-stream.h"
#include "fuzz-vfio-device.h"

#define FUZZ_DEVICE_ID "dev0"

/* Set up once; the fuzzer's thread holds the BQL between runs. */
static int input_fd = -1;       /* memfd: the stream of a file: run */
static int log_fd = -1;         /* memfd: the log, read after each run */
static bool check_truncated = true;
static bool check_utf8 = true;

static void write_all(int fd, const uint8_t *data, size_t size)
{
    for (size_t done = 0; done < size;) {
        ssize_t n = pwrite(fd, data + done, size - done, done);

        if (n <= 0) {
            fuzz_fail("writing the input into a memfd: %s", strerror(errno));
        }
        done += n;
    }
}

/* The trace output of the run: a string to g_free. */
static char *read_log(void)
{
    off_t len = lseek(log_fd, 0, SEEK_END);
    char *text;

    if (len < 0) {
        fuzz_fail("reading the log: %s", strerror(errno));
    }
    text = g_malloc(len + 1);
    if (pread(log_fd, text, len, 0) != len) {
        fuzz_fail("reading the log: %s", strerror(errno));
    }
    text[len] = '\0';
    return text;
}

/* ---- the destination's settings ---- */

static const struct {
    uint8_t opt;
    MigrationCapability cap;
} fuzz_caps[] = {
    /* In an order that each is allowed when set after the ones before. */
    { FUZZ_OPT_RETURN_PATH, MIGRATION_CAPABILITY_RETURN_PATH },
    { FUZZ_OPT_SWITCHOVER_ACK, MIGRATION_CAPABILITY_SWITCHOVER_ACK },
    { FUZZ_OPT_MULTIFD, MIGRATION_CAPABILITY_MULTIFD },
    { FUZZ_OPT_MAPPED_RAM, MIGRATION_CAPABILITY_MAPPED_RAM },
};

/* As QMP would; false for a combination QMP refuses. */
static bool set_capabilities(uint8_t opts)
{
    for (int i = ARRAY_SIZE(fuzz_caps); i-- > 0;) {
        migrate_set_capability(fuzz_caps[i].cap, false, &error_abort);
    }
    for (unsigned i = 0; i < ARRAY_SIZE(fuzz_caps); i++) {
        if ((opts & fuzz_caps[i].opt) &&
            !migrate_set_capability(fuzz_caps[i].cap, true, NULL)) {
            return false;
        }
    }
    return true;
}

/* ---- socket transport: the source's end ---- */

/* ---- checks ---- */

/*
 * What a completed load must have seen: the loader's trace point names
 * each START and FULL section it loads, and the device says whether it
 * left RESUMING with a state.  (Nothing reports a PART or END section,
 * so a missing RAM end goes unnoticed here.)
 */
static const char *missing_state(const char *log, Object *dev)
{
    static const char *const needed[][2] = {
        { "loadvm_section START 'ram' ", "the RAM section" },
        { "loadvm_section FULL 'globalstate' ", "the global state" },
        { "loadvm_section FULL 'guest' ", "the guest state" },
    };

    for (unsigned i = 0; i < ARRAY_SIZE(needed); i++) {
        if (!strstr(log, needed[i][0])) {
            return needed[i][1];
        }
    }
    if (dev && !fuzz_vfio_device_loaded(dev)) {
        return "the state of device " FUZZ_DEVICE_ID;
    }
    return NULL;
}

static void check_result(const char *status, const char *desc,
                         const char *log, Object *dev)
{
    const char *missing;

    if (strcmp(status, "completed") && strcmp(status, "failed")) {
        fuzz_fail("the load ended in status '%s'", status);
    }
    if (check_utf8 && desc && !g_utf8_validate(desc, -1, NULL)) {
        g_autofree char *escaped = qemu_escape_str(desc);

        fuzz_fail("error-desc is not valid UTF-8: %s", escaped);
    }
    if (check_truncated && !strcmp(status, "completed")) {
        missing = missing_state(log, dev);
        if (missing) {
            fuzz_fail("a stream without %s loaded as completed", missing);
        }
    }
}

/* ---- libFuzzer entry points ---- */

static void parse_ignore(const char *list)
{
    g_auto(GStrv) names = g_strsplit(list ? list : "", ",", -1);

    for (unsigned i = 0; names[i]; i++) {
        if (!strcmp(names[i], "truncated")) {
            check_truncated = false;
        } else if (!strcmp(names[i], "utf8")) {
            check_utf8 = false;
        } else if (names[i][0]) {
            fuzz_fail("VMIG_FUZZ_IGNORE: unknown check '%s' (truncated, "
                      "utf8)", names[i]);
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    g_autofree char *log_path = NULL;
    Error *err = NULL;

    fuzz_common_init();
    parse_ignore(g_getenv("VMIG_FUZZ_IGNORE"));

    fuzz_machine_init(true);
    migration_init();
    migration_incoming_set_autostart(false);

    input_fd = memfd_create("fuzz-stream", MFD_CLOEXEC);
    log_fd = memfd_create("fuzz-log", MFD_CLOEXEC);
    if (input_fd < 0 || log_fd < 0) {
        fuzz_fail("memfd_create: %s", strerror(errno));
    }
    log_path = g_strdup_printf("/proc/self/fd/%d", log_fd);
    if (!qemu_log_set_file(log_path, &err) ||
        !trace_enable_pattern("loadvm_section", true)) {
        fuzz_fail("the log (the checks read trace point loadvm_section): "
                  "%s", err ? error_get_pretty(err) : "no such trace point");
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(JsonObject) info = json_object_new();
    g_autofree char *log = NULL;
    MigrationAddress addr = { 0 };
    FuzzPeer *source = NULL;
    const char *status;
    Object *dev = NULL;
    const char *desc;
    uint8_t opts;

    fuzz_set_result(NULL);
    if (size < 1 || !set_capabilities(data[0])) {
        return -1;
    }
    opts = data[0];
    addr.type = opts & FUZZ_OPT_SOCKET ? MIGRATION_ADDRESS_FD
                                       : MIGRATION_ADDRESS_FILE;
    /* The address must suit the capabilities, as vmig checks. */
    if (!migrate_check_address_type(addr.type, NULL)) {
        return -1;
    }
    data++;
    size--;

    if (opts & FUZZ_OPT_DEVICE) {
        dev = fuzz_vfio_device_new(FUZZ_DEVICE_ID);
    }
    if (ftruncate(log_fd, 0) < 0 || ftruncate(input_fd, 0) < 0) {
        fuzz_fail("truncating a memfd: %s", strerror(errno));
    }
    if (addr.type == MIGRATION_ADDRESS_FD) {
        int fd;

        /* The source's end writes the stream, reads the return path. */
        source = fuzz_peer_start(data, size, &fd);
        addr.fd_name = g_strdup_printf("%d", fd);
    } else {
        write_all(input_fd, data, size);
        addr.path = g_strdup_printf("/proc/self/fd/%d", input_fd);
    }

    runstate_set(RUN_STATE_INMIGRATE);
    migration_incoming_start_addr(&addr, false, &error_abort);
    while (migration_incoming_in_progress()) {
        g_main_context_iteration(NULL, TRUE);
    }
    if (source) {
        g_byte_array_unref(fuzz_peer_join(source));
    }

    migration_incoming_query(info);
    status = json_object_get_string_member(info, "status");
    desc = json_object_get_string_member_with_default(info, "error-desc",
                                                      NULL);
    log = read_log();
    if (fuzz_verbose()) {
        g_autofree char *escaped = desc ? qemu_escape_str(desc) : NULL;

        fuzz_log("options 0x%02x, %zu bytes: %s%s%s\n%s", opts, size, status,
                 desc ? ": " : "", desc ? escaped : "", log);
    }
    check_result(status, desc, log, dev);
    /* For the replay driver: a seed must load to completion. */
    fuzz_set_result(!g_strcmp0(status, "completed") ? "ok"
                    : desc ? desc : status);

    if (dev) {
        object_unparent(dev);
    }
    migration_address_clear(&addr);
    return 0;
}
