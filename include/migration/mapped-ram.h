/*
 * mapped-ram: guest RAM at fixed places of a migration file.
 *
 * With the capability, each RAM block owns a region of the file: a
 * bitmap (one bit per page: the slot holds the page's data) and then
 * one 4 KiB slot per page, page N always at pages_offset + N * 4 KiB.
 * A page written again in a later pass overwrites its slot, so the file
 * never grows beyond the size of RAM.  A clear bit means "zero": the
 * slot is never read.  docs/devel/migration.rst has the layout.
 *
 * The source writes slots with pwrite() straight from guest RAM, from
 * the migration thread or from the multifd channels (each with its own
 * fd on the file); the destination reads the bitmap and preads the set
 * ranges straight into guest RAM, from one thread or one per channel.
 * With the direct-io parameter, page I/O uses O_DIRECT where the file
 * system takes it.
 */
#ifndef MIGRATION_MAPPED_RAM_H
#define MIGRATION_MAPPED_RAM_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "migration/qemu-file.h"
#include "system/ramblock.h"

/* Alignment of every block's page slots in the file. */
#define MAPPED_RAM_ALIGN (1 * MiB)

typedef struct MappedRamBlock {
    RAMBlock *rb;
    uint64_t pages;             /* rb->size / TARGET_PAGE_SIZE */
    uint64_t bitmap_offset;     /* file offset of the bitmap */
    uint64_t pages_offset;      /* file offset of page 0's slot */
    /*
     * Source: the slots that hold the page's latest data.  Writers of
     * disjoint pages may run at once (bits change atomically); the
     * bitmap goes to the file when the migration completes.
     */
    unsigned long *bitmap;
} MappedRamBlock;

/* Bytes of @pages' bitmap in the file: little-endian 64-bit words. */
uint64_t mapped_ram_bitmap_bytes(uint64_t pages);

/*
 * Open @path for page I/O (@writing or reading, never truncating); with
 * the direct-io parameter past the page cache (O_DIRECT) when the file
 * system accepts it, buffered otherwise.  Returns the new fd, or -1 with
 * errp set.
 */
int mapped_ram_open(const char *path, bool writing, Error **errp);
/* The same for the file behind @fd (also when it was unlinked). */
int mapped_ram_reopen(int fd, bool writing, Error **errp);

/* ---- Source ---- */

/*
 * Put @mb's block header into the stream @f (a file: transport), place
 * the block's region right after it and move the stream past the
 * region.  Fills in @mb (the bitmap starts empty: every slot "zero").
 * Migration thread, save_setup.
 */
bool mapped_ram_save_block_header(QEMUFile *f, MappedRamBlock *mb,
                                  RAMBlock *rb, uint64_t header_flags,
                                  Error **errp);

/*
 * Publish the blocks being saved to the multifd channels, which find
 * them with mapped_ram_lookup(); NULL, 0 withdraws them.
 */
void mapped_ram_publish(MappedRamBlock *blocks, unsigned n);
MappedRamBlock *mapped_ram_lookup(RAMBlock *rb);

/*
 * Write the pages [offset, offset + n pages) of @mb's block into their
 * slots through @fd: runs of data pages with one pwrite each, straight
 * from guest RAM; zero pages are not written and their bits cleared.
 * *@normal and *@zero count the pages of each kind; *@bytes the bytes
 * written.  Any thread; concurrent callers write disjoint pages.
 */
bool mapped_ram_save_run(int fd, MappedRamBlock *mb, uint64_t offset,
                         uint64_t n, uint64_t *normal, uint64_t *zero,
                         uint64_t *bytes, Error **errp);

/*
 * Write @mb's bitmap to its place through @fd: after the last page was
 * written (migration thread, at completion).
 */
bool mapped_ram_save_bitmap(int fd, MappedRamBlock *mb, Error **errp);

/* ---- Destination ---- */

/*
 * Read a block header (the record's flags already read) from @f, check
 * it against the file, load the block's set pages into guest RAM with
 * @threads readers (1: this thread alone), and move the stream past the
 * region.  @prefault (may be NULL) is told where the readers are, to
 * fault fresh RAM in ahead of them.  Returns the block, or NULL with
 * errp set (the message names the problem: unknown block, size, region
 * outside the file, bitmap bits beyond the block, a short read).
 * Incoming thread.
 */
typedef struct RamPrefault RamPrefault;
RAMBlock *mapped_ram_load_block(QEMUFile *f, unsigned threads,
                                RamPrefault *prefault, Error **errp);

#endif
