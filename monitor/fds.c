/*
 * getfd / closefd: file descriptors a client passed with SCM_RIGHTS,
 * kept under a name until a command (migrate fd:NAME, say) claims them.
 * add-fd / remove-fd / query-fdsets: fd sets, whose members a path
 * "/dev/fdset/N" opens as a duplicate (qemu_open()), as in QEMU.
 *
 * The tables are global, as a name given on one connection may be used
 * from another.  They have their own lock because monitor_fd_take() and
 * qemu_open() may be called from a thread that is not the main one.
 */
#include "qemu/osdep.h"
#include "qemu/qemu-open.h"
#include "monitor/monitor-internal.h"
#include "qapi/qapi-types.h"

static GMutex named_fds_lock;
static GHashTable *named_fds;       /* name -> GINT_TO_POINTER(fd + 1) */

static void named_fd_close(gpointer value)
{
    close(GPOINTER_TO_INT(value) - 1);
}

static void named_fd_store(const char *name, int fd)
{
    g_mutex_lock(&named_fds_lock);
    if (!named_fds) {
        named_fds = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                          named_fd_close);
    }
    /* A new fd under a name in use replaces (and closes) the old one. */
    g_hash_table_insert(named_fds, g_strdup(name), GINT_TO_POINTER(fd + 1));
    g_mutex_unlock(&named_fds_lock);
}

int monitor_fd_take(const char *name, Error **errp)
{
    gpointer key, value;
    int fd = -1;

    g_mutex_lock(&named_fds_lock);
    if (named_fds &&
        g_hash_table_steal_extended(named_fds, name, &key, &value)) {
        g_free(key);
        fd = GPOINTER_TO_INT(value) - 1;
    }
    g_mutex_unlock(&named_fds_lock);
    if (fd < 0) {
        error_setg(errp, "No file descriptor named '%s' (pass one with getfd)",
                   name);
    }
    return fd;
}

/* ---- fd sets ---- */

typedef struct FdsetMember {
    int fd;
    char *opaque;               /* the client's note, or NULL */
} FdsetMember;

typedef struct Fdset {
    int64_t id;
    GArray *members;            /* FdsetMember, in the order added */
} Fdset;

static GList *fdsets;           /* Fdset *, by id; named_fds_lock */

static void fdset_member_clear(gpointer p)
{
    FdsetMember *m = p;

    close(m->fd);
    g_free(m->opaque);
}

static void fdset_free(Fdset *set)
{
    g_array_free(set->members, TRUE);
    g_free(set);
}

static Fdset *fdset_find(int64_t id)
{
    for (GList *l = fdsets; l; l = l->next) {
        Fdset *set = l->data;

        if (set->id == id) {
            return set;
        }
    }
    return NULL;
}

static gint fdset_cmp(gconstpointer a, gconstpointer b)
{
    int64_t x = ((const Fdset *)a)->id, y = ((const Fdset *)b)->id;

    return (x > y) - (x < y);
}

/* The set @id, made if new; -1 for the lowest id no set has. */
static Fdset *fdset_get(int64_t id)
{
    Fdset *set;

    if (id < 0) {
        for (id = 0; fdset_find(id); id++) {
        }
    }
    set = fdset_find(id);
    if (!set) {
        set = g_new0(Fdset, 1);
        set->id = id;
        set->members = g_array_new(FALSE, FALSE, sizeof(FdsetMember));
        g_array_set_clear_func(set->members, fdset_member_clear);
        fdsets = g_list_insert_sorted(fdsets, set, fdset_cmp);
    }
    return set;
}

/* qemu_open("/dev/fdset/N"): a duplicate of a member that fits @flags. */
static int fdset_dup(int64_t id, int flags, Error **errp)
{
    int fd = -1;
    Fdset *set;

    g_mutex_lock(&named_fds_lock);
    set = fdset_find(id);
    for (guint i = 0; set && fd < 0 && i < set->members->len; i++) {
        int member = g_array_index(set->members, FdsetMember, i).fd;
        int fl = fcntl(member, F_GETFL);

        if (fl < 0 || (fl & O_ACCMODE) != (flags & O_ACCMODE) ||
            ((flags & O_DIRECT) && !(fl & O_DIRECT))) {
            continue;
        }
        fd = fcntl(member, F_DUPFD_CLOEXEC, 0);
        if (fd < 0) {
            error_setg_errno(errp, errno, "/dev/fdset/%" PRId64 ": cannot "
                             "duplicate fd %d", id, member);
            g_mutex_unlock(&named_fds_lock);
            return -1;
        }
    }
    g_mutex_unlock(&named_fds_lock);
    if (fd < 0) {
        error_setg(errp, "/dev/fdset/%" PRId64 ": %s", id, !set ?
                   "no such fd set (add-fd makes one)" :
                   "no member opened with the access mode needed here "
                   "(read-only, write-only or read-write; O_DIRECT for "
                   "direct-io)");
    }
    return fd;
}

static void __attribute__((constructor)) fdsets_init(void)
{
    qemu_open_set_fdset_dup(fdset_dup);
}

void monitor_fds_cleanup(void)
{
    g_mutex_lock(&named_fds_lock);
    if (named_fds) {
        g_hash_table_destroy(named_fds);
        named_fds = NULL;
    }
    g_list_free_full(g_steal_pointer(&fdsets), (GDestroyNotify)fdset_free);
    g_mutex_unlock(&named_fds_lock);
}

static const char *fdname_check(const char *name, Error **errp)
{
    if (!*name) {
        error_setg(errp, "Parameter 'fdname' must not be empty");
        return NULL;
    }
    /* Names that look like numbers would be mistaken for fd numbers. */
    if (g_ascii_isdigit(name[0])) {
        error_setg(errp, "Parameter 'fdname' must not start with a digit");
        return NULL;
    }
    return name;
}

void qmp_getfd(const QapiGetfdArgs *args, JsonNode **ret, Error **errp)
{
    QmpSession *session = qmp_session_current();
    const char *name = fdname_check(args->fdname, errp);
    int fd;

    if (!name) {
        return;
    }
    if (!session || !session->take_fd) {
        error_setg(errp, "getfd: this connection cannot pass file descriptors "
                   "(connect over a UNIX socket)");
        return;
    }
    fd = session->take_fd(session);
    if (fd < 0) {
        error_setg(errp, "getfd: no file descriptor came with SCM_RIGHTS on "
                   "this connection");
        return;
    }
    named_fd_store(name, fd);
}

void qmp_closefd(const QapiClosefdArgs *args, JsonNode **ret, Error **errp)
{
    const char *name = fdname_check(args->fdname, errp);
    int fd;

    if (!name) {
        return;
    }
    fd = monitor_fd_take(name, errp);
    if (fd >= 0) {
        close(fd);
    }
}

bool monitor_fdset_add(int64_t id, int fd, const char *opaque, Error **errp)
{
    FdsetMember m = { .opaque = g_strdup(opaque) };

    /* Ours from now on, close-on-exec, whatever the caller's fd number. */
    m.fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (m.fd < 0) {
        error_setg_errno(errp, errno, "fd %d", fd);
        g_free(m.opaque);
        return false;
    }
    close(fd);
    g_mutex_lock(&named_fds_lock);
    g_array_append_val(fdset_get(id)->members, m);
    g_mutex_unlock(&named_fds_lock);
    return true;
}

void qmp_add_fd(const QapiAddFdArgs *args, JsonNode **ret, Error **errp)
{
    QmpSession *session = qmp_session_current();
    FdsetMember m = { .fd = -1 };
    JsonObject *obj;
    int64_t id = args->has_fdset_id ? args->fdset_id : -1;
    Fdset *set;

    if (args->has_fdset_id && id < 0) {
        error_setg(errp, "Parameter 'fdset-id' expects a non-negative value");
        return;
    }
    if (!session || !session->take_fd) {
        error_setg(errp, "add-fd: this connection cannot pass file "
                   "descriptors (connect over a UNIX socket)");
        return;
    }
    m.fd = session->take_fd(session);
    if (m.fd < 0) {
        error_setg(errp, "add-fd: no file descriptor came with SCM_RIGHTS "
                   "on this connection");
        return;
    }
    m.opaque = g_strdup(args->opaque);
    g_mutex_lock(&named_fds_lock);
    set = fdset_get(id);
    g_array_append_val(set->members, m);
    id = set->id;
    g_mutex_unlock(&named_fds_lock);

    obj = json_object_new();
    json_object_set_int_member(obj, "fdset-id", id);
    json_object_set_int_member(obj, "fd", m.fd);
    *ret = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(*ret, obj);
}

void qmp_remove_fd(const QapiRemoveFdArgs *args, JsonNode **ret,
                   Error **errp)
{
    int64_t id = args->fdset_id, fd = args->has_fd ? args->fd : -1;
    bool found = false;
    Fdset *set;

    g_mutex_lock(&named_fds_lock);
    set = fdset_find(id);
    for (guint i = 0; set && i < set->members->len;) {
        if (fd < 0 || g_array_index(set->members, FdsetMember, i).fd == fd) {
            g_array_remove_index(set->members, i);
            found = true;
        } else {
            i++;
        }
    }
    if (set && !set->members->len) {
        fdsets = g_list_remove(fdsets, set);
        fdset_free(set);
    }
    g_mutex_unlock(&named_fds_lock);
    if (!found) {
        /* QEMU's wording. */
        if (fd < 0) {
            error_setg(errp, "File descriptor named 'fdset-id:%" PRId64 "' "
                       "not found", id);
        } else {
            error_setg(errp, "File descriptor named 'fdset-id:%" PRId64
                       ", fd:%" PRId64 "' not found", id, fd);
        }
    }
}

void qmp_query_fdsets(JsonNode **ret, Error **errp)
{
    JsonArray *list = json_array_new();

    g_mutex_lock(&named_fds_lock);
    for (GList *l = fdsets; l; l = l->next) {
        Fdset *set = l->data;
        JsonObject *o = json_object_new();
        JsonArray *fds = json_array_new();

        for (guint i = 0; i < set->members->len; i++) {
            FdsetMember *m = &g_array_index(set->members, FdsetMember, i);
            JsonObject *f = json_object_new();

            json_object_set_int_member(f, "fd", m->fd);
            if (m->opaque) {
                json_object_set_string_member(f, "opaque", m->opaque);
            }
            json_array_add_object_element(fds, f);
        }
        json_object_set_int_member(o, "fdset-id", set->id);
        json_object_set_array_member(o, "fds", fds);
        json_array_add_object_element(list, o);
    }
    g_mutex_unlock(&named_fds_lock);
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, list);
}
