/*
 * Memory backends: memfd (shareable with device servers), anonymous RAM,
 * and files.  Each owns its mapping and fd for its whole life; guest RAM
 * blocks built on it only borrow them.
 */
#include "qemu/osdep.h"
#include "qemu/qemu-open.h"
#include <sys/mman.h>
#include <sys/stat.h>
#include "system/hostmem.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23      /* Linux 5.14 */
#endif

static const char *backend_type(HostMemoryBackend *backend)
{
    return object_type(&backend->parent_obj);
}

const char *host_memory_backend_id(const HostMemoryBackend *backend)
{
    return backend->parent_obj.name;
}

HostMemoryBackend *host_memory_backend_find(const char *id, Error **errp)
{
    Object *obj = object_child(object_get_container("/objects"), id);

    if (!obj || !object_is_type(obj, TYPE_MEMORY_BACKEND)) {
        error_setg(errp, "memory backend '%s' does not exist "
                   "(create it with -object memory-backend-...,id=%s)", id, id);
        return NULL;
    }
    return (HostMemoryBackend *)obj;
}

/* A memfd of the backend's size that can neither grow nor shrink. */
static int backend_memfd_open(HostMemoryBackend *backend, Error **errp)
{
    const char *id = host_memory_backend_id(backend);
    int fd = memfd_create(id, MFD_CLOEXEC | MFD_ALLOW_SEALING);

    if (fd < 0) {
        error_setg_errno(errp, errno, "%s '%s': memfd_create failed",
                         backend_type(backend), id);
        return -1;
    }
    if (ftruncate(fd, backend->size) < 0) {
        error_setg_errno(errp, errno, "%s '%s': cannot size the memfd to %"
                         PRIu64 " bytes", backend_type(backend), id,
                         backend->size);
        close(fd);
        return -1;
    }
    /* Device servers map it too: none of them may change its size. */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
        error_setg_errno(errp, errno, "%s '%s': cannot seal the memfd",
                         backend_type(backend), id);
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * An unnamed file in @dir: O_TMPFILE where the file system has it,
 * otherwise a named one that is unlinked at once.
 */
static int backend_open_tmpfile(const char *dir)
{
    g_autofree char *name = NULL;
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR)) {
        return fd;
    }
    name = g_build_filename(dir, "vmig-ram-XXXXXX", NULL);
    fd = mkostemp(name, O_CLOEXEC);
    if (fd >= 0) {
        unlink(name);
    }
    return fd;
}

/*
 * mem-path is a file (created and sized when missing or empty, used as
 * is otherwise) or a directory, in which an unnamed temporary file is
 * made.
 */
static int backend_file_open(HostMemoryBackend *backend, Error **errp)
{
    const char *id = host_memory_backend_id(backend);
    const char *path = backend->mem_path;
    struct stat st;
    int fd;

    if (!path || !*path) {
        error_setg(errp, "%s '%s': property 'mem-path' is required",
                   backend_type(backend), id);
        return -1;
    }
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        fd = backend_open_tmpfile(path);
        if (fd < 0) {
            error_setg_errno(errp, errno, "%s '%s': cannot open mem-path '%s'",
                             backend_type(backend), id, path);
            return -1;
        }
    } else {
        fd = qemu_open(path, O_RDWR | O_CREAT, 0600, errp);
        if (fd < 0) {
            error_prepend(errp, "%s '%s': mem-path: ", backend_type(backend),
                          id);
            return -1;
        }
    }
    if (fstat(fd, &st) < 0) {
        error_setg_errno(errp, errno, "%s '%s': cannot stat mem-path '%s'",
                         backend_type(backend), id, path);
        goto fail;
    }
    /*
     * Only a new (or empty) file is sized.  A file with data in it is
     * never resized: a mistyped mem-path must not pad or cut a real file.
     * A larger one is fine, its start is used.
     */
    if (st.st_size == 0 && S_ISREG(st.st_mode)) {
        if (ftruncate(fd, backend->size) < 0) {
            error_setg_errno(errp, errno, "%s '%s': cannot size mem-path '%s' "
                             "to %" PRIu64 " bytes", backend_type(backend), id,
                             path, backend->size);
            goto fail;
        }
    } else if (st.st_size > 0 && (uint64_t)st.st_size < backend->size) {
        error_setg(errp, "%s '%s': mem-path '%s' holds %" PRIu64 " bytes, "
                   "less than size %" PRIu64 " (an existing file is not "
                   "resized)", backend_type(backend), id, path,
                   (uint64_t)st.st_size, backend->size);
        goto fail;
    }
    return fd;

fail:
    close(fd);
    return -1;
}

static bool backend_prealloc(HostMemoryBackend *backend, Error **errp)
{
    volatile uint8_t *p = backend->host;

    if (madvise(backend->host, backend->size, MADV_POPULATE_WRITE) == 0) {
        return true;
    }
    if (errno != EINVAL) {
        error_setg_errno(errp, errno, "%s '%s': cannot preallocate %" PRIu64
                         " bytes", backend_type(backend),
                         host_memory_backend_id(backend), backend->size);
        return false;
    }
    /* Older kernel: write-fault every page, keeping its contents. */
    for (uint64_t off = 0; off < backend->size; off += TARGET_PAGE_SIZE) {
        p[off] = p[off];
    }
    return true;
}

static bool backend_realize(Object *obj, Error **errp)
{
    HostMemoryBackend *backend = (HostMemoryBackend *)obj;
    const char *type = backend_type(backend);
    const char *id = host_memory_backend_id(backend);
    int flags = backend->share ? MAP_SHARED : MAP_PRIVATE;

    backend->fd = -1;
    if (!backend->size) {
        error_setg(errp, "%s '%s': property 'size' is required and must not "
                   "be 0", type, id);
        return false;
    }
    if (!QEMU_IS_ALIGNED(backend->size, TARGET_PAGE_SIZE)) {
        error_setg(errp, "%s '%s': size %" PRIu64 " is not a multiple of "
                   "the page size (%llu)", type, id, backend->size,
                   TARGET_PAGE_SIZE);
        return false;
    }

    if (!strcmp(type, TYPE_MEMORY_BACKEND_MEMFD)) {
        backend->fd = backend_memfd_open(backend, errp);
    } else if (!strcmp(type, TYPE_MEMORY_BACKEND_FILE)) {
        backend->fd = backend_file_open(backend, errp);
    } else {
        /* Untouched anonymous memory costs nothing until written. */
        flags |= MAP_ANONYMOUS | MAP_NORESERVE;
    }
    if (backend->fd < 0 && !(flags & MAP_ANONYMOUS)) {
        return false;
    }

    backend->host = mmap(NULL, backend->size, PROT_READ | PROT_WRITE, flags,
                         backend->fd, 0);
    if (backend->host == MAP_FAILED) {
        error_setg_errno(errp, errno, "%s '%s': cannot map %" PRIu64 " bytes",
                         type, id, backend->size);
        goto fail_close;
    }
    backend->mapped = true;
    if (flags & MAP_ANONYMOUS) {
        /*
         * Transparent huge pages where the host allows them: fewer TLB
         * misses for the guest, and reading untouched RAM (a migration's
         * zero-page scan) maps one huge zero page per 2 MiB instead of
         * taking a fault per 4 KiB.  Only a hint: failure changes nothing.
         */
        madvise(backend->host, backend->size, MADV_HUGEPAGE);
    }
    if (backend->prealloc && !backend_prealloc(backend, errp)) {
        goto fail_unmap;
    }
    return true;

fail_unmap:
    munmap(backend->host, backend->size);
    backend->host = NULL;
    backend->mapped = false;
fail_close:
    if (backend->fd >= 0) {
        close(backend->fd);
        backend->fd = -1;
    }
    return false;
}

static void backend_finalize(Object *obj)
{
    HostMemoryBackend *backend = (HostMemoryBackend *)obj;

    if (backend->mapped) {
        munmap(backend->host, backend->size);
        backend->mapped = false;
    }
    if (backend->fd >= 0) {
        close(backend->fd);
        backend->fd = -1;
    }
}

#define BACKEND_COMMON_PROPS(share_default)                                 \
    DEFINE_PROP("size", PROP_TYPE_SIZE, HostMemoryBackend, size, "0",       \
                "bytes of memory (required)"),                              \
    DEFINE_PROP("share", PROP_TYPE_BOOL, HostMemoryBackend, share,          \
                share_default, "map shared (on) or private (off)"),         \
    DEFINE_PROP("prealloc", PROP_TYPE_BOOL, HostMemoryBackend, prealloc,    \
                "off", "fault every page in at creation")

static const Property memfd_props[] = {
    BACKEND_COMMON_PROPS("on"),
    { 0 }
};

static const Property ram_props[] = {
    BACKEND_COMMON_PROPS("off"),
    { 0 }
};

static const Property file_props[] = {
    BACKEND_COMMON_PROPS("off"),
    DEFINE_PROP("mem-path", PROP_TYPE_STR, HostMemoryBackend, mem_path, NULL,
                "file, or directory for a temporary file"),
    { 0 }
};

static const ObjectClass backend_classes[] = {
    {
        .name = TYPE_MEMORY_BACKEND_MEMFD,
        .parent = TYPE_MEMORY_BACKEND,
        .desc = "guest RAM in a memfd, shareable with device servers",
        .instance_size = sizeof(HostMemoryBackend),
        .props = memfd_props,
        .user_creatable = true,
        .realize = backend_realize,
        .finalize = backend_finalize,
    }, {
        .name = TYPE_MEMORY_BACKEND_RAM,
        .parent = TYPE_MEMORY_BACKEND,
        .desc = "guest RAM in anonymous memory",
        .instance_size = sizeof(HostMemoryBackend),
        .props = ram_props,
        .user_creatable = true,
        .realize = backend_realize,
        .finalize = backend_finalize,
    }, {
        .name = TYPE_MEMORY_BACKEND_FILE,
        .parent = TYPE_MEMORY_BACKEND,
        .desc = "guest RAM in a file (mem-path)",
        .instance_size = sizeof(HostMemoryBackend),
        .props = file_props,
        .user_creatable = true,
        .realize = backend_realize,
        .finalize = backend_finalize,
    },
};

static void hostmem_register_types(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(backend_classes); i++) {
        type_register(&backend_classes[i]);
    }
}
type_init(hostmem_register_types)
