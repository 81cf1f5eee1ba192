/*
 * Reading a VFIO region info's capability chain (hw/vfio/region-caps.c),
 * for both transports: it is in the vfio-user client library, which the
 * vfio-user tools link without the rest of hw/vfio, and vmig links it too.
 */
#ifndef HW_VFIO_REGION_CAPS_H
#define HW_VFIO_REGION_CAPS_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "linux/vfio.h"

/*
 * The sparse mmap areas of a region info (its capability chain), checked
 * against the region size and against info->argsz.  Returns the number of
 * areas or -1 for a malformed chain; *@areas is g_malloc'ed.  *@listed
 * (may be NULL) tells a chain without the capability (the whole region
 * may be mapped) from one that lists no area (nothing may be), both 0.
 */
int vfio_region_sparse_areas(const struct vfio_region_info *info,
                             struct vfio_region_sparse_mmap_area **areas,
                             bool *listed, Error **errp);

#endif
