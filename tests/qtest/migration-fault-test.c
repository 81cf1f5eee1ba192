/*
 * Faults on the source during a save: the file system fills up, and
 * migrate_cancel lands anywhere from the first instant of a save to
 * after its end.  Each way RAM leaves is covered: the main stream,
 * mapped-ram slots written by the migration thread, mapped-ram slots
 * written by multifd channels, and (for cancel) multifd channels to a
 * destination (multifd without mapped-ram has no file to fill: it
 * needs a socket).  Whatever happens, the source must not crash, must
 * say what happened, and must run its VM on with its memory intact; a
 * new migrate must then work.
 *
 * These are the paths where a thread still writing into a structure
 * meets another that frees it (the multifd channels and the RAM state
 * of a failed or cancelled save), so they are meant to run under ASan
 * too, as make check does.
 */
#include "qemu/osdep.h"
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include "migration/framework.h"

/*
 * 256M with a 128M working set, as in the reproducer of the mapped-ram
 * use-after-free.  Before the cancel sweep the guest writes its whole
 * working set (in 1 s at this rate), so that a save's first pass is
 * long enough for several cancels to land while the threads that write
 * it are busy.
 */
#define FAULT_VM "-m 256M -guest stress,ws=128M,rate=128M"
#define FAULT_VM_DATA (128 * MiB)
/* The size of the file system that fills up: the first pass overflows it. */
#define SMALL_FS_SIZE (16 * MiB)
/* Failed saves in a row on one source: each is a chance for the race. */
#define DISK_FULL_ATTEMPTS 8
/*
 * Cancel delays per mode, from 0 to 5/4 of a timed save (see
 * sweep_delay_us); one more save then completes before its cancel.
 */
#define SWEEP_POINTS 12
#define SAVE_TIMEOUT_MS 60000

typedef struct SaveMode {
    bool mapped_ram;
    unsigned channels;          /* multifd channels, 0: no multifd */
    bool socket;                /* to a destination, not to a file */
} SaveMode;

static const SaveMode mode_plain = { 0 };
static const SaveMode mode_mapped_ram = { .mapped_ram = true };
static const SaveMode mode_mapped_ram_multifd = {
    .mapped_ram = true, .channels = 4,
};
static const SaveMode mode_multifd_socket = { .channels = 4, .socket = true };

/*
 * The file system that fills up: a SMALL_FS_SIZE tmpfs mounted in a
 * mount namespace of this test program alone, which the vmig processes
 * it starts inherit.  Without one, /dev/full stands in for the main
 * stream, as fd: (file: truncates its file, which a character device
 * refuses), and fails its first write; mapped-ram needs file:, so those
 * cases are skipped.
 */
static char *small_fs_dir;
static char *small_fs_why;      /* why there is none */

/* Write all of @text to an existing file (of /proc: no temporary file). */
static bool write_text(const char *path, const char *text)
{
    ssize_t len = strlen(text);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    bool ok = fd >= 0 && write(fd, text, len) == len;

    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

/*
 * A mount namespace of our own: directly as root, otherwise as root of
 * a new user namespace that maps only our own user and group.
 */
static bool unshare_mounts(void)
{
    g_autofree char *uid_map = g_strdup_printf("0 %u 1", geteuid());
    g_autofree char *gid_map = g_strdup_printf("0 %u 1", getegid());

    if (unshare(CLONE_NEWNS) == 0) {
        return true;
    }
    if (errno != EPERM || unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) {
        return false;
    }
    /* Unprivileged, a group may be mapped only with setgroups denied. */
    return write_text("/proc/self/setgroups", "deny") &&
           write_text("/proc/self/uid_map", uid_map) &&
           write_text("/proc/self/gid_map", gid_map);
}

/* Before any thread exists: unshare() needs a single one. */
static void small_fs_setup(void)
{
    g_autofree char *dir = g_build_filename(qtest_tmpdir(), "small-fs",
                                            NULL);
    g_autofree char *opts = g_strdup_printf("size=%llu", SMALL_FS_SIZE);
    const char *step;
    int err;

    step = "unshare";
    if (!unshare_mounts()) {
        goto fail;
    }
    /* What is mounted here must not propagate to the host's namespace. */
    step = "making / private";
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        goto fail;
    }
    step = "mkdir";
    if (mkdir(dir, 0700) < 0) {
        goto fail;
    }
    step = "mounting a tmpfs";
    if (mount("vmig-small-fs", dir, "tmpfs", MS_NOSUID | MS_NODEV,
              opts) < 0) {
        err = errno;
        rmdir(dir);
        errno = err;
        goto fail;
    }
    small_fs_dir = g_steal_pointer(&dir);
    return;

fail:
    small_fs_why = g_strdup_printf("no private tmpfs (%s: %s)", step,
                                   g_strerror(errno));
}

/* Unmount before libqtest removes its temporary directory. */
static void small_fs_teardown(void)
{
    if (small_fs_dir) {
        umount2(small_fs_dir, MNT_DETACH);
        rmdir(small_fs_dir);
    }
}

static void set_mode(QTestState *s, const SaveMode *m)
{
    if (m->mapped_ram) {
        mig_set_cap(s, "mapped-ram", true);
    }
    if (m->channels) {
        mig_set_cap(s, "multifd", true);
        mig_set_param(s, "multifd-channels", m->channels);
    }
}

/* The VM runs (after cont, if the save completed) and its memory checks. */
static void check_source_runs(QTestState *src, const char *status)
{
    if (!strcmp(status, "completed")) {
        mig_assert_runstate(src, "postmigrate");
        qtest_qmp_assert_ok(src, "{\"execute\": \"cont\"}");
    }
    mig_assert_runstate(src, "running");
    mig_wait_guest_progress(src, 1 * MiB);
    mig_assert_guest_ok(src);
}

static char *error_desc(QTestState *s)
{
    g_autoptr(JsonNode) q = mig_query(s);

    return g_strdup(qtest_get_str(q, "error-desc"));
}

/* ---- the file system fills up ---- */

/* "fd:NAME" of /dev/full, handed to @s. */
static char *dev_full_uri(QTestState *s)
{
    int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
    g_autoptr(JsonNode) r = NULL;

    g_assert_cmpint(fd, >=, 0);
    r = qtest_qmp_fds(s, &fd, 1, "{\"execute\": \"getfd\", "
                      "\"arguments\": {\"fdname\": \"full\"}}");
    g_assert_true(json_object_has_member(qtest_obj(r), "return"));
    close(fd);
    return g_strdup("fd:full");
}

static void test_disk_full(const void *opaque)
{
    static const char *const failed[] = { "failed", NULL };
    const SaveMode *m = opaque;
    g_autoptr(QTestState) src = NULL;

    if (!small_fs_dir && m->mapped_ram) {
        g_autofree char *why = g_strdup_printf("%s, and /dev/full cannot "
                                               "be a file: for mapped-ram",
                                               small_fs_why);

        g_test_skip(why);
        return;
    }
    src = mig_start_vm(FAULT_VM);
    set_mode(src, m);
    mig_set_fast(src);
    mig_wait_guest_progress(src, 2 * SMALL_FS_SIZE);
    for (int i = 0; i < DISK_FULL_ATTEMPTS; i++) {
        g_autofree char *path = NULL;
        g_autofree char *uri = NULL;
        g_autofree char *st = NULL;
        g_autofree char *desc = NULL;

        if (small_fs_dir) {
            path = g_build_filename(small_fs_dir, "full.img", NULL);
            uri = g_strdup_printf("file:%s", path);
        } else {
            uri = dev_full_uri(src);
        }
        mig_migrate(src, uri);
        st = mig_wait_status(src, failed, SAVE_TIMEOUT_MS);
        desc = error_desc(src);
        if (!strstr(desc, "write") || !strstr(desc, g_strerror(ENOSPC))) {
            g_error("error-desc '%s' does not name the write and '%s'", desc,
                    g_strerror(ENOSPC));
        }
        check_source_runs(src, st);
        if (path) {
            g_assert_cmpint(unlink(path), ==, 0);
        }
    }
}

/* ---- migrate_cancel at every point of a save ---- */

/*
 * migrate_cancel at any point: accepted, or refused once the whole
 * stream is out (status `device`: the destination decides the end).
 */
static void cancel_anytime(QTestState *src)
{
    g_autoptr(JsonNode) r = qtest_qmp(src, "{\"execute\": \"migrate_cancel\"}");
    JsonObject *o = qtest_obj(r);

    if (json_object_has_member(o, "error")) {
        JsonObject *e = json_object_get_object_member(o, "error");

        g_assert_nonnull(strstr(json_object_get_string_member(e, "desc"),
                                "too late to cancel"));
    }
}

/* Where one save goes: a fresh file, or a fresh destination. */
typedef struct SaveTarget {
    char *uri;
    char *path;                 /* a file */
    QTestState *dst;            /* a destination that stays up on failure */
} SaveTarget;

static QTestState *start_loader(const SaveMode *m, const char *uri)
{
    QTestState *dst = mig_start_dst("defer", FAULT_VM);

    set_mode(dst, m);
    qtest_qmp_assert_ok(dst, "{\"execute\": \"migrate-incoming\", "
                        "\"arguments\": {\"uri\": \"%s\", "
                        "\"exit-on-error\": false}}", uri);
    return dst;
}

static void target_open(SaveTarget *t, const SaveMode *m)
{
    if (m->socket) {
        t->uri = mig_sock_uri();
        t->dst = start_loader(m, t->uri);
    } else {
        t->path = qtest_tmp_path("save", "img");
        t->uri = g_strdup_printf("file:%s", t->path);
    }
}

/*
 * After the source ended with @status.  A destination of a completed
 * migration runs the VM; one of a cancelled migration never got the
 * stream's end (a cancel after that is ignored), so it has not
 * completed, and it quits cleanly.  A completed file is loaded when
 * @load_file.
 */
static void target_close(SaveTarget *t, const SaveMode *m,
                         const char *status, bool load_file)
{
    bool completed = !strcmp(status, "completed");

    if (t->dst && completed) {
        mig_check_loaded(t->dst);
    } else if (t->dst) {
        g_autofree char *st = mig_status(t->dst);

        g_assert_cmpstr(st, !=, "completed");
        qtest_kill(t->dst, SIGTERM);
        g_assert_cmpint(qtest_wait_exit(t->dst, 20000), ==, 0);
    } else if (completed && load_file) {
        g_autoptr(QTestState) dst = start_loader(m, t->uri);

        mig_check_loaded(dst);
    }
    if (t->dst) {
        qtest_quit(t->dst);
    }
    if (t->path) {
        unlink(t->path);
    }
    g_free(t->path);
    g_free(t->uri);
}

/* For save_and_cancel: let the save complete, then cancel. */
#define CANCEL_AFTER_END (-1)

/*
 * One save, cancelled @delay_us after migrate returned.  Returns the
 * final status: cancelled, or completed if the save ended first (a
 * cancel after the end must change nothing).
 */
static char *save_and_cancel(QTestState *src, const SaveMode *m,
                             int64_t delay_us, bool load_file)
{
    static const char *const done[] = { "cancelled", "completed", NULL };
    static const char *const completed[] = { "completed", NULL };
    bool after_end = delay_us == CANCEL_AFTER_END;
    SaveTarget t = { 0 };
    char *st;

    target_open(&t, m);
    mig_migrate(src, t.uri);
    if (after_end) {
        g_free(mig_wait_status(src, completed, SAVE_TIMEOUT_MS));
    } else {
        /* The delay is what the test varies: no status to wait for. */
        g_usleep(delay_us);
    }
    cancel_anytime(src);
    st = mig_wait_status(src, after_end ? completed : done, SAVE_TIMEOUT_MS);
    target_close(&t, m, st, load_file);
    check_source_runs(src, st);
    return st;
}

/*
 * Point @i of the sweep, from 0 to 5/4 of a save of @save_ms.  The
 * points are denser early on: the first pass carries nearly all the
 * data, later passes only what the guest dirtied meanwhile, so that is
 * where the threads that write it are busiest.
 */
static int64_t sweep_delay_us(int64_t save_ms, int i)
{
    int64_t n = SWEEP_POINTS - 1;

    return save_ms * 1000 * 5 / 4 * i * i / (n * n);
}

static void test_cancel_sweep(const void *opaque)
{
    const SaveMode *m = opaque;
    g_autoptr(QTestState) src = mig_start_vm(FAULT_VM);
    unsigned cancelled = 0;
    int64_t save_ms;

    set_mode(src, m);
    mig_set_fast(src);
    mig_wait_guest_progress(src, FAULT_VM_DATA);
    /* One whole save sets the scale, whatever the machine. */
    g_free(save_and_cancel(src, m, CANCEL_AFTER_END, false));
    {
        g_autoptr(JsonNode) q = mig_query(src);

        save_ms = MAX(qtest_get_int(q, "total-time"), 1);
    }
    for (int i = 0; i < SWEEP_POINTS; i++) {
        int64_t delay_us = sweep_delay_us(save_ms, i);
        g_autofree char *st = NULL;

        g_test_message("cancel %" PRId64 " us after migrate", delay_us);
        st = save_and_cancel(src, m, delay_us, false);
        cancelled += !strcmp(st, "cancelled");
    }
    g_test_message("a save took %" PRId64 " ms; of %d cancels from 0 to "
                   "%" PRId64 " ms, %u cancelled the save", save_ms,
                   SWEEP_POINTS, save_ms * 5 / 4, cancelled);
    /* After all those cancels, a save that completes and loads. */
    g_free(save_and_cancel(src, m, CANCEL_AFTER_END, true));
}

int main(int argc, char **argv)
{
    int ret;

    small_fs_setup();
    /*
     * For the vmig processes: glibc fills freed memory with a pattern,
     * and keeps no per-thread cache of freed blocks (it would leave them
     * intact), so that a use after free crashes outside ASan too.  ASan
     * ignores this and finds them itself.
     */
    g_setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0:"
             "glibc.malloc.perturb=165", FALSE);
    g_test_init(&argc, &argv, NULL);
    if (small_fs_why) {
        g_test_message("%s: disk-full saves go to /dev/full", small_fs_why);
    }
    g_test_add_data_func("/migration/fault/disk-full/plain",
                         &mode_plain, test_disk_full);
    g_test_add_data_func("/migration/fault/disk-full/mapped-ram",
                         &mode_mapped_ram, test_disk_full);
    g_test_add_data_func("/migration/fault/disk-full/mapped-ram-multifd",
                         &mode_mapped_ram_multifd, test_disk_full);
    g_test_add_data_func("/migration/fault/cancel-sweep/plain",
                         &mode_plain, test_cancel_sweep);
    g_test_add_data_func("/migration/fault/cancel-sweep/mapped-ram",
                         &mode_mapped_ram, test_cancel_sweep);
    g_test_add_data_func("/migration/fault/cancel-sweep/mapped-ram-multifd",
                         &mode_mapped_ram_multifd, test_cancel_sweep);
    g_test_add_data_func("/migration/fault/cancel-sweep/multifd-socket",
                         &mode_multifd_socket, test_cancel_sweep);
    ret = g_test_run();
    small_fs_teardown();
    return ret;
}
