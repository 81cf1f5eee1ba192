/*
 * Memory backends: host memory for guest RAM, as user-creatable objects
 * (-object memory-backend-memfd|ram|file,id=ID,size=SIZE,...), and the
 * machine's RAM built from one of them.
 *
 *   memory-backend-memfd  memfd, MAP_SHARED by default: the fd can be
 *                         handed to device servers (vfio-user DMA_MAP).
 *   memory-backend-ram    anonymous memory, private by default.
 *   memory-backend-file   mem-path=FILE or DIRECTORY (a temporary file),
 *                         share=on: MAP_SHARED, off: MAP_PRIVATE.
 *
 * Properties: size (required), share, prealloc (touch every page at
 * creation so that the first guest write does not fault), and mem-path
 * (file backend).  A backend is realized with the BQL held.
 */
#ifndef SYSTEM_HOSTMEM_H
#define SYSTEM_HOSTMEM_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qom/object.h"

#define TYPE_MEMORY_BACKEND       "memory-backend"
#define TYPE_MEMORY_BACKEND_MEMFD "memory-backend-memfd"
#define TYPE_MEMORY_BACKEND_RAM   "memory-backend-ram"
#define TYPE_MEMORY_BACKEND_FILE  "memory-backend-file"

typedef struct HostMemoryBackend {
    Object parent_obj;

    /* properties */
    uint64_t size;
    bool share;
    bool prealloc;
    char *mem_path;             /* memory-backend-file only */

    /* set by realize */
    void *host;                 /* mapping of size bytes */
    int fd;                     /* memfd / file, or -1 (anonymous) */
    bool mapped;                /* host is ours to unmap */
    bool in_use;                /* guest RAM is built on it */
} HostMemoryBackend;

/* The backend named /objects/@id, or NULL with a message naming @id. */
HostMemoryBackend *host_memory_backend_find(const char *id, Error **errp);
/* Its id (the object's name), which names the RAM block built on it. */
const char *host_memory_backend_id(const HostMemoryBackend *backend);

/*
 * Build the machine's RAM at gpa 0.  @ram_size is -m (0 when not given:
 * the backend's size, or 128 MiB); @backend_id is -machine
 * memory-backend=ID (NULL: create a memfd backend /objects/pc.ram of
 * @ram_size).  A -m that differs from the backend's size is an error
 * naming both.  The RAM block's idstr is the backend's id.
 */
#define MACHINE_DEFAULT_RAM_SIZE (128 * MiB)
bool machine_ram_init(uint64_t ram_size, const char *backend_id, Error **errp);

#endif
