/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The destination's loader of the main stream: the configuration, the
 * sections in their places, commands, load threads.  Layout in
 * migration/savevm.h; the handler registry in savevm.c.
 */
#include "qemu/osdep.h"
#include <sys/mman.h>
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
#include "migration/postcopy-ram.h"
#include "migration/ram.h"
#include "migration/trace.h"

/* Bound on the number of sections a stream may open. */
#define MIG_MAX_SECTIONS 65536

/* Destination: the UUID of the stream being loaded (incoming thread). */
static uint8_t loadvm_uuid[16];
static bool loadvm_uuid_valid;

bool qemu_loadvm_stream_uuid(uint8_t uuid[16])
{
    memcpy(uuid, loadvm_uuid, 16);
    return loadvm_uuid_valid;
}

static bool check_u32(const char *what, uint32_t theirs, uint32_t ours,
                      Error **errp)
{
    if (theirs != ours) {
        error_setg(errp, "configuration mismatch: %s is %u on the source, %u "
                   "here", what, theirs, ours);
        return false;
    }
    return true;
}

static bool check_str(const char *what, const char *theirs, const char *ours,
                      Error **errp)
{
    if (strcmp(theirs, ours)) {
        g_autofree char *name = qemu_escape_str(theirs);

        error_setg(errp, "configuration mismatch: %s is '%s' on the source, "
                   "'%s' here", what, name, ours);
        return false;
    }
    return true;
}

/*
 * validate-uuid: the source VM's UUID must be this VM's.  Like QEMU, a
 * destination started without -uuid only warns: its user may not know
 * the UUID (an old saved stream, say).
 */
static bool load_vm_uuid(QEMUFile *f, Error **errp)
{
    uint8_t theirs[16];
    char theirs_str[UUID_STR_LEN], ours_str[UUID_STR_LEN];

    if (!qemu_get_buffer(f, theirs, sizeof(theirs))) {
        qemu_file_check(f, errp);
        return false;
    }
    qemu_uuid_unparse(theirs, theirs_str);
    qemu_uuid_unparse(qemu_uuid, ours_str);
    if (!qemu_uuid_set) {
        warn_report("validate-uuid: the source VM's UUID is %s, and this VM "
                    "has none (no -uuid): not checked", theirs_str);
        return true;
    }
    if (memcmp(theirs, qemu_uuid, sizeof(theirs))) {
        error_setg(errp, "validate-uuid: the source VM's UUID is %s, this "
                   "VM's is %s: refusing a stream meant for another VM",
                   theirs_str, ours_str);
        return false;
    }
    return true;
}

static bool load_configuration(QEMUFile *f, uint32_t our_caps, Error **errp)
{
    char str[256];
    uint32_t nblocks, ours = 0, caps, value;

    if (qemu_get_byte(f) != MIG_SECTION_CONFIGURATION) {
        if (!qemu_file_check(f, errp)) {
            return false;
        }
        error_setg(errp, "the stream has no configuration section");
        return false;
    }
    value = qemu_get_be32(f);
    if (!qemu_file_check(f, errp) ||
        !check_u32("the page size", value, TARGET_PAGE_SIZE, errp)) {
        return false;
    }
    qemu_get_counted_string(f, str);
    if (!qemu_file_check(f, errp) ||
        !check_str("the machine type", str, MIG_MACHINE_TYPE, errp)) {
        return false;
    }
    qemu_get_counted_string(f, str);
    if (!qemu_file_check(f, errp) ||
        !check_str("the guest program", str, guest_program_name(), errp)) {
        return false;
    }
    value = qemu_get_be32(f);
    if (!qemu_file_check(f, errp) ||
        !check_u32("the vCPU count", value, cpus_count(), errp)) {
        return false;
    }
    caps = qemu_get_be32(f);
    if (!qemu_file_check(f, errp)) {
        return false;
    }
    if (caps & ~(MIG_CONFIG_CAP_KNOWN | MIG_CONFIG_FLAGS_KNOWN)) {
        error_setg(errp, "the source uses unknown capability bits 0x%x",
                   caps & ~(MIG_CONFIG_CAP_KNOWN | MIG_CONFIG_FLAGS_KNOWN));
        return false;
    }
    loadvm_uuid_valid = qemu_get_buffer(f, loadvm_uuid, 16);
    if (!qemu_file_check(f, errp)) {
        return false;
    }
    if ((caps & MIG_CONFIG_FLAG_VM_UUID) && !load_vm_uuid(f, errp)) {
        return false;
    }
    if (!migration_config_caps_check(caps, our_caps, errp)) {
        return false;
    }
    RAMBLOCK_FOREACH(rb) {
        ours++;
    }
    nblocks = qemu_get_be32(f);
    if (!qemu_file_check(f, errp) ||
        !check_u32("the number of RAM blocks", nblocks, ours, errp)) {
        return false;
    }
    for (uint32_t i = 0; i < nblocks; i++) {
        RAMBlock *rb;
        uint64_t size, gpa;

        qemu_get_counted_string(f, str);
        size = qemu_get_be64(f);
        gpa = qemu_get_be64(f);
        if (!qemu_file_check(f, errp)) {
            return false;
        }
        rb = ram_block_find(str);
        if (!rb) {
            g_autofree char *name = qemu_escape_str(str);

            error_setg(errp, "configuration mismatch: RAM block '%s' of the "
                       "source does not exist here", name);
            return false;
        }
        if (size != rb->size) {
            error_setg(errp, "configuration mismatch: RAM block '%s' is %"
                       PRIu64 " bytes on the source, %" PRIu64 " here",
                       str, size, rb->size);
            return false;
        }
        if (gpa != rb->gpa) {
            error_setg(errp, "configuration mismatch: RAM block '%s' is at "
                       "0x%" PRIx64 " on the source, 0x%" PRIx64 " here",
                       str, gpa, rb->gpa);
            return false;
        }
    }
    return true;
}

static bool load_footer(QEMUFile *f, SaveStateEntry *se, uint32_t section_id,
                        Error **errp)
{
    uint8_t mark = qemu_get_byte(f);
    uint32_t id = qemu_get_be32(f);

    if (!qemu_file_check(f, errp)) {
        error_prepend(errp, "section '%s': ", se->idstr);
        return false;
    }
    if (mark != MIG_SECTION_FOOTER || id != section_id) {
        error_setg(errp, "section '%s' (id %u): bad footer (0x%02x, id %u): "
                   "the loader read too much or too little", se->idstr,
                   section_id, mark, id);
        return false;
    }
    return true;
}

static int load_section_payload(QEMUFile *f, SaveStateEntry *se,
                                int version_id, uint32_t section_id,
                                Error **errp)
{
    int ret = 0;

    if (se->vmsd) {
        if (!vmstate_load_state(f, se->vmsd, se->opaque, version_id, errp)) {
            error_prepend(errp, "section '%s': ", se->idstr);
            ret = -EINVAL;
        }
    } else if (!se->ops->load_state) {
        error_setg(errp, "section '%s' cannot be loaded here", se->idstr);
        ret = -EINVAL;
    } else {
        ret = se->ops->load_state(f, se->opaque, version_id, errp);
        if (ret < 0) {
            /* The handler's own message, the stream's, or the errno. */
            if (errp && !*errp && qemu_file_check(f, errp)) {
                error_setg_errno(errp, -ret, "load failed");
            }
            error_prepend(errp, "section '%s': ", se->idstr);
        }
    }
    if (ret < 0) {
        return ret;
    }
    if (!qemu_file_check(f, errp)) {
        error_prepend(errp, "section '%s': ", se->idstr);
        return -EIO;
    }
    return load_footer(f, se, section_id, errp) ? 0 : -EINVAL;
}

/*
 * The loader's record of one handler's sections: opened by START (an
 * iterative handler, continued by PART and closed by END) or by FULL (a
 * non-iterative one); an iterative handler with save_state adds one FULL
 * under its START's id, after its END.
 */
typedef struct LoadSection {
    SaveStateEntry *se;
    uint32_t section_id;
    uint32_t version_id;
    bool started;               /* START loaded */
    bool ended;                 /* END loaded */
    bool full;                  /* FULL loaded */
} LoadSection;

/*
 * One load of a stream, on the incoming thread: what has arrived so far,
 * so that a section out of its place is refused at once and a stream
 * that leaves anything out is refused at its end.
 */
typedef struct LoadvmState {
    QEMUFile *f;
    MigrationIncomingState *mis;
    GHashTable *by_id;          /* section id -> LoadSection (owned) */
    GHashTable *by_se;          /* SaveStateEntry -> its LoadSection */
    bool switchover_started;    /* SWITCHOVER_START loaded */
    /* postcopy-ram: the commands seen so far, in their order */
    bool postcopy_advised;
    bool postcopy_listening;
    bool in_package;            /* f is the package's, not the stream's */
    bool postcopy_ran;          /* POSTCOPY_RUN: the VM runs here */
} LoadvmState;

static bool se_has_postcopy(const SaveStateEntry *se)
{
    return se->ops && se->ops->has_postcopy &&
           se->ops->has_postcopy(se->opaque);
}

/* Every iterative section is in: handlers load what comes by other ways. */
static int load_switchover_start(LoadvmState *lv, Error **errp)
{
    if (lv->switchover_started) {
        error_setg(errp, "a second SWITCHOVER_START");
        return -EINVAL;
    }
    lv->switchover_started = true;
    for (SaveStateEntry *se = savevm_handlers_first(); se; se = se->next) {
        if (se->ops && se->ops->switchover_start &&
            se->ops->switchover_start(se->opaque, errp) < 0) {
            error_prepend(errp, "section '%s': switchover start: ",
                          se->idstr);
            return -EINVAL;
        }
    }
    return 0;
}

/* POSTCOPY_RAM_DISCARD: str block, then (be64 offset, be64 length)s. */
static int load_postcopy_discard(LoadvmState *lv, const uint8_t *data,
                                 uint16_t len, Error **errp)
{
    char id[256];
    uint8_t idlen = len ? data[0] : 0;
    RAMBlock *rb;

    if (!lv->postcopy_advised || lv->postcopy_listening) {
        error_setg(errp, "postcopy: a RAM discard %s",
                   lv->postcopy_listening ? "after LISTEN" : "without ADVISE");
        return -EINVAL;
    }
    if (len < 1 + idlen || (len - 1 - idlen) % 16) {
        error_setg(errp, "postcopy: a RAM discard of %u bytes", len);
        return -EINVAL;
    }
    memcpy(id, data + 1, idlen);
    id[idlen] = '\0';
    rb = ram_block_find(id);
    if (!rb) {
        g_autofree char *name = qemu_escape_bytes(data + 1, idlen);

        error_setg(errp, "postcopy: a RAM discard for unknown block '%s'",
                   name);
        return -EINVAL;
    }
    for (const uint8_t *p = data + 1 + idlen; p < data + len; p += 16) {
        uint64_t offset = (uint64_t)ldl_be(p) << 32 | ldl_be(p + 4);
        uint64_t size = (uint64_t)ldl_be(p + 8) << 32 | ldl_be(p + 12);

        if (!ram_load_discard(rb, offset, size, errp)) {
            return -EINVAL;
        }
    }
    return 0;
}

static int load_postcopy_listen(LoadvmState *lv, Error **errp)
{
    if (!lv->postcopy_advised || lv->postcopy_listening || lv->in_package ||
        lv->switchover_started) {
        error_setg(errp, "postcopy: LISTEN out of place");
        return -EINVAL;
    }
    if (!postcopy_incoming_listen(lv->mis, errp) ||
        !ram_load_postcopy_listen()) {
        if (errp && !*errp) {
            error_setg(errp, "postcopy: no memory for the page buffer");
        }
        return -EINVAL;
    }
    lv->postcopy_listening = true;
    migration_incoming_postcopy_listen(lv->mis);
    return 0;
}

static int loadvm_sections(LoadvmState *lv, Error **errp);

/*
 * PACKAGED: be32 length, then the device state of a postcopy switch,
 * loaded whole from memory before anything else of the stream is read;
 * it ends with POSTCOPY_RUN.
 */
static int load_package(QEMUFile *f, LoadvmState *lv, const uint8_t *data,
                        uint16_t len, Error **errp)
{
    g_autofree uint8_t *buf = NULL;
    uint32_t size;
    QEMUFile *pkg;
    int fd, ret;

    if (len != 4 || lv->in_package || !lv->postcopy_listening ||
        lv->postcopy_ran) {
        error_setg(errp, "postcopy: a package out of place (%u bytes of "
                   "header)", len);
        return -EINVAL;
    }
    size = ldl_be(data);
    if (size > MIG_PACKAGE_MAX_LEN) {
        error_setg(errp, "postcopy: a package of %u bytes exceeds the limit "
                   "of %u", size, MIG_PACKAGE_MAX_LEN);
        return -EINVAL;
    }
    buf = g_malloc(size);
    if (!qemu_get_buffer(f, buf, size)) {
        qemu_file_check(f, errp);
        error_prepend(errp, "postcopy: package: ");
        return -EIO;
    }
    fd = memfd_create("vmig-postcopy-package", MFD_CLOEXEC);
    if (fd < 0 || write(fd, buf, size) != size || lseek(fd, 0, SEEK_SET)) {
        error_setg_errno(errp, errno, "postcopy: cannot keep the package");
        if (fd >= 0) {
            close(fd);
        }
        return -EIO;
    }
    trace(loadvm_command, "package of %u bytes", size);
    pkg = qemu_file_new_input(mig_channel_new_fd(fd, "postcopy package",
                                                 NULL));
    lv->f = pkg;
    lv->in_package = true;
    ret = loadvm_sections(lv, errp);
    lv->in_package = false;
    lv->f = f;
    qemu_fclose(pkg);
    if (ret == 0 && !lv->postcopy_ran) {
        error_setg(errp, "postcopy: the package ends without POSTCOPY_RUN");
        ret = -EINVAL;
    }
    return ret;
}

static int load_postcopy_run(LoadvmState *lv, Error **errp)
{
    if (!lv->in_package || lv->postcopy_ran) {
        error_setg(errp, "postcopy: RUN out of place");
        return -EINVAL;
    }
    lv->postcopy_ran = true;
    migration_incoming_postcopy_run(lv->mis);
    return 0;
}

static int load_command(QEMUFile *f, LoadvmState *lv, Error **errp)
{
    uint16_t cmd = qemu_get_be16(f);
    uint16_t len = qemu_get_be16(f);
    uint8_t data[MIG_CMD_MAX_LEN];

    if (!qemu_file_check(f, errp)) {
        return -EIO;
    }
    if (len > MIG_CMD_MAX_LEN) {
        error_setg(errp, "command %u: length %u exceeds the limit of %u",
                   cmd, len, MIG_CMD_MAX_LEN);
        return -EINVAL;
    }
    if (!qemu_get_buffer(f, data, len)) {
        qemu_file_check(f, errp);
        return -EIO;
    }
    trace(loadvm_command, "command %u, %u bytes", cmd, len);
    switch (cmd) {
    case MIG_CMD_OPEN_RETURN_PATH:
        if (len != 0) {
            break;
        }
        return migration_incoming_rp_open(lv->mis, errp) ? 0 : -EINVAL;
    case MIG_CMD_PING:
        if (len != 4) {
            break;
        }
        return migration_incoming_rp_send(lv->mis, MIG_RP_MSG_PONG, data, 4,
                                          errp) ? 0 : -EIO;
    case MIG_CMD_SWITCHOVER_START:
        if (len != 0) {
            break;
        }
        return load_switchover_start(lv, errp);
    case MIG_CMD_POSTCOPY_ADVISE:
        if (len != 0) {
            break;
        }
        if (lv->postcopy_advised || lv->in_package) {
            error_setg(errp, "postcopy: ADVISE out of place");
            return -EINVAL;
        }
        lv->postcopy_advised = true;
        return postcopy_incoming_advise(errp) ? 0 : -EINVAL;
    case MIG_CMD_POSTCOPY_RAM_DISCARD:
        return load_postcopy_discard(lv, data, len, errp);
    case MIG_CMD_POSTCOPY_LISTEN:
        if (len != 0) {
            break;
        }
        return load_postcopy_listen(lv, errp);
    case MIG_CMD_POSTCOPY_RUN:
        if (len != 0) {
            break;
        }
        return load_postcopy_run(lv, errp);
    case MIG_CMD_PACKAGED:
        return load_package(f, lv, data, len, errp);
    default:
        error_setg(errp, "unknown command %u", cmd);
        return -EINVAL;
    }
    error_setg(errp, "command %u: bad length %u", cmd, len);
    return -EINVAL;
}

static bool loadvm_state_buffer(void *opaque, uint8_t **packet,
                                size_t len, Error **errp)
{
    SaveStateEntry *se = opaque;

    return se->ops->load_state_buffer(se->opaque, packet, len, errp);
}

/* With multifd, device state packets go to the handlers that take them. */
static bool loadvm_consumers_add(Error **errp)
{
    /* mapped-ram: no channel carries device state. */
    if (!migrate_multifd() || migrate_mapped_ram()) {
        return true;
    }
    for (SaveStateEntry *se = savevm_handlers_first(); se; se = se->next) {
        if (!se->ops || !se->ops->load_state_buffer) {
            continue;
        }
        if (!multifd_device_state_consumer_add(se->idstr, se->instance_id,
                                               loadvm_state_buffer, se,
                                               errp)) {
            return false;
        }
        se->consumer_added = true;
    }
    return true;
}

static void loadvm_consumers_del(void)
{
    for (SaveStateEntry *se = savevm_handlers_first(); se; se = se->next) {
        if (se->consumer_added) {
            multifd_device_state_consumer_del(se->idstr, se->instance_id);
            se->consumer_added = false;
        }
    }
}

static int loadvm_setup(QEMUFile *f, MigrationIncomingState *mis,
                        Error **errp)
{
    unsigned ack_needed = 0;

    if (!loadvm_consumers_add(errp)) {
        return -EINVAL;
    }

    bql_lock();
    for (SaveStateEntry *se = savevm_handlers_first(); se; se = se->next) {
        se->load_setup_called = false;
        if (!se->ops || !se->ops->load_setup) {
            continue;
        }
        se->load_setup_called = true;
        if (se->ops->load_setup(f, se->opaque, errp) < 0) {
            error_prepend(errp, "section '%s': load setup failed: ",
                          se->idstr);
            bql_unlock();
            return -EINVAL;
        }
    }
    bql_unlock();
    if (migrate_switchover_ack()) {
        for (SaveStateEntry *se = savevm_handlers_first(); se; se = se->next) {
            if (se->ops && se->ops->switchover_ack_needed &&
                se->ops->switchover_ack_needed(se->opaque)) {
                ack_needed++;
            }
        }
    }
    migration_incoming_set_ack_needed(mis, ack_needed);
    multifd_device_state_gate_open();
    return 0;
}

static void loadvm_cleanup(void)
{
    loadvm_consumers_del();
    multifd_device_state_gate_shut();
    bql_lock();
    for (SaveStateEntry *se = savevm_handlers_first(); se; se = se->next) {
        if (se->load_setup_called && se->ops->load_cleanup) {
            se->ops->load_cleanup(se->opaque);
        }
        se->load_setup_called = false;
    }
    bql_unlock();
}

static const char *section_type_name(uint8_t type)
{
    switch (type) {
    case MIG_SECTION_START:
        return "START";
    case MIG_SECTION_PART:
        return "PART";
    case MIG_SECTION_END:
        return "END";
    default:
        return "FULL";
    }
}

/*
 * Whether the destination must find @se's state in the stream: every
 * handler that takes part in a migration on this side (is_active), for
 * the source sends the state of all of them.
 */
static bool se_expected(const SaveStateEntry *se)
{
    return !se->ops || !se->ops->is_active || se->ops->is_active(se->opaque);
}

/* START or FULL: a section that names its handler. */
static LoadSection *loadvm_section_open(LoadvmState *lv, uint8_t type,
                                        Error **errp)
{
    QEMUFile *f = lv->f;
    uint32_t section_id = qemu_get_be32(f);
    bool start = type == MIG_SECTION_START;
    uint32_t instance_id, version_id;
    SaveStateEntry *se;
    LoadSection *ls;
    char idstr[256];

    qemu_get_counted_string(f, idstr);
    instance_id = qemu_get_be32(f);
    version_id = qemu_get_be32(f);
    if (!qemu_file_check(f, errp)) {
        return NULL;
    }
    se = savevm_find_se(idstr, instance_id);
    if (!se) {
        g_autofree char *name = qemu_escape_str(idstr);

        error_setg(errp, "unknown section '%s' instance %u (id %u)", name,
                   instance_id, section_id);
        return NULL;
    }
    /* From here on the name is a registered one: safe to print. */
    if (version_id > (uint32_t)se->version_id) {
        error_setg(errp, "section '%s': stream version %u is newer than this "
                   "side's %d", idstr, version_id, se->version_id);
        return NULL;
    }
    if (start ? !se_is_iterative(se) : !se_has_full_state(se)) {
        error_setg(errp, "section '%s' (id %u): a %s section, but this "
                   "handler has no %s state", idstr, section_id,
                   section_type_name(type),
                   start ? "iterative" : "non-iterative");
        return NULL;
    }
    if (start == lv->switchover_started) {
        error_setg(errp, "section '%s' (id %u): %s %s SWITCHOVER_START",
                   idstr, section_id, section_type_name(type),
                   start ? "after" : "before");
        return NULL;
    }
    ls = g_hash_table_lookup(lv->by_id, GUINT_TO_POINTER(section_id));
    if (ls && ls->se == se && !start && !ls->full) {
        /* The non-iterative part of an iterative handler, after its END. */
        if (!ls->ended) {
            error_setg(errp, "section '%s' (id %u): FULL before its END",
                       idstr, section_id);
            return NULL;
        }
        trace(loadvm_section, "FULL '%s' id %u (after START)", idstr,
              section_id);
        ls->full = true;
        return ls;
    }
    if (ls) {
        error_setg(errp, "section id %u ('%s') was opened twice", section_id,
                   idstr);
        return NULL;
    }
    ls = g_hash_table_lookup(lv->by_se, se);
    if (ls) {
        error_setg(errp, "section '%s' was opened twice (ids %u and %u)",
                   idstr, ls->section_id, section_id);
        return NULL;
    }
    if (g_hash_table_size(lv->by_id) >= MIG_MAX_SECTIONS) {
        error_setg(errp, "too many sections (more than %u)", MIG_MAX_SECTIONS);
        return NULL;
    }
    ls = g_new0(LoadSection, 1);
    ls->se = se;
    ls->section_id = section_id;
    ls->version_id = version_id;
    ls->started = start;
    ls->full = !start;
    g_hash_table_insert(lv->by_id, GUINT_TO_POINTER(section_id), ls);
    g_hash_table_insert(lv->by_se, se, ls);
    trace(loadvm_section, "%s '%s' id %u", section_type_name(type), idstr,
          section_id);
    return ls;
}

/* PART or END: continues a section that START opened. */
static LoadSection *loadvm_section_continue(LoadvmState *lv, uint8_t type,
                                            Error **errp)
{
    uint32_t section_id = qemu_get_be32(lv->f);
    LoadSection *ls;

    if (!qemu_file_check(lv->f, errp)) {
        return NULL;
    }
    ls = g_hash_table_lookup(lv->by_id, GUINT_TO_POINTER(section_id));
    if (!ls || !ls->started) {
        error_setg(errp, "%s of section id %u, which was never started",
                   section_type_name(type), section_id);
        return NULL;
    }
    if (ls->ended) {
        error_setg(errp, "section '%s' (id %u): %s after its END",
                   ls->se->idstr, section_id, section_type_name(type));
        return NULL;
    }
    /* After a postcopy switch, RAM goes on in PART sections. */
    if ((type == MIG_SECTION_PART) == lv->switchover_started &&
        !(type == MIG_SECTION_PART && lv->postcopy_listening &&
          !lv->in_package && se_has_postcopy(ls->se))) {
        error_setg(errp, "section '%s' (id %u): %s %s SWITCHOVER_START",
                   ls->se->idstr, section_id, section_type_name(type),
                   lv->switchover_started ? "after" : "before");
        return NULL;
    }
    return ls;
}

/*
 * The stream has ended (an EOF marker, or the end of the bytes): name
 * the first thing, in stream order, that a complete stream would have
 * carried before it.  Every expected handler's START comes before
 * SWITCHOVER_START, then every END, then every FULL.
 */
static bool loadvm_check_complete(LoadvmState *lv, const char *end,
                                  Error **errp)
{
    static const char *const phases[] = { "START", NULL, "END", "FULL" };

    for (unsigned p = 0; p < ARRAY_SIZE(phases); p++) {
        if (!phases[p]) {
            if (!lv->switchover_started) {
                error_setg(errp, "incomplete stream: %s, before "
                           "SWITCHOVER_START", end);
                return false;
            }
            continue;
        }
        for (SaveStateEntry *se = savevm_handlers_first(); se; se = se->next) {
            LoadSection *ls = g_hash_table_lookup(lv->by_se, se);
            bool missing;

            if (!se_expected(se)) {
                continue;
            }
            switch (p) {
            case 0:
                missing = se_is_iterative(se) && !(ls && ls->started);
                break;
            case 2:
                missing = se_is_iterative(se) && !ls->ended;
                break;
            default:
                missing = se_has_full_state(se) && !(ls && ls->full);
                break;
            }
            if (missing) {
                error_setg(errp, "incomplete stream: %s, before the %s "
                           "section of '%s' (instance %u)", end, phases[p],
                           se->idstr, se->instance_id);
                return false;
            }
        }
    }
    return true;
}

static int loadvm_sections(LoadvmState *lv, Error **errp)
{
    QEMUFile *f = lv->f;

    for (;;) {
        LoadSection *ls = NULL;
        uint8_t type;
        int ret;

        if (qemu_file_at_eof(f)) {
            g_autofree char *end = NULL;

            if (lv->in_package) {
                return 0;   /* its end; load_package checks the RUN */
            }
            end = g_strdup_printf(
                "truncated after %" PRIu64 " bytes", qemu_file_transferred(f));

            if (loadvm_check_complete(lv, end, errp)) {
                error_setg(errp, "incomplete stream: %s, before its EOF "
                           "marker", end);
            }
            return -EINVAL;
        }
        type = qemu_get_byte(f);
        if (!qemu_file_check(f, errp)) {
            return -EIO;
        }
        switch (type) {
        case MIG_SECTION_EOF: {
            g_autofree char *end = NULL;

            if (lv->in_package) {
                error_setg(errp, "postcopy: an EOF marker inside the "
                           "package");
                return -EINVAL;
            }
            end = g_strdup_printf(
                "an EOF marker at byte %" PRIu64, qemu_file_transferred(f) - 1);

            return loadvm_check_complete(lv, end, errp) ? 0 : -EINVAL;
        }
        case MIG_SECTION_START:
        case MIG_SECTION_FULL:
            ls = loadvm_section_open(lv, type, errp);
            if (!ls) {
                return -EINVAL;
            }
            break;
        case MIG_SECTION_PART:
        case MIG_SECTION_END:
            ls = loadvm_section_continue(lv, type, errp);
            if (!ls) {
                return -EINVAL;
            }
            break;
        case MIG_SECTION_COMMAND:
            ret = load_command(f, lv, errp);
            if (ret < 0) {
                return ret;
            }
            continue;
        default:
            error_setg(errp, "unknown section type 0x%02x at byte %" PRIu64,
                       type, qemu_file_transferred(f) - 1);
            return -EINVAL;
        }
        /* The version was checked at START and holds for the section. */
        ret = load_section_payload(f, ls->se, ls->version_id, ls->section_id,
                                   errp);
        if (ret < 0) {
            return ret;
        }
        if (type == MIG_SECTION_END) {
            ls->ended = true;
        }
    }
}

/*
 * Postcopy recovery: the stream broke after RUN (*@errp says how).
 * Pause, keeping every page, until a resume of this migration connects
 * to migrate-recover's address; then tell the source what arrived and go
 * on loading from the new stream.  Negative with *@errp set when vmig
 * exits meanwhile or the handshake fails (the caller pauses again, unless
 * vmig exits).
 */
static int loadvm_postcopy_recover(LoadvmState *lv, Error **errp)
{
    Error *reason = NULL;

    error_propagate(&reason, *errp);
    *errp = NULL;
    /* Its channel went with the stream. */
    postcopy_incoming_failed();
    if (!migration_incoming_postcopy_pause(lv->mis, reason)) {
        error_setg(errp, "postcopy: vmig exits while the migration is "
                   "paused");
        return -ECANCELED;
    }
    lv->f = migration_incoming_from_src(lv->mis);
    if (!postcopy_incoming_resume(lv->mis, errp)) {
        error_prepend(errp, "postcopy recovery: ");
        return -EIO;
    }
    migration_incoming_postcopy_resumed(lv->mis);
    return 0;
}

/* ---- Load threads ---- */

/* A load thread's end and its verdict (fired only in this file). */
TRACE_DEFINE(loadvm_load_thread);

typedef struct LoadThread {
    char *name;
    MigrationLoadThreadRun *run;
    MigrationLoadThreadAbort *abort;
    void *opaque;
    GThread *thread;
    bool done;                  /* load_threads_lock */
    bool ok;
    Error *err;                 /* the thread's own, valid once done */
} LoadThread;

/*
 * The incoming thread starts and joins load threads; the lock guards
 * each thread's done flag (and what it publishes with it) and the
 * cond announces a thread that finished.
 */
static GPtrArray *load_threads;
static GMutex load_threads_lock;
static GCond load_threads_cond;
/* The loader (incoming thread) while it runs: for the cancel it watches. */
static MigrationIncomingState *loadvm_mis;

static gpointer load_thread_fn(gpointer opaque)
{
    LoadThread *lt = opaque;
    Error *err = NULL;
    bool ok = lt->run(lt->opaque, &err);

    if (!ok && !err) {
        error_setg(&err, "%s failed", lt->name);
    }
    trace(loadvm_load_thread, "%s: %s%s", lt->name, ok ? "done" : "failed: ",
          ok ? "" : error_get_pretty(err));
    g_mutex_lock(&load_threads_lock);
    lt->ok = ok;
    lt->err = err;
    lt->done = true;
    g_cond_broadcast(&load_threads_cond);
    g_mutex_unlock(&load_threads_lock);
    return NULL;
}

void qemu_loadvm_start_load_thread(const char *name,
                                   MigrationLoadThreadRun *run,
                                   MigrationLoadThreadAbort *abort,
                                   void *opaque)
{
    LoadThread *lt = g_new0(LoadThread, 1);

    lt->name = g_strdup(name);
    lt->run = run;
    lt->abort = abort;
    lt->opaque = opaque;
    if (!load_threads) {
        load_threads = g_ptr_array_new();
    }
    g_ptr_array_add(load_threads, lt);
    lt->thread = g_thread_new("mig/load", load_thread_fn, lt);
}

/*
 * End of the load: wait for every load thread, or, when the load failed
 * (@ret < 0, with @errp set), a thread failed, or the migration was
 * cancelled (a multifd channel failed), abort the others first.  A
 * thread that failed on its own, before any abort, explains the failure
 * best; its error replaces a cancel's.  Returns the load's result.
 * Incoming thread.
 */
static int loadvm_load_threads_finish(int ret, Error **errp)
{
    MigCancel *cancel = loadvm_mis ? migration_incoming_cancel(loadvm_mis)
                                   : NULL;
    Error *first = NULL;
    bool aborted = false;

    if (!load_threads) {
        return ret;
    }
    g_mutex_lock(&load_threads_lock);
    for (;;) {
        bool all_done = true;

        for (guint i = 0; i < load_threads->len; i++) {
            LoadThread *lt = g_ptr_array_index(load_threads, i);

            all_done &= lt->done;
            if (lt->done && !lt->ok && !first && !aborted) {
                first = error_copy(lt->err);
            }
        }
        if (all_done) {
            break;
        }
        if (!aborted && (ret < 0 || first || mig_cancel_fired(cancel))) {
            Error *reason = NULL;

            aborted = true;
            error_setg(&reason, "the incoming migration failed");
            g_mutex_unlock(&load_threads_lock);
            /* A thread that has returned ignores it: its state lives on. */
            for (guint i = 0; i < load_threads->len; i++) {
                LoadThread *lt = g_ptr_array_index(load_threads, i);

                lt->abort(lt->opaque, reason);
            }
            error_free(reason);
            g_mutex_lock(&load_threads_lock);
            continue;
        }
        /* Bounded, so that a cancel is seen even when no thread signals. */
        g_cond_wait_until(&load_threads_cond, &load_threads_lock,
                          g_get_monotonic_time() +
                          100 * G_TIME_SPAN_MILLISECOND);
    }
    g_mutex_unlock(&load_threads_lock);

    for (guint i = 0; i < load_threads->len; i++) {
        LoadThread *lt = g_ptr_array_index(load_threads, i);

        g_thread_join(lt->thread);
        if (!lt->ok && !aborted && !first) {
            first = error_copy(lt->err);
        }
        error_free(lt->err);
        g_free(lt->name);
        g_free(lt);
    }
    g_ptr_array_free(load_threads, true);
    load_threads = NULL;

    if (ret < 0) {
        /* The main stream failed first; the threads were only aborted. */
        error_free(first);
        return ret;
    }
    if (first) {
        error_propagate(errp, first);
        return -EIO;
    }
    if (aborted) {
        error_setg(errp, "the incoming migration was cancelled while device "
                   "state was loading");
        return -ECANCELED;
    }
    return 0;
}

/* The magic, the version and the configuration section. */
static bool loadvm_header(QEMUFile *f, Error **errp)
{
    uint32_t magic = qemu_get_be32(f);
    uint32_t version = qemu_get_be32(f);

    if (!qemu_file_check(f, errp)) {
        return false;
    }
    if (magic != MIG_STREAM_MAGIC) {
        /* A TLS record header: handshake (0x16), version 3.x. */
        bool tls = (magic >> 16) == 0x1603;

        error_setg(errp, "not a vmig migration stream (bad magic 0x%08x, "
                   "expected 0x%08x)%s", magic, MIG_STREAM_MAGIC,
                   tls ? ": the source speaks TLS, set tls-creds here too"
                       : "");
        return false;
    }
    if (version != MIG_STREAM_VERSION) {
        error_setg(errp, "unsupported stream version %u (this side reads %u)",
                   version, MIG_STREAM_VERSION);
        return false;
    }
    return load_configuration(f, migration_config_caps(), errp);
}

int qemu_loadvm_state(QEMUFile *f, MigrationIncomingState *mis, Error **errp)
{
    LoadvmState lv = { .f = f, .mis = mis };
    int ret;

    loadvm_uuid_valid = false;
    if (!loadvm_header(f, errp)) {
        return -EINVAL;
    }
    lv.by_id = g_hash_table_new_full(NULL, NULL, NULL, g_free);
    lv.by_se = g_hash_table_new(NULL, NULL);
    loadvm_mis = mis;
    ret = loadvm_setup(f, mis, errp);
    if (ret == 0) {
        ret = loadvm_sections(&lv, errp);
    }
    while (ret < 0 && lv.postcopy_ran && !lv.in_package &&
           !mig_cancel_fired(migration_incoming_cancel(mis))) {
        ret = loadvm_postcopy_recover(&lv, errp);
        if (ret == 0) {
            ret = loadvm_sections(&lv, errp);
        }
    }
    /*
     * Postcopy: on success every page that never came is zero on the
     * source; RAM is unregistered.  A failure after RUN leaves it
     * registered, so that no vCPU goes on with a page that is not its
     * own (see migration_incoming_shutdown()); before RUN the VM never
     * ran here and RAM is simply let go.
     */
    if (lv.postcopy_advised && (ret == 0 || !lv.postcopy_ran)) {
        postcopy_incoming_end();
    } else if (lv.postcopy_advised) {
        postcopy_incoming_failed();
    }
    /* Load threads use the handlers' state: join before load_cleanup. */
    ret = loadvm_load_threads_finish(ret, errp);
    migration_incoming_load_ended(mis);
    loadvm_cleanup();
    loadvm_mis = NULL;
    g_hash_table_destroy(lv.by_se);
    g_hash_table_destroy(lv.by_id);
    return ret;
}

void qemu_loadvm_approve_switchover(void)
{
    migration_incoming_approve_switchover();
}
