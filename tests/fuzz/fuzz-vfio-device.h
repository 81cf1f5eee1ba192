/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * A VFIO device for the stream loader's fuzz target: hw/vfio's own
 * migration handlers over a VFIODeviceIOOps that keeps the device in
 * memory.  See fuzz-vfio-device.c.
 */
#ifndef TESTS_FUZZ_VFIO_DEVICE_H
#define TESTS_FUZZ_VFIO_DEVICE_H

#include "qemu/osdep.h"
#include "qom/object.h"

/* The vendor and device ID of contrib/vfio-user-dma, as the seeds carry. */
#define FUZZ_VFIO_VENDOR_ID 0x1b36
#define FUZZ_VFIO_DEVICE_ID 0x11f0

/*
 * Create the device as /machine/peripheral/@id (its migration section is
 * "vfio/@id"), attached to hw/vfio.  BQL held.  object_unparent() it.
 */
Object *fuzz_vfio_device_new(const char *id);
/* Whether the device left RESUMING with a state it accepted. */
bool fuzz_vfio_device_loaded(Object *obj);

#endif
