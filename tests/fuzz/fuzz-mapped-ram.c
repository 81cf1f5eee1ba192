/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer target for a mapped-ram file's block header: the header
 * (block id, size, bitmap and pages offsets) read from the stream, its
 * checks against the file, the bitmap, and the pages it marks, loaded
 * into guest RAM by 1 to 4 reader threads, all by the real
 * mapped_ram_load_block() over a file (a memfd).
 *
 * Input, all big-endian:
 *   u8 options    bits 0-1: reader threads - 1
 *   be64 header   file offset of the block header (where the RAM setup
 *                 record puts it)
 *   be64 size     the file's size
 *   bytes         the file's first bytes; the rest, up to size, is zero
 * so that a seed made from a real file (tests/fuzz/make-seeds.py) keeps
 * only what precedes the zeros it ends with, and a mutation of an offset
 * or of the size needs no megabyte of input.  The machine is the stream
 * loader target's (256 KiB of RAM in block "pc.ram").
 */
#include "qemu/osdep.h"
#include <sys/mman.h>
#include "qemu/main-loop.h"
#include "system/hostmem.h"
#include "system/ramblock.h"
#include "migration/channel.h"
#include "migration/mapped-ram.h"
#include "migration/qemu-file.h"
#include "fuzz-common.h"

#define FUZZ_INPUT_HDR 17
/* Larger files are cut to this (sparse, but every page is read). */
#define FUZZ_MAX_FILE (8 * MiB)

static int file_fd = -1;

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_common_init();
    fuzz_machine_init(false);
    file_fd = memfd_create("fuzz-mapped-ram", MFD_CLOEXEC);
    if (file_fd < 0) {
        fuzz_fail("memfd_create: %s", strerror(errno));
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned threads;
    uint64_t header, file_size;
    const uint8_t *bytes;
    size_t len;
    QEMUFile *f;
    RAMBlock *rb;
    Error *err = NULL;
    int fd;

    fuzz_set_result(NULL);
    if (size < FUZZ_INPUT_HDR) {
        return -1;
    }
    threads = (data[0] & 3) + 1;
    header = get_be64(data + 1);
    file_size = MIN(get_be64(data + 9), FUZZ_MAX_FILE);
    bytes = data + FUZZ_INPUT_HDR;
    len = MIN(size - FUZZ_INPUT_HDR, FUZZ_MAX_FILE);
    file_size = MAX(file_size, len);

    if (ftruncate(file_fd, 0) < 0 || ftruncate(file_fd, file_size) < 0 ||
        pwrite(file_fd, bytes, len, 0) != (ssize_t)len) {
        fuzz_fail("writing the file: %s", strerror(errno));
    }
    RAMBLOCK_FOREACH(r) {
        memset(r->host, 0, r->size);
    }
    fd = dup(file_fd);
    if (fd < 0) {
        fuzz_fail("dup: %s", strerror(errno));
    }
    f = qemu_file_new_input(mig_channel_new_fd(fd, "fuzz-file", NULL));
    rb = qemu_file_seek(f, header, &err) ?
         mapped_ram_load_block(f, threads, NULL, &err) : NULL;
    qemu_fclose(f);

    fuzz_log("%u threads, header at 0x%" PRIx64 ", file of 0x%" PRIx64
             " bytes: %s", threads, header, file_size,
             rb ? "loaded" : error_get_pretty(err));
    fuzz_set_result(rb ? "ok" : error_get_pretty(err));
    error_free(err);
    return 0;
}
