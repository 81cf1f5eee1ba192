/*
 * PCI config space emulation: a type-0 header built from the device's
 * ids and BAR regions, a capability list, and per-byte write masks so
 * that the client can size BARs and program the command register and the
 * MSI / MSI-X capabilities, while everything else stays read-only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

#define PCI_VENDOR_ID       0x00
#define PCI_DEVICE_ID       0x02
#define PCI_COMMAND         0x04
#define PCI_STATUS          0x06
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_REVISION_ID     0x08
#define PCI_CLASS_PROG      0x09
#define PCI_CACHE_LINE_SIZE 0x0c
#define PCI_LATENCY_TIMER   0x0d
#define PCI_HEADER_TYPE     0x0e
#define PCI_BAR0            0x10
#define PCI_SUBSYS_VENDOR   0x2c
#define PCI_SUBSYS_ID       0x2e
#define PCI_ROM_ADDRESS     0x30
#define PCI_CAP_PTR         0x34
#define PCI_INTERRUPT_LINE  0x3c
#define PCI_INTERRUPT_PIN   0x3d
#define PCI_CAP_START       0x40
#define PCI_CONFIG_SIZE     256
#define PCIE_CONFIG_SIZE    4096

/* Command bits a guest may change: I/O, memory, bus master, parity, SERR,
 * INTx disable. */
#define PCI_COMMAND_WMASK   0x0547

#define PCI_CAP_ID_MSI      0x05
#define PCI_CAP_ID_MSIX     0x11

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = v;
    p[1] = v >> 8;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    put_le16(p, v);
    put_le16(p + 2, v >> 16);
}

int vus_pci_setup(VusCtx *ctx, const VusPciIds *ids)
{
    uint32_t size;

    if (ctx->realized || ctx->is_pci || !ids) {
        vus_err(ctx, "PCI setup: already done, or after realize");
        return -EINVAL;
    }
    size = ids->config_size ? ids->config_size : PCI_CONFIG_SIZE;
    if (size != PCI_CONFIG_SIZE && size != PCIE_CONFIG_SIZE) {
        vus_err(ctx, "PCI setup: config space size %u is neither 256 nor "
                "4096", size);
        return -EINVAL;
    }
    if (ids->class_code > 0xffffff) {
        vus_err(ctx, "PCI setup: class code 0x%x is wider than 24 bits",
                ids->class_code);
        return -EINVAL;
    }
    ctx->cfg = calloc(1, size);
    ctx->cfg_wmask = calloc(1, size);
    if (!ctx->cfg || !ctx->cfg_wmask) {
        free(ctx->cfg);
        free(ctx->cfg_wmask);
        ctx->cfg = ctx->cfg_wmask = NULL;
        return -ENOMEM;
    }
    ctx->ids = *ids;
    ctx->ids.config_size = size;
    ctx->is_pci = true;

    put_le16(ctx->cfg + PCI_VENDOR_ID, ids->vendor_id);
    put_le16(ctx->cfg + PCI_DEVICE_ID, ids->device_id);
    ctx->cfg[PCI_REVISION_ID] = ids->revision;
    ctx->cfg[PCI_CLASS_PROG] = ids->class_code;
    ctx->cfg[PCI_CLASS_PROG + 1] = ids->class_code >> 8;
    ctx->cfg[PCI_CLASS_PROG + 2] = ids->class_code >> 16;
    ctx->cfg[PCI_HEADER_TYPE] = 0;
    put_le16(ctx->cfg + PCI_SUBSYS_VENDOR, ids->subsys_vendor_id);
    put_le16(ctx->cfg + PCI_SUBSYS_ID, ids->subsys_id);

    put_le16(ctx->cfg_wmask + PCI_COMMAND, PCI_COMMAND_WMASK);
    ctx->cfg_wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    ctx->cfg_wmask[PCI_LATENCY_TIMER] = 0xff;
    ctx->cfg_wmask[PCI_INTERRUPT_LINE] = 0xff;
    ctx->cfg_next_cap = PCI_CAP_START;
    return 0;
}

int vus_pci_add_cap(VusCtx *ctx, uint8_t cap_id, const void *body,
                    size_t len, const uint8_t *wmask)
{
    uint32_t off;

    if (!ctx->is_pci || ctx->realized) {
        vus_err(ctx, "capability 0x%x: vus_pci_setup() first, and before "
                "realize", cap_id);
        return -EINVAL;
    }
    if ((len && !body) || len > PCI_CONFIG_SIZE ||
        ctx->cfg_next_cap + 2 + len > PCI_CONFIG_SIZE) {
        vus_err(ctx, "capability 0x%x: %zu bytes do not fit in config space",
                cap_id, len);
        return -ENOSPC;
    }
    off = ctx->cfg_next_cap;
    ctx->cfg[off] = cap_id;
    ctx->cfg[off + 1] = 0;
    if (len) {
        memcpy(ctx->cfg + off + 2, body, len);
    }
    if (wmask) {
        memcpy(ctx->cfg_wmask + off + 2, wmask, len);
    }
    if (ctx->cfg_last_cap) {
        ctx->cfg[ctx->cfg_last_cap + 1] = off;
    } else {
        ctx->cfg[PCI_CAP_PTR] = off;
    }
    ctx->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    ctx->cfg_last_cap = off;
    /* Capabilities are dword aligned. */
    ctx->cfg_next_cap = (off + 2 + len + 3) & ~3u;
    return off;
}

int vus_pci_add_msi_cap(VusCtx *ctx, uint32_t nr_vectors)
{
    /* Control, address low, address high, data (64-bit, no masking). */
    uint8_t body[12] = { 0 }, wmask[12] = { 0 };
    unsigned log2 = 0;

    if (!nr_vectors || nr_vectors > 32 || (nr_vectors & (nr_vectors - 1))) {
        vus_err(ctx, "MSI: %u vectors is not a power of two in [1, 32]",
                nr_vectors);
        return -EINVAL;
    }
    while ((1u << log2) < nr_vectors) {
        log2++;
    }
    put_le16(body, (log2 << 1) | (1u << 7));
    put_le16(wmask, 0x0071);            /* enable, multiple message enable */
    put_le32(wmask + 2, 0xfffffffc);
    put_le32(wmask + 6, 0xffffffff);
    put_le16(wmask + 10, 0xffff);
    return vus_pci_add_cap(ctx, PCI_CAP_ID_MSI, body, sizeof(body), wmask);
}

int vus_pci_add_msix_cap(VusCtx *ctx, uint32_t nr_vectors,
                         uint8_t table_bar, uint32_t table_offset,
                         uint8_t pba_bar, uint32_t pba_offset)
{
    /* Control, table offset/BIR, PBA offset/BIR. */
    uint8_t body[10] = { 0 }, wmask[10] = { 0 };
    const VusRegion *tbar, *pbar;

    if (!nr_vectors || nr_vectors > 2048) {
        vus_err(ctx, "MSI-X: %u vectors is outside [1, 2048]", nr_vectors);
        return -EINVAL;
    }
    if (table_bar > VFIO_PCI_BAR5_REGION_INDEX ||
        pba_bar > VFIO_PCI_BAR5_REGION_INDEX ||
        (table_offset & 7) || (pba_offset & 7)) {
        vus_err(ctx, "MSI-X: BAR index above 5 or offset not 8-aligned");
        return -EINVAL;
    }
    tbar = &ctx->regions[table_bar];
    pbar = &ctx->regions[pba_bar];
    if (!tbar->present || !pbar->present ||
        (uint64_t)table_offset + 16ull * nr_vectors > tbar->size ||
        (uint64_t)pba_offset + 8ull * ((nr_vectors + 63) / 64) >
        pbar->size) {
        vus_err(ctx, "MSI-X: table or PBA does not fit in its BAR (declare "
                "the BARs first)");
        return -EINVAL;
    }
    put_le16(body, nr_vectors - 1);
    put_le32(body + 2, table_offset | table_bar);
    put_le32(body + 6, pba_offset | pba_bar);
    wmask[1] = 0xc0;                    /* enable, function mask */
    return vus_pci_add_cap(ctx, PCI_CAP_ID_MSIX, body, sizeof(body), wmask);
}

void vus_pci_set_config_write_cb(VusCtx *ctx, VusConfigWriteFn fn)
{
    ctx->config_write_fn = fn;
}

int vus_pci_finish(VusCtx *ctx)
{
    VusRegion *cfg_region = &ctx->regions[VFIO_PCI_CONFIG_REGION_INDEX];
    const VusRegion *rom = &ctx->regions[VFIO_PCI_ROM_REGION_INDEX];

    for (int i = 0; i <= VFIO_PCI_BAR5_REGION_INDEX; i++) {
        const VusRegion *r = &ctx->regions[i];
        uint8_t *bar = ctx->cfg + PCI_BAR0 + 4 * i;
        uint8_t *mask = ctx->cfg_wmask + PCI_BAR0 + 4 * i;
        uint64_t addr_mask;

        if (!r->present || !r->size) {
            continue;
        }
        addr_mask = ~(r->size - 1);
        if (r->flags & VUS_BAR_IO) {
            put_le32(bar, 0x1);
            put_le32(mask, addr_mask & 0xfffffffc);
            continue;
        }
        put_le32(bar, ((r->flags & VUS_BAR_MEM64) ? 0x4 : 0) |
                      ((r->flags & VUS_BAR_PREFETCH) ? 0x8 : 0));
        put_le32(mask, addr_mask & 0xfffffff0);
        if (r->flags & VUS_BAR_MEM64) {
            put_le32(mask + 4, addr_mask >> 32);
        }
    }
    if (rom->present && rom->size) {
        if (rom->size < 2048 || (rom->size & (rom->size - 1)) ||
            rom->size > UINT32_MAX) {
            vus_err(ctx, "ROM: size 0x%" PRIx64 " is not a power of two in "
                    "[2 KiB, 2 GiB]", rom->size);
            return -EINVAL;
        }
        put_le32(ctx->cfg_wmask + PCI_ROM_ADDRESS,
                 (~(rom->size - 1) & 0xfffff800) | 1);
    }
    if (ctx->irqs[VFIO_PCI_INTX_IRQ_INDEX].count) {
        ctx->cfg[PCI_INTERRUPT_PIN] = 1;
    }
    if (ctx->ids.config_size == PCIE_CONFIG_SIZE) {
        /* An empty extended capability list: a zero header at 0x100. */
        memset(ctx->cfg + PCI_CONFIG_SIZE, 0, 4);
    }
    if (!cfg_region->present) {
        /* access stays NULL: the library serves this region itself. */
        cfg_region->present = true;
        cfg_region->size = ctx->ids.config_size;
        cfg_region->flags = VUS_REGION_READ | VUS_REGION_WRITE;
        if (ctx->nr_regions < VFIO_PCI_NUM_REGIONS) {
            ctx->nr_regions = VFIO_PCI_NUM_REGIONS;
        }
    }
    if (ctx->nr_regions < VFIO_PCI_NUM_REGIONS) {
        ctx->nr_regions = VFIO_PCI_NUM_REGIONS;
    }
    return 0;
}

ssize_t vus_pci_config_access(VusCtx *ctx, uint64_t offset, void *buf,
                              size_t count, bool is_write)
{
    uint8_t *data = buf;

    if (!ctx->is_pci || offset > ctx->ids.config_size ||
        count > ctx->ids.config_size - offset) {
        return -EINVAL;
    }
    pthread_mutex_lock(&ctx->cfg_lock);
    if (is_write) {
        for (size_t i = 0; i < count; i++) {
            uint8_t m = ctx->cfg_wmask[offset + i];
            ctx->cfg[offset + i] = (ctx->cfg[offset + i] & ~m) |
                                   (data[i] & m);
        }
    } else {
        memcpy(data, ctx->cfg + offset, count);
    }
    pthread_mutex_unlock(&ctx->cfg_lock);
    if (is_write && ctx->config_write_fn) {
        ctx->config_write_fn(ctx->opaque, offset, count);
    }
    return count;
}

int vus_pci_config_read(VusCtx *ctx, uint32_t offset, void *buf, size_t len)
{
    ssize_t ret = vus_pci_config_access(ctx, offset, buf, len, false);

    return ret < 0 ? (int)ret : 0;
}
