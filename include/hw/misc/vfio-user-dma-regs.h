/*
 * vfio-user-dma: the register map of the sample DMA device, for drivers
 * (vmig's guest program, vfio-user-cli, tests).  Described in
 * docs/devel/vfio-user-dma.rst.
 *
 * PCI identity: vendor 0x1b36 (shared with emulated test devices),
 * device VDMA_PCI_DEVICE_ID, class "other system peripheral".
 *
 * BAR0 (4 KiB, 32-bit memory): registers below, the MSI-X table at
 * VDMA_MSIX_TABLE and its pending-bit array at VDMA_MSIX_PBA.  Registers
 * are little-endian; 64-bit registers may be accessed as one 8-byte
 * access or two 4-byte halves, 32-bit ones with a 4-byte access.
 *
 * BAR2 (64-bit prefetchable memory, --mem-size bytes, a power of two):
 * the device memory, readable and writable with REGION_READ/WRITE and
 * mappable (the region comes with the memfd that backs it).
 *
 * Device memory content model (what VDMA_REG_CHECK verifies): page p of
 * generation g holds 64-bit little-endian words
 *     word[i] = vdma_page_base(seed, p, g) ^ (i * VDMA_WORD_STRIDE)
 * All pages start at generation 0.  Background dirtying (--dirty-rate)
 * is a deterministic sequence: step k rewrites page
 * vdma_dirty_page(seed, k, nr_pages) with generation k + 1.  Pages
 * written by anyone else (REGION_WRITE to BAR2, a DMA from guest RAM)
 * become "foreign" and are left out of the check; writes through a
 * mapping of BAR2 are invisible to the device (see the docs).
 */
#ifndef CONTRIB_VFIO_USER_DMA_REGS_H
#define CONTRIB_VFIO_USER_DMA_REGS_H

#include <stdint.h>

#define VDMA_PCI_VENDOR_ID      0x1b36
#define VDMA_PCI_DEVICE_ID      0x11f0
#define VDMA_PCI_CLASS          0x088000

#define VDMA_REGS_BAR           0
#define VDMA_REGS_SIZE          0x1000
#define VDMA_MEM_BAR            2
#define VDMA_PAGE_SIZE          4096

#define VDMA_ID_VALUE           0x414d4456u     /* "VDMA" */
#define VDMA_VERSION_VALUE      1

/* Registers (offsets in BAR0).  RO: read-only, RW: read-write, WO: write. */
#define VDMA_REG_ID             0x00    /* RO u32: VDMA_ID_VALUE */
#define VDMA_REG_VERSION        0x04    /* RO u32: VDMA_VERSION_VALUE */
#define VDMA_REG_MEM_SIZE       0x08    /* RO u64: BAR2 size in bytes */
#define VDMA_REG_SRC            0x10    /* RW u64: source (offset or IOVA) */
#define VDMA_REG_DST            0x18    /* RW u64: destination */
#define VDMA_REG_LEN            0x20    /* RW u64: bytes to move */
#define VDMA_REG_CTRL           0x28    /* RW u32: VDMA_CTRL_* */
#define VDMA_REG_DOORBELL       0x2c    /* WO u32: VDMA_DOORBELL_GO */
#define VDMA_REG_STATUS         0x30    /* RO u32: VDMA_STATUS_*; write 1s to
                                         * clear DONE / ERROR / IRQ */
#define VDMA_REG_ERROR          0x34    /* RO u32: errno of the last failure */
#define VDMA_REG_COMPLETED      0x38    /* RO u64: transfers completed */
#define VDMA_REG_SEED           0x40    /* RO u64: content seed (--seed) */
#define VDMA_REG_DIRTY_STEPS    0x48    /* RO u64: dirtying steps so far */
/*
 * RO u64, computed when read: the number of non-foreign pages that do
 * not match the content model (0: device memory is intact).  Reading
 * takes time proportional to the memory size.
 */
#define VDMA_REG_CHECK          0x50
#define VDMA_REG_CHECK_FIRST    0x58    /* RO u64: first bad page of the last
                                         * check, or ~0 */
/* RO u64, computed when read: a checksum of the whole device memory. */
#define VDMA_REG_CHECKSUM       0x60
#define VDMA_REG_FOREIGN        0x68    /* RO u64: number of foreign pages */
#define VDMA_REG_SCRATCH        0x70    /* RW u64: free for the driver */
#define VDMA_REG_END            0x78

/* CTRL bits */
#define VDMA_CTRL_DIR_TO_RAM    (1u << 0)   /* device memory -> guest RAM;
                                             * clear: guest RAM -> device */
#define VDMA_CTRL_IRQ_ENABLE    (1u << 1)   /* interrupt on completion */
/*
 * Move the data through the device's own mapping of guest RAM (a pointer
 * from the library, then an explicit dirty mark) instead of the
 * library's copy functions.  Only for RAM the client mapped with an fd.
 */
#define VDMA_CTRL_DIRECT        (1u << 2)

#define VDMA_DOORBELL_GO        1u

/* STATUS bits */
#define VDMA_STATUS_BUSY        (1u << 0)
#define VDMA_STATUS_DONE        (1u << 1)
#define VDMA_STATUS_ERROR       (1u << 2)
#define VDMA_STATUS_IRQ         (1u << 3)   /* completion interrupt raised */

/*
 * Completion interrupt: MSI-X vector 0 when the client attached an
 * eventfd to it, else INTx.
 */
#define VDMA_MSIX_VECTORS       1
#define VDMA_MSIX_TABLE         0x800
#define VDMA_MSIX_PBA           0xc00

#define VDMA_WORD_STRIDE        0x9e3779b97f4a7c15ull

static inline uint64_t vdma_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* The first word of page @page at generation @gen. */
static inline uint64_t vdma_page_base(uint64_t seed, uint64_t page,
                                      uint64_t gen)
{
    return vdma_mix64(seed ^ vdma_mix64(page + 1) ^ vdma_mix64(gen << 1 | 1));
}

/* The page that dirtying step @step rewrites. */
static inline uint64_t vdma_dirty_page(uint64_t seed, uint64_t step,
                                       uint64_t nr_pages)
{
    return vdma_mix64(seed + 0x632be59bd9b4e019ull * (step + 1)) % nr_pages;
}

#endif
