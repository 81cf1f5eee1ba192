/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * A VFIO device for the stream loader's fuzz target.  The migration
 * handlers are hw/vfio's own (migration.c, attached through
 * vfio_device_attach() as vfio-user-pci does); only the transport below
 * VFIODeviceIOOps is replaced by a device kept in memory, so that a run
 * needs no server process and stays deterministic.
 *
 * The device behaves as the migration uAPI asks of a real one: it takes
 * one FSM arc per call (hw/vfio promises that: anything else is a bug
 * there and aborts), accepts data only in RESUMING, reads every byte it
 * is given, and checks its stream when it leaves RESUMING.  Its check is
 * arbitrary but cheap: a stream of odd length is refused, so that
 * hw/vfio's path for a device that rejects its state runs too.
 */
#include "qemu/osdep.h"
#include "hw/vfio/vfio-device.h"
#include "vfio-user-server/libvus.h"
#include "fuzz-vfio-device.h"

#define TYPE_FUZZ_VFIO_DEVICE "x-fuzz-vfio-device"
/* As contrib/vfio-user-dma offers by default. */
#define FUZZ_VFIO_MIG_FLAGS (VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | \
                             VFIO_MIGRATION_PRE_COPY)
#define PCI_COMMAND_OFFSET 4

typedef struct FuzzVFIODevice {
    Object parent_obj;
    VFIODevice vdev;
    bool attached;

    /* The device: used by one thread at a time (the loader's). */
    uint32_t state;
    uint64_t data_len;          /* bytes written since RESUMING began */
    uint64_t data_sum;
    uint16_t command;
    bool loaded;                /* left RESUMING with a stream it took */
} FuzzVFIODevice;

static FuzzVFIODevice *fuzz_dev(VFIODevice *vdev)
{
    return container_of(vdev, FuzzVFIODevice, vdev);
}

static bool fd_region_write(VFIODevice *vdev, uint32_t index,
                            uint64_t offset, const void *buf, size_t len,
                            Error **errp)
{
    /* A load touches only the command register. */
    if (index != VFIO_PCI_CONFIG_REGION_INDEX ||
        offset != PCI_COMMAND_OFFSET || len != 2) {
        error_setg(errp, "%s: no register at 0x%" PRIx64 " (%zu bytes) of "
                   "region %u", vdev->name, offset, len, index);
        return false;
    }
    memcpy(&fuzz_dev(vdev)->command, buf, len);
    return true;
}

static bool fd_reset(VFIODevice *vdev, Error **errp)
{
    FuzzVFIODevice *d = fuzz_dev(vdev);

    d->state = VFIO_DEVICE_STATE_RUNNING;
    d->loaded = false;
    return true;
}

static bool fd_device_feature(VFIODevice *vdev, uint32_t flags,
                              const void *data, size_t len, void *out,
                              size_t out_len, uint32_t *dev_errno,
                              Error **errp)
{
    /* Like vfio-user-dma, the device logs its DMA: no migration blocker. */
    if (flags == (VFIO_DEVICE_FEATURE_DMA_LOGGING_START |
                  VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET)) {
        return true;
    }
    if (dev_errno) {
        *dev_errno = ENOTTY;
    }
    error_setg(errp, "%s: feature 0x%x is not offered", vdev->name, flags);
    return false;
}

static bool fd_mig_get_flags(VFIODevice *vdev, uint64_t *flags, Error **errp)
{
    *flags = FUZZ_VFIO_MIG_FLAGS;
    return true;
}

static bool fd_mig_get_state(VFIODevice *vdev, uint32_t *state, Error **errp)
{
    *state = fuzz_dev(vdev)->state;
    return true;
}

static bool fd_mig_set_state(VFIODevice *vdev, uint32_t state, Error **errp)
{
    FuzzVFIODevice *d = fuzz_dev(vdev);

    if (state == d->state ||
        vus_mig_next_state(FUZZ_VFIO_MIG_FLAGS, d->state, state) !=
        (int)state) {
        g_error("%s: hw/vfio asked for %u -> %u, which is not one arc",
                vdev->name, d->state, state);
    }
    if (d->state == VFIO_DEVICE_STATE_RESUMING) {
        /* The device checks the whole stream now, as a real one does. */
        if (d->data_len & 1) {
            error_setg(errp, "%s: a stream of %" PRIu64 " bytes is not one "
                       "this device saved", vdev->name, d->data_len);
            return false;
        }
        d->loaded = true;
    }
    if (state == VFIO_DEVICE_STATE_RESUMING) {
        d->data_len = 0;
        d->data_sum = 0;
        d->loaded = false;
    }
    d->state = state;
    return true;
}

static bool fd_mig_data_writev(VFIODevice *vdev, const struct iovec *iov,
                               unsigned iov_cnt, Error **errp)
{
    FuzzVFIODevice *d = fuzz_dev(vdev);

    if (d->state != VFIO_DEVICE_STATE_RESUMING) {
        error_setg(errp, "%s: migration data written in state %u",
                   vdev->name, d->state);
        return false;
    }
    /* Read every byte, so that the sanitizers check the whole buffer. */
    for (unsigned i = 0; i < iov_cnt; i++) {
        const uint8_t *p = iov[i].iov_base;

        for (size_t j = 0; j < iov[i].iov_len; j++) {
            d->data_sum = d->data_sum * 31 + p[j];
        }
        d->data_len += iov[i].iov_len;
    }
    return true;
}

static const VFIODeviceIOOps fuzz_vfio_io_ops = {
    .region_write = fd_region_write,
    .reset = fd_reset,
    .device_feature = fd_device_feature,
    .mig_get_flags = fd_mig_get_flags,
    .mig_get_state = fd_mig_get_state,
    .mig_set_state = fd_mig_set_state,
    .mig_data_writev = fd_mig_data_writev,
};

static void fd_finalize(Object *obj)
{
    FuzzVFIODevice *d = (FuzzVFIODevice *)obj;

    if (d->attached) {
        vfio_device_detach(&d->vdev);
        d->attached = false;
    }
    g_clear_pointer(&d->vdev.name, g_free);
    g_clear_pointer(&d->vdev.id, g_free);
}

static bool fd_realize(Object *obj, Error **errp)
{
    FuzzVFIODevice *d = (FuzzVFIODevice *)obj;
    VFIODevice *vdev = &d->vdev;

    vdev->owner = obj;
    vdev->id = g_strdup(obj->name);
    vdev->name = g_strdup_printf("fuzz-vfio %s", obj->name);
    vdev->io_ops = &fuzz_vfio_io_ops;
    vdev->irq_fd = -1;
    /* Config space is little-endian: vendor ID, then device ID. */
    vdev->config[0] = FUZZ_VFIO_VENDOR_ID & 0xff;
    vdev->config[1] = FUZZ_VFIO_VENDOR_ID >> 8;
    vdev->config[2] = FUZZ_VFIO_DEVICE_ID & 0xff;
    vdev->config[3] = FUZZ_VFIO_DEVICE_ID >> 8;
    d->state = VFIO_DEVICE_STATE_RUNNING;
    if (!vfio_device_attach(vdev, errp)) {
        fd_finalize(obj);
        return false;
    }
    d->attached = true;
    return true;
}

/* The properties of every VFIO device, with their defaults. */
static const Property fuzz_vfio_props[] = {
    VFIO_DEVICE_PROPS(FuzzVFIODevice, vdev),
    { 0 }
};

static const ObjectClass fuzz_vfio_class = {
    .name = TYPE_FUZZ_VFIO_DEVICE,
    .parent = "device",
    .desc = "fuzzing only: a VFIO device kept in memory",
    .instance_size = sizeof(FuzzVFIODevice),
    .props = fuzz_vfio_props,
    .realize = fd_realize,
    .finalize = fd_finalize,
};

static void fuzz_vfio_register_types(void)
{
    type_register(&fuzz_vfio_class);
}
type_init(fuzz_vfio_register_types)

Object *fuzz_vfio_device_new(const char *id)
{
    return object_create(TYPE_FUZZ_VFIO_DEVICE,
                         object_get_container("/machine/peripheral"), id,
                         NULL, &error_abort);
}

bool fuzz_vfio_device_loaded(Object *obj)
{
    return ((FuzzVFIODevice *)obj)->loaded;
}
