/*
 * The command line: a qemu-system-style parser and the machine set-up
 * order.  Every option is parsed and checked before anything visible
 * happens (no socket, no thread, no pidfile), so a bad option costs
 * nothing but a one-line message and exit status 1.
 */
#include "qemu/osdep.h"
#include <sys/mman.h>
#include "qemu/cutils.h"
#include "qemu/error.h"
#include "qemu/keyval.h"
#include "qemu/log.h"
#include "qemu/main-loop.h"
#include "qemu/trace.h"
#include "qom/object.h"
#include "monitor/qmp.h"
#include "migration/misc.h"
#include "system/cpus.h"
#include "system/guest.h"
#include "system/hostmem.h"
#include "system/ramblock.h"
#include "system/runstate.h"
#include "system/system.h"
#include "system/vl.h"

#include <glib-unix.h>
#include <sys/file.h>
#include <sys/stat.h>

const char *qemu_name;
uint8_t qemu_uuid[16];
bool qemu_uuid_set;

typedef struct VmigConfig {
    uint64_t ram_size;          /* 0: not given */
    unsigned smp;
    char *machine_type;
    char *memory_backend;
    GPtrArray *objects;         /* KeyVal * */
    GPtrArray *devices;         /* KeyVal * */
    GPtrArray *qmp;             /* MonitorArg *: -qmp, -monitor, -mon */
    GHashTable *chardevs;       /* -chardev id -> its monitor address */
    GPtrArray *traces;          /* char * */
    GPtrArray *guests;          /* const char *, -guest in order */
    const char *incoming;
    const char *pidfile;
    const char *logfile;
    bool start_paused;
    bool daemonize;
    int mlock;                  /* mlockall() flags, 0: none */
} VmigConfig;

typedef enum OptAction {
    OPT_CONTINUE,
    OPT_EXIT_OK,                /* help printed */
} OptAction;

typedef struct VmigOption {
    const char *name;
    bool has_arg;
    const char *arg_name;
    const char *help;
    /* Returns false with errp set on a bad value. */
    bool (*parse)(VmigConfig *cfg, const char *arg, OptAction *action,
                  Error **errp);
} VmigOption;

/* ---- Option handlers ---- */

static bool opt_m(VmigConfig *cfg, const char *arg, OptAction *action,
                  Error **errp)
{
    g_autoptr(KeyVal) kv = keyval_parse(arg, "size", "-m", errp);
    uint64_t size = 0;
    const char *s;
    int ret;

    if (!kv) {
        return false;
    }
    s = keyval_get(kv, "size");
    if (!keyval_check_unused(kv, errp)) {
        return false;
    }
    if (!s) {
        error_setg(errp, "-m: missing size");
        return false;
    }
    /* A bare number is in MiB, as in QEMU. */
    ret = qemu_strtosz_suffix(s, 'M', &size);
    if (ret < 0) {
        error_setg(errp, "-m: '%s' is %s", s, ret == -ERANGE ? "too large" :
                   "not a size (use a number with an optional K, M, G or T suffix)");
        return false;
    }
    if (size < TARGET_PAGE_SIZE || size % TARGET_PAGE_SIZE) {
        error_setg(errp, "-m: %s must be a non-zero multiple of %llu bytes",
                   s, TARGET_PAGE_SIZE);
        return false;
    }
    cfg->ram_size = size;
    return true;
}

static bool opt_smp(VmigConfig *cfg, const char *arg, OptAction *action,
                    Error **errp)
{
    g_autoptr(KeyVal) kv = keyval_parse(arg, "cpus", "-smp", errp);
    uint32_t n = 0;

    if (!kv || !keyval_get_u32(kv, "cpus", &n, errp) ||
        !keyval_check_unused(kv, errp)) {
        return false;
    }
    if (n < 1 || n > VMIG_MAX_VCPUS) {
        error_setg(errp, "-smp: cpus=%u is out of range (1 to %d)", n,
                   VMIG_MAX_VCPUS);
        return false;
    }
    cfg->smp = n;
    return true;
}

static bool opt_name(VmigConfig *cfg, const char *arg, OptAction *action,
                     Error **errp)
{
    g_autoptr(KeyVal) kv = NULL;
    bool debug_threads = false;
    const char *name;

    if (!*arg) {
        error_setg(errp, "-name: missing name");
        return false;
    }
    kv = keyval_parse(arg, "guest", "-name", errp);
    if (!kv) {
        return false;
    }
    name = keyval_get(kv, "guest");
    /* Accepted for compatibility: vmig always names its threads. */
    if (!keyval_get_bool(kv, "debug-threads", &debug_threads, errp) ||
        !keyval_check_unused(kv, errp)) {
        return false;
    }
    if (!name || !*name) {
        error_setg(errp, "-name: missing name");
        return false;
    }
    qemu_name = g_strdup(name);
    return true;
}

static bool opt_uuid(VmigConfig *cfg, const char *arg, OptAction *action,
                     Error **errp)
{
    if (!g_uuid_string_is_valid(arg)) {
        error_setg(errp, "-uuid: '%s' is not a UUID (use the form "
                   "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", arg);
        return false;
    }
    for (int i = 0, j = 0; i < 16; i++) {
        if (arg[j] == '-') {
            j++;
        }
        qemu_uuid[i] = g_ascii_xdigit_value(arg[j]) << 4 |
                       g_ascii_xdigit_value(arg[j + 1]);
        j += 2;
    }
    qemu_uuid_set = true;
    return true;
}

static bool opt_accel(VmigConfig *cfg, const char *arg, OptAction *action,
                      Error **errp);

static bool opt_machine(VmigConfig *cfg, const char *arg, OptAction *action,
                        Error **errp)
{
    g_autoptr(KeyVal) kv = keyval_parse(arg, "type", "-machine", errp);
    const char *type, *backend;

    if (!kv) {
        return false;
    }
    type = keyval_get(kv, "type");
    backend = keyval_get(kv, "memory-backend");
    if (type && strcmp(type, "none") && strcmp(type, "help")) {
        error_setg(errp, "-machine: machine type '%s' is not supported: vmig "
                   "emulates no chipset or firmware, its VMs are RAM and "
                   "vCPUs running built-in guest programs (-machine none, "
                   "the default; see -machine help)", type);
        return false;
    }
    if (keyval_has(kv, "accel")) {
        return opt_accel(cfg, keyval_get(kv, "accel"), action, errp);
    }
    if (!keyval_check_unused(kv, errp)) {
        return false;
    }
    if (type && !strcmp(type, "help")) {
        printf("Supported machines are:\n"
               "none                 a machine of RAM and vCPUs running a "
               "built-in guest program (default)\n");
        *action = OPT_EXIT_OK;
        return true;
    }
    g_free(cfg->machine_type);
    cfg->machine_type = g_strdup("none");
    if (backend) {
        g_free(cfg->memory_backend);
        cfg->memory_backend = g_strdup(backend);
    }
    return true;
}

/*
 * Whether @klass is a type the user creates with -device (@parent
 * "device") or with -object (@parent NULL: memory backends, iommufd;
 * anything user-creatable that is neither a device nor a guest program).
 */
static bool user_type_matches(const ObjectClass *klass, const char *parent)
{
    if (!klass || !klass->user_creatable) {
        return false;
    }
    if (parent) {
        return !g_strcmp0(klass->parent, parent);
    }
    return g_strcmp0(klass->parent, "device") &&
           g_strcmp0(klass->parent, "guest-program");
}

static void print_types(const char *parent, const char *title)
{
    g_autoptr(GPtrArray) list = object_class_list(NULL);

    printf("%s:\n", title);
    for (guint i = 0; i < list->len; i++) {
        const ObjectClass *klass = g_ptr_array_index(list, i);
        if (user_type_matches(klass, parent)) {
            printf("  %-24s %s\n", klass->name, klass->desc ? klass->desc : "");
        }
    }
}

/*
 * "help" and "TYPE,help" for -device and -object.  Returns true when it
 * printed help (or failed), false when @arg is a real definition.
 */
static bool type_help(const char *arg, const char *parent, const char *opt,
                      const char *title, OptAction *action, bool *ok,
                      Error **errp)
{
    g_autofree char *type = g_strndup(arg, strcspn(arg, ","));
    const char *rest = arg + strlen(type);
    const ObjectClass *klass;

    *ok = true;
    if (!strcmp(arg, "help") || !strcmp(arg, "?")) {
        print_types(parent, title);
        *action = OPT_EXIT_OK;
        return true;
    }
    if (strcmp(rest, ",help") && strcmp(rest, ",?")) {
        return false;
    }
    klass = object_class_by_name(type);
    if (!user_type_matches(klass, parent)) {
        error_setg(errp, "%s: unknown %s '%s' (use %s help)", opt,
                   !strcmp(opt, "-device") ? "driver" : "type", type, opt);
        *ok = false;
        return true;
    }
    object_class_print_props(klass, stdout);
    *action = OPT_EXIT_OK;
    return true;
}

/* QEMU's rule for ids: a letter, then letters, digits, '-', '.', '_'. */
static bool check_id(const char *opt, const char *id, Error **errp)
{
    if (!g_ascii_isalpha(id[0])) {
        error_setg(errp, "%s: id '%s' must start with a letter", opt, id);
        return false;
    }
    for (const char *p = id; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            error_setg(errp, "%s: id '%s' may only contain letters, digits, "
                       "'-', '.' and '_'", opt, id);
            return false;
        }
    }
    return true;
}

static bool opt_object(VmigConfig *cfg, const char *arg, OptAction *action,
                       Error **errp)
{
    KeyVal *kv;
    bool ok;

    if (type_help(arg, NULL, "-object", "Available object types",
                  action, &ok, errp)) {
        return ok;
    }
    kv = keyval_parse(arg, "qom-type", "-object", errp);
    if (!kv) {
        return false;
    }
    if (!keyval_get(kv, "id")) {
        error_setg(errp, "-object %s: parameter 'id' is missing",
                   keyval_get(kv, "qom-type"));
        keyval_free(kv);
        return false;
    }
    if (!check_id("-object", keyval_get(kv, "id"), errp)) {
        keyval_free(kv);
        return false;
    }
    g_ptr_array_add(cfg->objects, kv);
    return true;
}

static bool opt_device(VmigConfig *cfg, const char *arg, OptAction *action,
                       Error **errp)
{
    KeyVal *kv;
    bool ok;

    if (type_help(arg, "device", "-device", "Available devices", action, &ok,
                  errp)) {
        return ok;
    }
    kv = keyval_parse(arg, "driver", "-device", errp);
    if (!kv) {
        return false;
    }
    if (keyval_has(kv, "id") && !check_id("-device", keyval_get(kv, "id"), errp)) {
        keyval_free(kv);
        return false;
    }
    g_ptr_array_add(cfg->devices, kv);
    return true;
}

static bool opt_guest(VmigConfig *cfg, const char *arg, OptAction *action,
                      Error **errp)
{
    bool ok;

    if (!strcmp(arg, "help") || !strcmp(arg, "?")) {
        guest_program_print_help(stdout);
        *action = OPT_EXIT_OK;
        return true;
    }
    /* "-guest stress,help": the program's type carries its options. */
    if (g_str_has_suffix(arg, ",help") || g_str_has_suffix(arg, ",?")) {
        g_autofree char *type = g_strdup_printf("guest-%.*s",
                                                (int)strcspn(arg, ","), arg);
        const ObjectClass *klass = object_class_by_name(type);

        if (!klass || g_strcmp0(klass->parent, "guest-program")) {
            error_setg(errp, "-guest: unknown program '%.*s' (use -guest help)",
                       (int)strcspn(arg, ","), arg);
            return false;
        }
        object_class_print_props(klass, stdout);
        *action = OPT_EXIT_OK;
        return true;
    }
    ok = true;
    /* Several programs share the vCPUs; each name may appear once. */
    for (guint i = 0; i < cfg->guests->len; i++) {
        const char *other = g_ptr_array_index(cfg->guests, i);
        size_t len = strcspn(arg, ",");
        if (strcspn(other, ",") == len && !strncmp(other, arg, len)) {
            error_setg(errp, "-guest: program '%.*s' given more than once",
                       (int)len, arg);
            ok = false;
        }
    }
    if (ok) {
        g_ptr_array_add(cfg->guests, (gpointer)arg);
    }
    return ok;
}

/* A monitor to start: its address, or the -chardev it names. */
typedef struct MonitorArg {
    const char *option;         /* "-qmp", "-monitor", "-mon" */
    bool readline;
    char *spec;                 /* unix:..., tcp:..., stdio */
    char *chardev;              /* or the id of a -chardev */
} MonitorArg;

static void monitor_arg_free(MonitorArg *m)
{
    g_free(m->spec);
    g_free(m->chardev);
    g_free(m);
}

static void add_monitor(VmigConfig *cfg, const char *option, bool readline,
                        const char *spec, const char *chardev)
{
    MonitorArg *m = g_new0(MonitorArg, 1);

    m->option = option;
    m->readline = readline;
    m->spec = g_strdup(spec);
    m->chardev = g_strdup(chardev);
    g_ptr_array_add(cfg->qmp, m);
}

/* -qmp and -monitor: an address, "chardev:ID", or (-monitor) "none". */
static bool opt_monitor_common(VmigConfig *cfg, const char *option,
                               bool readline, const char *arg, Error **errp)
{
    const char *id;

    if (g_str_has_prefix(arg, "chardev:")) {
        id = arg + strlen("chardev:");
        if (!*id) {
            error_setg(errp, "%s %s: missing chardev id", option, arg);
            return false;
        }
        add_monitor(cfg, option, readline, NULL, id);
        return true;
    }
    if (readline && !strcmp(arg, "none")) {
        return true;
    }
    if (!monitor_check(option, arg, errp)) {
        return false;
    }
    add_monitor(cfg, option, readline, arg, NULL);
    return true;
}

static bool opt_qmp(VmigConfig *cfg, const char *arg, OptAction *action,
                    Error **errp)
{
    return opt_monitor_common(cfg, "-qmp", false, arg, errp);
}

static bool opt_monitor(VmigConfig *cfg, const char *arg, OptAction *action,
                        Error **errp)
{
    return opt_monitor_common(cfg, "-monitor", true, arg, errp);
}

/* -mon chardev=ID[,mode=readline|control][,pretty=on|off] */
static bool opt_mon(VmigConfig *cfg, const char *arg, OptAction *action,
                    Error **errp)
{
    g_autoptr(KeyVal) kv = keyval_parse(arg, "chardev", "-mon", errp);
    const char *mode, *chardev;
    bool pretty;

    if (!kv) {
        return false;
    }
    chardev = keyval_get(kv, "chardev");
    mode = keyval_has(kv, "mode") ? keyval_get(kv, "mode") : "readline";
    if (!chardev) {
        error_setg(errp, "-mon %s: chardev=ID is missing", arg);
        return false;
    }
    if (strcmp(mode, "readline") && strcmp(mode, "control")) {
        error_setg(errp, "-mon %s: mode='%s' is not readline or control",
                   arg, mode);
        return false;
    }
    /* pretty=on would indent QMP replies; vmig sends them compact. */
    if (keyval_has(kv, "pretty") &&
        !keyval_get_bool(kv, "pretty", &pretty, errp)) {
        return false;
    }
    if (!keyval_check_unused(kv, errp)) {
        return false;
    }
    add_monitor(cfg, "-mon", !strcmp(mode, "readline"), NULL, chardev);
    return true;
}

static bool opt_chardev(VmigConfig *cfg, const char *arg, OptAction *action,
                        Error **errp)
{
    char *id = NULL;
    char *spec = monitor_chardev_spec(arg, &id, errp);

    if (!spec) {
        return false;
    }
    if (g_hash_table_contains(cfg->chardevs, id)) {
        error_setg(errp, "-chardev: duplicate id '%s'", id);
        g_free(id);
        g_free(spec);
        return false;
    }
    g_hash_table_insert(cfg->chardevs, id, spec);
    return true;
}

/* Every -mon and chardev: monitor gets its -chardev's address. */
static bool resolve_monitors(VmigConfig *cfg, Error **errp)
{
    g_autoptr(GHashTable) used = g_hash_table_new(g_str_hash, g_str_equal);
    bool stdio = false;

    for (guint i = 0; i < cfg->qmp->len; i++) {
        MonitorArg *m = g_ptr_array_index(cfg->qmp, i);

        if (m->chardev) {
            const char *spec = g_hash_table_lookup(cfg->chardevs,
                                                   m->chardev);

            if (!spec) {
                error_setg(errp, "%s: chardev '%s' is not defined (add "
                           "-chardev socket,id=%s,path=PATH,server=on,"
                           "wait=off)", m->option, m->chardev, m->chardev);
                return false;
            }
            if (!g_hash_table_add(used, m->chardev)) {
                error_setg(errp, "%s: chardev '%s' is used by another "
                           "monitor already", m->option, m->chardev);
                return false;
            }
            m->spec = g_strdup(spec);
        }
        if (!strcmp(m->spec, "stdio")) {
            if (stdio) {
                error_setg(errp, "%s: stdio is used by another monitor "
                           "already", m->option);
                return false;
            }
            if (cfg->daemonize) {
                error_setg(errp, "%s: a monitor on stdio and -daemonize "
                           "exclude each other (a daemon has no terminal)",
                           m->option);
                return false;
            }
            stdio = true;
        }
    }
    return true;
}

static bool opt_incoming(VmigConfig *cfg, const char *arg, OptAction *action,
                         Error **errp)
{
    MigrationAddress addr = { 0 };

    if (cfg->incoming) {
        error_setg(errp, "-incoming: given more than once");
        return false;
    }
    if (!migration_address_parse(arg, &addr, errp)) {
        error_prepend(errp, "-incoming: ");
        return false;
    }
    migration_address_clear(&addr);
    cfg->incoming = arg;
    return true;
}

static bool opt_trace(VmigConfig *cfg, const char *arg, OptAction *action,
                      Error **errp)
{
    if (!strcmp(arg, "help") || !strcmp(arg, "?")) {
        vl_print_trace_events();
        *action = OPT_EXIT_OK;
        return true;
    }
    g_ptr_array_add(cfg->traces, g_strdup(arg));
    return true;
}

static bool opt_flag_S(VmigConfig *cfg, const char *arg, OptAction *action,
                       Error **errp)
{
    cfg->start_paused = true;
    return true;
}

static bool opt_daemonize(VmigConfig *cfg, const char *arg, OptAction *action,
                          Error **errp)
{
    cfg->daemonize = true;
    return true;
}

static bool opt_pidfile(VmigConfig *cfg, const char *arg, OptAction *action,
                        Error **errp)
{
    cfg->pidfile = arg;
    return true;
}

static bool opt_D(VmigConfig *cfg, const char *arg, OptAction *action,
                  Error **errp)
{
    cfg->logfile = arg;
    return true;
}

/* Options QEMU command lines carry that change nothing in vmig. */
static bool opt_no_effect(VmigConfig *cfg, const char *arg, OptAction *action,
                          Error **errp)
{
    return true;
}

/* -msg timestamp=on|off: the time in front of every report line. */
static bool opt_msg(VmigConfig *cfg, const char *arg, OptAction *action,
                    Error **errp)
{
    g_autoptr(KeyVal) kv = keyval_parse(arg, "timestamp", "-msg", errp);
    bool on = false;

    if (!kv || (keyval_has(kv, "timestamp") &&
                !keyval_get_bool(kv, "timestamp", &on, errp))) {
        return false;
    }
    if (keyval_has(kv, "guest-name")) {
        error_setg(errp, "-msg guest-name: not supported (vmig's reports "
                   "start with 'vmig:'; name the log with -D)");
        return false;
    }
    if (!keyval_check_unused(kv, errp)) {
        return false;
    }
    qemu_log_set_timestamps(on);
    return true;
}

/*
 * -overcommit mem-lock=on|off|on-fault: lock vmig's memory (guest RAM
 * included) with mlockall(), as QEMU does; cpu-pm has no meaning here.
 */
static bool opt_overcommit(VmigConfig *cfg, const char *arg,
                           OptAction *action, Error **errp)
{
    g_autoptr(KeyVal) kv = keyval_parse(arg, NULL, "-overcommit", errp);
    bool cpu_pm = false;

    if (!kv) {
        return false;
    }
    if (keyval_has(kv, "mem-lock")) {
        const char *v = keyval_get(kv, "mem-lock");
        bool on;

        if (!strcmp(v, "on-fault")) {
            cfg->mlock = MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT;
        } else if (qemu_parse_bool(v, &on)) {
            cfg->mlock = on ? MCL_CURRENT | MCL_FUTURE : 0;
        } else {
            error_setg(errp, "-overcommit: mem-lock='%s' is not on, off or "
                       "on-fault", v);
            return false;
        }
    }
    if (keyval_has(kv, "cpu-pm") &&
        !keyval_get_bool(kv, "cpu-pm", &cpu_pm, errp)) {
        return false;
    }
    if (cpu_pm) {
        error_setg(errp, "-overcommit cpu-pm=on: not supported (it hands a "
                   "KVM guest's idle instructions to the host; vmig's vCPUs "
                   "are threads running built-in guest programs)");
        return false;
    }
    return keyval_check_unused(kv, errp);
}

/* -add-fd fd=N,set=M[,opaque=TEXT]: an inherited fd into fd set M. */
static bool opt_add_fd(VmigConfig *cfg, const char *arg, OptAction *action,
                       Error **errp)
{
    g_autoptr(KeyVal) kv = keyval_parse(arg, NULL, "-add-fd", errp);
    uint64_t fd, set;
    const char *opaque;

    if (!kv) {
        return false;
    }
    if (!keyval_has(kv, "fd") || !keyval_has(kv, "set")) {
        error_setg(errp, "-add-fd %s: fd=N and set=M are required", arg);
        return false;
    }
    if (!keyval_get_u64(kv, "fd", &fd, errp) ||
        !keyval_get_u64(kv, "set", &set, errp)) {
        return false;
    }
    opaque = keyval_has(kv, "opaque") ? keyval_get(kv, "opaque") : NULL;
    if (!keyval_check_unused(kv, errp)) {
        return false;
    }
    if (fd <= 2 || fd > INT_MAX || set > INT64_MAX) {
        error_setg(errp, "-add-fd %s: fd must be above 2 (0, 1 and 2 are "
                   "stdio)", arg);
        return false;
    }
    if (fcntl(fd, F_GETFD) < 0) {
        error_setg(errp, "-add-fd %s: fd %" PRIu64 " is not open", arg, fd);
        return false;
    }
    if (!monitor_fdset_add(set, fd, opaque, errp)) {
        error_prepend(errp, "-add-fd %s: ", arg);
        return false;
    }
    return true;
}

/* vmig runs no guest code, so it has nothing to accelerate. */
static bool opt_accel(VmigConfig *cfg, const char *arg, OptAction *action,
                      Error **errp)
{
    error_setg(errp, "-accel %s: vmig has no accelerators (its vCPUs are "
               "host threads running built-in guest programs, not guest "
               "code; leave the option out)", arg ? arg : "kvm");
    return false;
}

static bool opt_display(VmigConfig *cfg, const char *arg, OptAction *action,
                        Error **errp)
{
    /* vmig has no display; "none" is what scripts pass, anything else is not. */
    if (arg && strcmp(arg, "none")) {
        error_setg(errp, "-display: '%s' is not supported (vmig has no "
                   "display; use -display none)", arg);
        return false;
    }
    return true;
}

static bool opt_version(VmigConfig *cfg, const char *arg, OptAction *action,
                        Error **errp)
{
    printf("vmig version " VMIG_VERSION "\n"
           "A QEMU-style VMM for live migration of VMs with VFIO devices\n");
    *action = OPT_EXIT_OK;
    return true;
}

static bool opt_help(VmigConfig *cfg, const char *arg, OptAction *action,
                     Error **errp);

static const VmigOption vmig_options[] = {
    { "m", true, "[size=]SIZE", "guest RAM size (default 128M; a bare number is MiB)", opt_m },
    { "smp", true, "[cpus=]N", "number of vCPUs (default 1)", opt_smp },
    { "name", true, "NAME", "name of the VM (query-name)", opt_name },
    { "uuid", true, "UUID", "the VM's UUID (query-uuid; checked by the validate-uuid migration capability)", opt_uuid },
    { "machine", true, "none[,memory-backend=ID]", "machine type and RAM backend", opt_machine },
    { "M", true, "none", "same as -machine", opt_machine },
    { "object", true, "TYPE,id=ID[,prop=value...]", "create an object (-object help)", opt_object },
    { "device", true, "DRIVER[,prop=value...]", "add a device (-device help, -device DRIVER,help)", opt_device },
    { "guest", true, "PROGRAM[,opt=value...]", "a guest program the vCPUs run; may repeat (-guest help; default idle)", opt_guest },
    { "S", false, NULL, "do not start the vCPUs (use 'cont' over QMP)", opt_flag_S },
    { "qmp", true, "unix:PATH|tcp:HOST:PORT[,server=on|off][,wait=on|off]|stdio|chardev:ID", "QMP monitor (may repeat; a server waits for its first client unless wait=off)", opt_qmp },
    { "monitor", true, "unix:PATH|tcp:HOST:PORT[,server=on|off][,wait=on|off]|stdio|chardev:ID|none", "HMP console, QEMU's human monitor (may repeat)", opt_monitor },
    { "chardev", true, "socket,id=ID,path=PATH|host=HOST,port=PORT[,server=on|off][,wait=on|off]|stdio,id=ID", "a character device for -mon", opt_chardev },
    { "mon", true, "[chardev=]ID[,mode=readline|control][,pretty=on|off]", "a monitor on a -chardev (readline: HMP; control: QMP)", opt_mon },
    { "incoming", true, "URI|defer", "wait for an incoming migration (tcp:, unix:, fd:, file:, exec:)", opt_incoming },
    { "daemonize", false, NULL, "detach once the VM is set up", opt_daemonize },
    { "pidfile", true, "FILE", "write the process id to FILE", opt_pidfile },
    { "D", true, "LOGFILE", "write diagnostics and trace output to LOGFILE", opt_D },
    { "trace", true, "[enable=]PATTERN|events=FILE|file=LOGFILE", "enable trace points (-trace help)", opt_trace },
    { "display", true, "none", "accepted for compatibility (no display)", opt_display },
    { "nodefaults", false, NULL, "accepted: vmig creates no default devices", opt_no_effect },
    { "no-user-config", false, NULL, "accepted: vmig reads no configuration files", opt_no_effect },
    { "msg", true, "timestamp=on|off", "report lines start with the UTC time", opt_msg },
    { "overcommit", true, "mem-lock=on|off|on-fault", "lock vmig's memory (guest RAM too) with mlockall()", opt_overcommit },
    { "accel", true, "ACCEL", "refused: vmig runs no guest code to accelerate", opt_accel },
    { "add-fd", true, "fd=N,set=M[,opaque=TEXT]", "an inherited fd into fd set M, for /dev/fdset/M paths", opt_add_fd },
    { "enable-kvm", false, NULL, "refused: as -accel kvm", opt_accel },
    { "nographic", false, NULL, "accepted for compatibility (no display)", opt_display },
    { "version", false, NULL, "print the version and exit", opt_version },
    { "help", false, NULL, "print this help and exit", opt_help },
    { "h", false, NULL, "same as -help", opt_help },
};

static bool opt_help(VmigConfig *cfg, const char *arg, OptAction *action,
                     Error **errp)
{
    printf("usage: vmig [options]\n\n");
    for (size_t i = 0; i < ARRAY_SIZE(vmig_options); i++) {
        const VmigOption *o = &vmig_options[i];
        g_autofree char *head = g_strdup_printf("-%s%s%s", o->name,
                                                o->has_arg ? " " : "",
                                                o->has_arg ? o->arg_name : "");
        if (strlen(head) > 34) {
            printf("%s\n%-36s%s\n", head, "", o->help);
        } else {
            printf("%-36s%s\n", head, o->help);
        }
    }
    printf("\nSizes take K, M, G and T suffixes; booleans are on/off.\n"
           "In key=value lists, ',,' is a literal comma.\n");
    *action = OPT_EXIT_OK;
    return true;
}

static const VmigOption *find_option(const char *arg)
{
    const char *name = arg + 1;

    if (*name == '-') {
        name++;             /* --opt works as -opt */
    }
    for (size_t i = 0; i < ARRAY_SIZE(vmig_options); i++) {
        if (!strcmp(vmig_options[i].name, name)) {
            return &vmig_options[i];
        }
    }
    return NULL;
}

void vl_config_free(VmigConfig *cfg)
{
    g_ptr_array_free(cfg->objects, TRUE);
    g_ptr_array_free(cfg->devices, TRUE);
    g_ptr_array_free(cfg->qmp, TRUE);
    g_hash_table_destroy(cfg->chardevs);
    g_ptr_array_free(cfg->traces, TRUE);
    g_ptr_array_free(cfg->guests, TRUE);
    g_free(cfg->machine_type);
    g_free(cfg->memory_backend);
    g_free(cfg);
}

/* Returns the config, or NULL with *exit_ok telling help from an error. */
VmigConfig *vl_parse_args(int argc, char **argv, bool *exit_ok, Error **errp)
{
    VmigConfig *cfg = g_new0(VmigConfig, 1);

    cfg->smp = 1;
    cfg->objects = g_ptr_array_new_with_free_func((GDestroyNotify)keyval_free);
    cfg->devices = g_ptr_array_new_with_free_func((GDestroyNotify)keyval_free);
    cfg->qmp = g_ptr_array_new_with_free_func((GDestroyNotify)monitor_arg_free);
    cfg->chardevs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                          g_free);
    cfg->traces = g_ptr_array_new_with_free_func(g_free);
    cfg->guests = g_ptr_array_new();
    *exit_ok = false;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const VmigOption *opt;
        OptAction action = OPT_CONTINUE;
        const char *value = NULL;

        if (arg[0] != '-' || arg[1] == '\0') {
            error_setg(errp, "unexpected argument '%s' (options start with "
                       "'-'; see -help)", arg);
            goto fail;
        }
        opt = find_option(arg);
        if (!opt) {
            error_setg(errp, "%s: invalid option (see -help)", arg);
            goto fail;
        }
        if (opt->has_arg) {
            if (i + 1 >= argc) {
                error_setg(errp, "%s: requires an argument", arg);
                goto fail;
            }
            value = argv[++i];
        }
        if (!opt->parse(cfg, value, &action, errp)) {
            goto fail;
        }
        if (action == OPT_EXIT_OK) {
            *exit_ok = true;
            goto fail;
        }
    }
    if (cfg->memory_backend && !cfg->objects->len) {
        error_setg(errp, "-machine: memory-backend '%s' is not defined "
                   "(add -object memory-backend-memfd,id=%s,size=SIZE)",
                   cfg->memory_backend, cfg->memory_backend);
        goto fail;
    }
    if (!resolve_monitors(cfg, errp)) {
        goto fail;
    }
    if (cfg->daemonize && cfg->qmp->len == 0) {
        warn_report("-daemonize without -qmp: the VM can only be stopped "
                    "with a signal");
    }
    return cfg;

fail:
    vl_config_free(cfg);
    return NULL;
}

static void print_one_event(TraceEvent *ev, void *opaque)
{
    printf("%s\n", ev->name);
}

void vl_print_trace_events(void)
{
    trace_event_foreach(NULL, print_one_event, NULL);
}

/* ---- Daemonizing and the pidfile ---- */

static int daemon_ready_fd = -1;

/*
 * Fork before any thread exists.  The parent waits until the child has
 * set everything up (or failed) and exits with its status, so that
 * "vmig -daemonize ..." returns only once QMP answers.
 */
static bool os_daemonize(Error **errp)
{
    int fds[2];
    pid_t pid;

    if (pipe(fds) < 0) {
        error_setg_errno(errp, errno, "-daemonize: pipe");
        return false;
    }
    pid = fork();
    if (pid < 0) {
        error_setg_errno(errp, errno, "-daemonize: fork");
        return false;
    }
    if (pid > 0) {
        char status = 1;

        close(fds[1]);
        while (read(fds[0], &status, 1) < 0 && errno == EINTR) {
        }
        _exit(status ? 1 : 0);
    }
    close(fds[0]);
    daemon_ready_fd = fds[1];
    setsid();
    return true;
}

static void os_daemonize_done(bool ok)
{
    char status = ok ? 0 : 1;
    int null;

    if (daemon_ready_fd < 0) {
        return;
    }
    if (ok) {
        null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            /*
             * Diagnostics go to the -D file, which qemu_log keeps open
             * itself; the caller's stderr must not stay held open by a
             * daemon (a pipe reader would never see its end).
             */
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
            close(null);
        }
    }
    while (write(daemon_ready_fd, &status, 1) < 0 && errno == EINTR) {
    }
    close(daemon_ready_fd);
    daemon_ready_fd = -1;
}

static int pidfile_fd = -1;
static const char *pidfile_path;

static bool pidfile_create(const char *path, Error **errp)
{
    g_autofree char *text = g_strdup_printf("%d\n", getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

    if (fd < 0) {
        error_setg_errno(errp, errno, "-pidfile: cannot open '%s'", path);
        return false;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        error_setg(errp, "-pidfile: '%s' is locked by another running vmig",
                   path);
        close(fd);
        return false;
    }
    if (ftruncate(fd, 0) < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        error_setg_errno(errp, errno, "-pidfile: cannot write '%s'", path);
        close(fd);
        return false;
    }
    pidfile_fd = fd;
    pidfile_path = path;
    return true;
}

static void pidfile_remove(void)
{
    if (pidfile_fd >= 0) {
        unlink(pidfile_path);
        close(pidfile_fd);
        pidfile_fd = -1;
    }
}

/* ---- Machine set-up ---- */

static bool create_objects(VmigConfig *cfg, Error **errp)
{
    Object *container = object_get_container("/objects");

    for (guint i = 0; i < cfg->objects->len; i++) {
        KeyVal *kv = g_ptr_array_index(cfg->objects, i);
        const char *type = keyval_get(kv, "qom-type");
        const char *id = keyval_get(kv, "id");
        const ObjectClass *klass = object_class_by_name(type);

        if (!user_type_matches(klass, NULL)) {
            error_setg(errp, "-object: unknown object type '%s' "
                       "(use -object help)", type);
            return false;
        }
        if (!object_create(type, container, id, kv, errp)) {
            return false;
        }
    }
    return true;
}

static bool create_devices(VmigConfig *cfg, Error **errp)
{
    unsigned anon = 0;

    for (guint i = 0; i < cfg->devices->len; i++) {
        KeyVal *kv = g_ptr_array_index(cfg->devices, i);
        const char *driver = keyval_get(kv, "driver");
        const char *id = keyval_get(kv, "id");
        const ObjectClass *klass = object_class_by_name(driver);
        g_autofree char *name = NULL;
        Object *container;

        if (!user_type_matches(klass, "device")) {
            error_setg(errp, "-device: '%s' is not a valid device driver "
                       "(use -device help)", driver);
            return false;
        }
        if (id) {
            container = object_get_container("/machine/peripheral");
            name = g_strdup(id);
        } else {
            container = object_get_container("/machine/peripheral-anon");
            name = g_strdup_printf("device[%u]", anon++);
        }
        if (!object_create(driver, container, name, kv, errp)) {
            return false;
        }
    }
    return true;
}

static bool create_guest_programs(VmigConfig *cfg, Error **errp)
{
    /* With none given, cpus_init() runs the idle program. */
    for (guint i = 0; i < cfg->guests->len; i++) {
        if (!guest_program_create(g_ptr_array_index(cfg->guests, i), errp)) {
            return false;
        }
    }
    return true;
}

static gboolean on_signal(gpointer data)
{
    JsonObject *ev = json_object_new();

    json_object_set_boolean_member(ev, "guest", FALSE);
    json_object_set_string_member(ev, "reason", "host-signal");
    qmp_event_emit("SHUTDOWN", ev);
    main_loop_request_exit(0);
    return G_SOURCE_CONTINUE;
}

int vl_main(int argc, char **argv)
{
    Error *err = NULL;
    VmigConfig *cfg;
    bool exit_ok;
    int status = 1;

    error_set_progname("vmig");
    cfg = vl_parse_args(argc, argv, &exit_ok, &err);
    if (!cfg) {
        if (exit_ok) {
            return 0;
        }
        error_report_err(err);
        return 1;
    }

    if (cfg->logfile && !qemu_log_set_file(cfg->logfile, &err)) {
        error_prepend(&err, "-D: ");
        goto fail_early;
    }
    for (guint i = 0; i < cfg->traces->len; i++) {
        if (!trace_opt_parse(g_ptr_array_index(cfg->traces, i), &err)) {
            goto fail_early;
        }
    }
    if (cfg->daemonize && !os_daemonize(&err)) {
        goto fail_early;
    }

    main_loop_init();
    /* From here on a signal is a clean shutdown, whatever has started. */
    g_unix_signal_add(SIGTERM, on_signal, NULL);
    g_unix_signal_add(SIGINT, on_signal, NULL);
    g_unix_signal_add(SIGHUP, on_signal, NULL);
    if (!create_objects(cfg, &err) ||
        !machine_ram_init(cfg->ram_size, cfg->memory_backend, &err) ||
        !create_guest_programs(cfg, &err) ||
        !cpus_init(cfg->smp, &err) ||
        !create_devices(cfg, &err) ||
        !guest_place_programs(&err)) {
        goto fail;
    }
    if (cfg->mlock && mlockall(cfg->mlock) < 0) {
        error_setg_errno(&err, errno, "-overcommit mem-lock: mlockall() "
                         "failed (RLIMIT_MEMLOCK too small, or no "
                         "CAP_IPC_LOCK)");
        goto fail;
    }
    if (cfg->pidfile && !pidfile_create(cfg->pidfile, &err)) {
        goto fail;
    }
    for (guint i = 0; i < cfg->qmp->len; i++) {
        MonitorArg *m = g_ptr_array_index(cfg->qmp, i);

        if (!monitor_start(m->option, m->spec, m->readline, &err)) {
            goto fail;
        }
    }
    migration_init();
    if (cfg->incoming) {
        runstate_set(RUN_STATE_INMIGRATE);
        migration_incoming_set_autostart(!cfg->start_paused);
        if (strcmp(cfg->incoming, "defer") &&
            !migration_incoming_start(cfg->incoming, &err)) {
            goto fail;
        }
    } else if (!cfg->start_paused) {
        vm_start();
    }
    os_daemonize_done(true);

    status = main_loop_run();
    /* A migration thread still running must stop before RAM goes away. */
    migration_shutdown();
    goto out;

fail:
    error_report_err(err);
    os_daemonize_done(false);
out:
    vm_shutdown();
    monitor_cleanup();
    cpus_cleanup();
    object_unparent(object_get_root());
    ram_blocks_free();
    pidfile_remove();
    bql_unlock();
    vl_config_free(cfg);
    return status;

fail_early:
    error_report_err(err);
    os_daemonize_done(false);
    vl_config_free(cfg);
    return 1;
}
