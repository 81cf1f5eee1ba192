/*
 * The machine's RAM: one block at guest physical address 0, on the
 * backend -machine memory-backend=ID names, or on a memfd backend of -m
 * bytes made for it (/objects/pc.ram, as QEMU names its default RAM).
 */
#include "qemu/osdep.h"
#include "system/hostmem.h"
#include "system/ramblock.h"

#define MACHINE_DEFAULT_BACKEND_ID "pc.ram"

static HostMemoryBackend *machine_default_backend(uint64_t ram_size,
                                                  Error **errp)
{
    g_autofree char *opts = g_strdup_printf("size=%" PRIu64, ram_size);
    g_autoptr(KeyVal) kv = keyval_parse(opts, NULL, "-m", errp);
    Object *obj;

    if (!kv) {
        return NULL;
    }
    obj = object_create(TYPE_MEMORY_BACKEND_MEMFD,
                        object_get_container("/objects"),
                        MACHINE_DEFAULT_BACKEND_ID, kv, errp);
    return (HostMemoryBackend *)obj;
}

bool machine_ram_init(uint64_t ram_size, const char *backend_id, Error **errp)
{
    HostMemoryBackend *backend;
    g_autofree char *given = NULL;
    g_autofree char *has = NULL;

    if (ram_block_first()) {
        error_setg(errp, "machine RAM exists already");
        return false;
    }
    if (!backend_id) {
        backend = machine_default_backend(ram_size ? ram_size :
                                          MACHINE_DEFAULT_RAM_SIZE, errp);
        if (!backend) {
            return false;
        }
    } else {
        backend = host_memory_backend_find(backend_id, errp);
        if (!backend) {
            error_prepend(errp, "-machine memory-backend=%s: ", backend_id);
            return false;
        }
        if (ram_size && ram_size != backend->size) {
            given = size_to_str(ram_size);
            has = size_to_str(backend->size);
            error_setg(errp, "-m %s (%" PRIu64 " bytes) does not match the "
                       "size of memory backend '%s': %s (%" PRIu64 " bytes)",
                       given, ram_size, backend_id, has, backend->size);
            return false;
        }
        if (backend->in_use) {
            error_setg(errp, "memory backend '%s' is already in use",
                       backend_id);
            return false;
        }
    }

    /* A private mapping's fd does not show the guest's writes: keep it. */
    if (!ram_block_add_host(host_memory_backend_id(backend), 0, backend->size,
                            backend->host, backend->share ? backend->fd : -1,
                            0, backend->share && backend->fd >= 0, errp)) {
        return false;
    }
    backend->in_use = true;
    return true;
}
