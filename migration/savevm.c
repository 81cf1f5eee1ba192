/*
 * The main stream: the handler registry and the source's writer.  The
 * destination's loader is in loadvm.c; the layout in migration/savevm.h.
 */
#include "qemu/osdep.h"
#include "migration/timeline.h"
#include <sys/mman.h>
#include <sys/stat.h>
#include "qemu/cutils.h"
#include "qemu/main-loop.h"
#include "qemu/uuid.h"
#include "system/ramblock.h"
#include "system/guest.h"
#include "system/cpus.h"
#include "system/system.h"
#include "migration/register.h"
#include "migration/vmstate.h"
#include "migration/options.h"
#include "migration/multifd.h"
#include "migration/migration.h"
#include "migration/savevm.h"
#include "migration/savevm-internal.h"
#include "migration/trace.h"

/* Registered with the BQL, before any migration; read without it after. */
static SaveStateEntry *savevm_handlers;

SaveStateEntry *savevm_handlers_first(void)
{
    return savevm_handlers;
}

SaveStateEntry *savevm_find_se(const char *idstr, uint32_t instance_id)
{
    for (SaveStateEntry *se = savevm_handlers; se; se = se->next) {
        if (!strcmp(se->idstr, idstr) && se->instance_id == instance_id) {
            return se;
        }
    }
    return NULL;
}

static int register_se(const char *idstr, uint32_t instance_id, int version,
                       const SaveVMHandlers *ops,
                       const VMStateDescription *vmsd, void *opaque)
{
    SaveStateEntry *se, **tail;

    if (strlen(idstr) >= sizeof(se->idstr) ||
        savevm_find_se(idstr, instance_id)) {
        return -EEXIST;
    }
    se = g_new0(SaveStateEntry, 1);
    g_strlcpy(se->idstr, idstr, sizeof(se->idstr));
    se->instance_id = instance_id;
    se->version_id = version;
    se->ops = ops;
    se->vmsd = vmsd;
    se->opaque = opaque;
    /* Keep registration order: RAM first, then devices, as registered. */
    for (tail = &savevm_handlers; *tail; tail = &(*tail)->next) {
    }
    *tail = se;
    return 0;
}

int register_savevm_live(const char *idstr, uint32_t instance_id,
                         int version, const SaveVMHandlers *ops,
                         void *opaque)
{
    return register_se(idstr, instance_id, version, ops, NULL, opaque);
}

int vmstate_register(uint32_t instance_id, const VMStateDescription *vmsd,
                     void *opaque)
{
    return register_se(vmsd->name, instance_id, vmsd->version_id, NULL, vmsd,
                       opaque);
}

static void unregister_se(const char *idstr, uint32_t instance_id)
{
    for (SaveStateEntry **p = &savevm_handlers; *p; p = &(*p)->next) {
        SaveStateEntry *se = *p;

        if (!strcmp(se->idstr, idstr) && se->instance_id == instance_id) {
            *p = se->next;
            g_free(se);
            return;
        }
    }
}

void unregister_savevm(const char *idstr, uint32_t instance_id)
{
    unregister_se(idstr, instance_id);
}

void vmstate_unregister(uint32_t instance_id, const VMStateDescription *vmsd)
{
    unregister_se(vmsd->name, instance_id);
}

/* ---------------------------------------------------------------- */
/* Source                                                           */
/* ---------------------------------------------------------------- */

bool qemu_savevm_state_prepare(Error **errp)
{
    for (SaveStateEntry *se = savevm_handlers; se; se = se->next) {
        if (se->ops && se->ops->save_prepare &&
            !se->ops->save_prepare(se->opaque, errp)) {
            return false;
        }
    }
    return true;
}

void qemu_savevm_send_header(QEMUFile *f, uint32_t caps,
                             const uint8_t uuid[16])
{
    uint32_t nblocks = 0;

    qemu_put_be32(f, MIG_STREAM_MAGIC);
    qemu_put_be32(f, MIG_STREAM_VERSION);

    qemu_put_byte(f, MIG_SECTION_CONFIGURATION);
    qemu_put_be32(f, TARGET_PAGE_SIZE);
    qemu_put_counted_string(f, MIG_MACHINE_TYPE);
    qemu_put_counted_string(f, guest_program_name());
    qemu_put_be32(f, cpus_count());
    qemu_put_be32(f, caps);
    qemu_put_buffer(f, uuid, 16);
    if (caps & MIG_CONFIG_FLAG_VM_UUID) {
        qemu_put_buffer(f, qemu_uuid, 16);
    }
    RAMBLOCK_FOREACH(rb) {
        nblocks++;
    }
    qemu_put_be32(f, nblocks);
    RAMBLOCK_FOREACH(rb) {
        qemu_put_counted_string(f, rb->idstr);
        qemu_put_be64(f, rb->size);
        qemu_put_be64(f, rb->gpa);
    }
}

void qemu_savevm_send_command(QEMUFile *f, MigCommand cmd, uint16_t len,
                              const void *data)
{
    trace(savevm_send_command, "command %d, %u bytes", cmd, len);
    qemu_put_byte(f, MIG_SECTION_COMMAND);
    qemu_put_be16(f, cmd);
    qemu_put_be16(f, len);
    qemu_put_buffer(f, data, len);
}

static unsigned savevm_handler_count(void)
{
    unsigned n = 0;

    for (SaveStateEntry *se = savevm_handlers; se; se = se->next) {
        n++;
    }
    return n;
}

static void put_section_header(QEMUFile *f, SaveStateEntry *se, uint8_t type)
{
    trace(savevm_section_start, "'%s' section %u type %u", se->idstr,
          se->section_id, type);
    qemu_put_byte(f, type);
    qemu_put_be32(f, se->section_id);
    if (type == MIG_SECTION_START || type == MIG_SECTION_FULL) {
        qemu_put_counted_string(f, se->idstr);
        qemu_put_be32(f, se->instance_id);
        qemu_put_be32(f, se->version_id);
    }
}

static void put_section_footer(QEMUFile *f, SaveStateEntry *se)
{
    trace(savevm_section_end, "'%s' section %u, stream at %" PRIu64,
          se->idstr, se->section_id, qemu_file_transferred(f));
    qemu_put_byte(f, MIG_SECTION_FOOTER);
    qemu_put_be32(f, se->section_id);
}

int qemu_savevm_state_setup(QEMUFile *f, Error **errp)
{
    uint32_t section_id = 0;

    trace(savevm_state_setup, "%u handlers", savevm_handler_count());

    for (SaveStateEntry *se = savevm_handlers; se; se = se->next) {
        int ret;

        se->section_id = section_id++;
        se->active = !se->ops || !se->ops->is_active ||
                     se->ops->is_active(se->opaque);
        se->setup_called = false;
        if (!se->active || !se_is_iterative(se)) {
            continue;
        }
        put_section_header(f, se, MIG_SECTION_START);
        se->setup_called = true;
        ret = se->ops->save_setup ? se->ops->save_setup(f, se->opaque, errp)
                                  : 0;
        if (ret < 0) {
            error_prepend(errp, "section '%s': setup failed: ", se->idstr);
            return ret;
        }
        put_section_footer(f, se);
        if (!qemu_file_check(f, errp)) {
            return -EIO;
        }
    }
    return 0;
}

static bool se_has_postcopy(const SaveStateEntry *se)
{
    return se->ops && se->ops->has_postcopy &&
           se->ops->has_postcopy(se->opaque);
}

int qemu_savevm_state_iterate(QEMUFile *f, bool postcopy, Error **errp)
{
    int all_done = 1;

    for (SaveStateEntry *se = savevm_handlers; se; se = se->next) {
        int ret;

        if (!se->active || !se_is_iterative(se) ||
            !se->ops->save_live_iterate ||
            (postcopy && !se_has_postcopy(se))) {
            continue;
        }
        if (se->ops->is_active_iterate &&
            !se->ops->is_active_iterate(se->opaque)) {
            continue;
        }
        /*
         * After a postcopy switch the pages asked for are never held
         * back: RAM's iterate sends them first, whatever the limit.
         */
        if (migration_rate_limit_exceeded() &&
            !(postcopy && migration_postcopy_has_requests())) {
            return 0;
        }
        put_section_header(f, se, MIG_SECTION_PART);
        ret = se->ops->save_live_iterate(f, se->opaque);
        put_section_footer(f, se);
        if (ret < 0) {
            if (!qemu_file_check(f, errp)) {
                error_prepend(errp, "section '%s': ", se->idstr);
            } else {
                error_setg_errno(errp, -ret, "section '%s': iteration failed",
                                 se->idstr);
            }
            return ret;
        }
        if (!qemu_file_check(f, errp)) {
            return -EIO;
        }
        if (ret == 0) {
            all_done = 0;
        }
    }
    return all_done;
}

static uint64_t pending(bool exact)
{
    uint64_t total = 0;

    for (SaveStateEntry *se = savevm_handlers; se; se = se->next) {
        if (!se->active || !se->ops) {
            continue;
        }
        if (exact && se->ops->state_pending_exact) {
            se->ops->state_pending_exact(se->opaque, &total);
        } else if (!exact && se->ops->state_pending_estimate) {
            se->ops->state_pending_estimate(se->opaque, &total);
        }
    }
    trace(savevm_pending, "%s %" PRIu64 " bytes", exact ? "exact" : "estimate",
          total);
    return total;
}

uint64_t qemu_savevm_pending_estimate(void)
{
    return pending(false);
}

uint64_t qemu_savevm_pending_exact(void)
{
    return pending(true);
}

/* One handler's save_live_complete_precopy_thread, run on its own thread. */
typedef struct CompleteThread {
    SaveStateEntry *se;
    SaveLiveCompletePrecopyThreadData data;
    GThread *thread;
    Error *err;
    bool ok;
} CompleteThread;

static gpointer complete_thread_fn(gpointer opaque)
{
    CompleteThread *ct = opaque;

    trace(savevm_complete_thread, "'%s' starts", ct->se->idstr);
    ct->ok = ct->se->ops->save_live_complete_precopy_thread(&ct->data,
                                                            &ct->err);
    trace(savevm_complete_thread, "'%s' %s", ct->se->idstr,
          ct->ok ? "done" : "failed");
    if (!ct->ok && !ct->err) {
        error_setg(&ct->err, "section '%s': device state thread failed",
                   ct->se->idstr);
    }
    return NULL;
}

static GPtrArray *complete_threads_start(void)
{
    GPtrArray *threads = g_ptr_array_new();

    if (!migrate_multifd()) {
        return threads;
    }
    for (SaveStateEntry *se = savevm_handlers; se; se = se->next) {
        CompleteThread *ct;

        if (!se->active || !se->ops ||
            !se->ops->save_live_complete_precopy_thread) {
            continue;
        }
        ct = g_new0(CompleteThread, 1);
        ct->se = se;
        ct->data.idstr = se->idstr;
        ct->data.instance_id = se->instance_id;
        ct->data.handler_opaque = se->opaque;
        ct->thread = g_thread_new("mig/devstate", complete_thread_fn, ct);
        g_ptr_array_add(threads, ct);
    }
    return threads;
}

/* Join every thread; the first failure goes to @errp.  Frees @threads. */
static bool complete_threads_join(GPtrArray *threads, Error **errp)
{
    bool ok = true;

    for (guint i = 0; i < threads->len; i++) {
        CompleteThread *ct = g_ptr_array_index(threads, i);

        g_thread_join(ct->thread);
        if (!ct->ok && ok) {
            error_propagate(errp, ct->err);
            ct->err = NULL;
            ok = false;
        }
        error_free(ct->err);
        g_free(ct);
    }
    g_ptr_array_free(threads, true);
    if (!ok) {
        return false;
    }
    /* Every device state packet must be on the wire before the EOF. */
    return !migrate_multifd() || multifd_send_sync(errp);
}

static int complete_sections(QEMUFile *f, bool postcopy, Error **errp);

int qemu_savevm_state_complete(QEMUFile *f, Error **errp)
{
    GPtrArray *threads;
    Error *local_err = NULL;
    int ret;

    trace(savevm_state_complete, "stream at %" PRIu64, qemu_file_transferred(f));
    /* Every PART is out: destinations may start loading side channels. */
    qemu_savevm_send_command(f, MIG_CMD_SWITCHOVER_START, 0, NULL);
    threads = complete_threads_start();
    ret = complete_sections(f, false, errp);
    if (threads->len) {
        mig_timeline_phase("device-threads");
    }
    /* Join even after a failure: the threads use the handlers' state. */
    if (!complete_threads_join(threads, ret < 0 ? &local_err : errp)) {
        error_free(local_err);
        return ret < 0 ? ret : -EIO;
    }
    if (ret < 0) {
        return ret;
    }
    qemu_put_byte(f, MIG_SECTION_EOF);
    if (qemu_fflush(f) < 0) {
        qemu_file_check(f, errp);
        return -EIO;
    }
    return 0;
}

/*
 * Every END section (in @postcopy, except those of the handlers that go
 * on after the switch), then every FULL section.
 */
static int complete_sections(QEMUFile *f, bool postcopy, Error **errp)
{
    for (SaveStateEntry *se = savevm_handlers; se; se = se->next) {
        int ret;

        if (!se->active || !se->setup_called ||
            !se->ops->save_live_complete_precopy ||
            (postcopy && se_has_postcopy(se))) {
            continue;
        }
        mig_timeline_phase(strcmp(se->idstr, "ram") ? "device-state"
                                                    : "final-ram");
        put_section_header(f, se, MIG_SECTION_END);
        ret = se->ops->save_live_complete_precopy(f, se->opaque);
        put_section_footer(f, se);
        /*
         * The handler reports through the QEMUFile: its own message is
         * what the user needs (e.g. which device failed and how), so
         * take it before falling back to the errno.
         */
        if (!qemu_file_check(f, errp)) {
            error_prepend(errp, "section '%s': ", se->idstr);
            return ret < 0 ? ret : -EIO;
        }
        if (ret < 0) {
            error_setg_errno(errp, -ret, "section '%s': completion failed",
                             se->idstr);
            return ret;
        }
    }
    for (SaveStateEntry *se = savevm_handlers; se; se = se->next) {
        bool ok = true;

        if (!se->active || !se_has_full_state(se)) {
            continue;
        }
        mig_timeline_phase("config");
        put_section_header(f, se, MIG_SECTION_FULL);
        if (se->vmsd) {
            ok = vmstate_save_state(f, se->vmsd, se->opaque, errp);
        } else if (se->ops->save_state(f, se->opaque, errp) < 0) {
            ok = false;
            /* A handler that reported through the QEMUFile only. */
            if (errp && !*errp && qemu_file_check(f, errp)) {
                error_setg(errp, "saving the state failed");
            }
        }
        if (!ok) {
            error_prepend(errp, "section '%s': ", se->idstr);
            return -EINVAL;
        }
        put_section_footer(f, se);
        if (!qemu_file_check(f, errp)) {
            error_prepend(errp, "section '%s': ", se->idstr);
            return -EIO;
        }
    }
    return 0;
}

int qemu_savevm_send_postcopy_package(QEMUFile *f, Error **errp)
{
    int fd = memfd_create("vmig-postcopy-package", MFD_CLOEXEC);
    g_autofree uint8_t *buf = NULL;
    QEMUFile *pkg;
    struct stat st;
    int ret;

    if (fd < 0) {
        error_setg_errno(errp, errno, "postcopy: cannot create the package");
        return -errno;
    }
    /* A file, so that the writer never blocks and the size is known. */
    pkg = qemu_file_new_output(mig_channel_new_fd(fd, "postcopy package",
                                                  NULL));
    qemu_savevm_send_command(pkg, MIG_CMD_SWITCHOVER_START, 0, NULL);
    ret = complete_sections(pkg, true, errp);
    if (ret == 0) {
        qemu_savevm_send_command(pkg, MIG_CMD_POSTCOPY_RUN, 0, NULL);
        if (qemu_fflush(pkg) < 0) {
            qemu_file_check(pkg, errp);
            ret = -EIO;
        }
    }
    if (ret == 0 && fstat(fd, &st) < 0) {
        error_setg_errno(errp, errno, "postcopy: cannot size the package");
        ret = -EIO;
    }
    if (ret == 0 && st.st_size > MIG_PACKAGE_MAX_LEN) {
        error_setg(errp, "postcopy: the device state (%" PRId64 " bytes) "
                   "exceeds the package limit of %u bytes",
                   (int64_t)st.st_size, MIG_PACKAGE_MAX_LEN);
        ret = -E2BIG;
    }
    if (ret == 0) {
        buf = g_malloc(st.st_size);
        if (pread(fd, buf, st.st_size, 0) != st.st_size) {
            error_setg_errno(errp, errno, "postcopy: cannot read the package");
            ret = -EIO;
        }
    }
    if (ret == 0) {
        uint8_t len[4];

        trace(savevm_send_command, "package of %" PRId64 " bytes",
              (int64_t)st.st_size);
        stl_be(len, st.st_size);
        qemu_put_byte(f, MIG_SECTION_COMMAND);
        qemu_put_be16(f, MIG_CMD_PACKAGED);
        qemu_put_be16(f, sizeof(len));
        qemu_put_buffer(f, len, sizeof(len));
        qemu_put_buffer(f, buf, st.st_size);
        if (!qemu_file_check(f, errp)) {
            ret = -EIO;
        }
    }
    qemu_fclose(pkg);
    return ret;
}

int qemu_savevm_state_complete_postcopy(QEMUFile *f, Error **errp)
{
    for (SaveStateEntry *se = savevm_handlers; se; se = se->next) {
        int ret;

        if (!se->active || !se->setup_called || !se_has_postcopy(se) ||
            !se->ops->save_live_complete_postcopy) {
            continue;
        }
        put_section_header(f, se, MIG_SECTION_END);
        ret = se->ops->save_live_complete_postcopy(f, se->opaque);
        put_section_footer(f, se);
        if (!qemu_file_check(f, errp)) {
            error_prepend(errp, "section '%s': ", se->idstr);
            return ret < 0 ? ret : -EIO;
        }
        if (ret < 0) {
            error_setg_errno(errp, -ret, "section '%s': postcopy completion "
                             "failed", se->idstr);
            return ret;
        }
    }
    qemu_put_byte(f, MIG_SECTION_EOF);
    if (qemu_fflush(f) < 0) {
        qemu_file_check(f, errp);
        return -EIO;
    }
    return 0;
}

void qemu_savevm_state_cleanup(void)
{
    trace(savevm_state_cleanup, "%u handlers", savevm_handler_count());
    for (SaveStateEntry *se = savevm_handlers; se; se = se->next) {
        if (se->setup_called && se->ops->save_cleanup) {
            se->ops->save_cleanup(se->opaque);
        }
        se->setup_called = false;
    }
}

/*
 * The configuration word: capabilities that must agree on both sides,
 * and flags that describe the stream (validate-uuid: the VM UUID
 * follows).  One table for what the source sends and what the
 * destination checks.
 */
static const struct {
    uint32_t bit;
    const char *name;
    bool (*enabled)(void);
    bool must_agree;
} config_caps[] = {
    { MIG_CONFIG_CAP_RETURN_PATH, "return-path", migrate_return_path, true },
    { MIG_CONFIG_CAP_SWITCHOVER_ACK, "switchover-ack", migrate_switchover_ack,
      true },
    { MIG_CONFIG_CAP_MULTIFD, "multifd", migrate_multifd, true },
    { MIG_CONFIG_CAP_MAPPED_RAM, "mapped-ram", migrate_mapped_ram, true },
    { MIG_CONFIG_CAP_POSTCOPY_RAM, "postcopy-ram", migrate_postcopy_ram,
      true },
    { MIG_CONFIG_CAP_POSTCOPY_PREEMPT, "postcopy-preempt",
      migrate_postcopy_preempt, true },
    { MIG_CONFIG_FLAG_VM_UUID, "validate-uuid", migrate_validate_uuid, false },
};

uint32_t migration_config_caps(void)
{
    uint32_t caps = 0;

    for (unsigned i = 0; i < ARRAY_SIZE(config_caps); i++) {
        if (config_caps[i].enabled()) {
            caps |= config_caps[i].bit;
        }
    }
    return caps;
}

bool migration_config_caps_check(uint32_t theirs, uint32_t ours,
                                 Error **errp)
{
    for (unsigned i = 0; i < ARRAY_SIZE(config_caps); i++) {
        bool src = theirs & config_caps[i].bit;
        bool dst = ours & config_caps[i].bit;

        if (config_caps[i].must_agree && src != dst) {
            error_setg(errp, "configuration mismatch: capability '%s' is %s "
                       "on the source, %s here", config_caps[i].name,
                       src ? "on" : "off", dst ? "on" : "off");
            return false;
        }
    }
    return true;
}
