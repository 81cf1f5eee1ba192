/*
 * mapped-ram without the rest of vmig: a block's region written by one
 * writer and by multifd channels, rewritten (a page that became zero
 * must load as zero), loaded by 1 to 3 readers, and damaged files.
 */
#include "qemu/osdep.h"
#include <sys/mman.h>
#include "migration/mapped-ram.h"
#include "migration/multifd.h"
#include "migration/ram.h"

#define PAGES 67                /* not a multiple of 64: a partial word */
#define FLAG_BLOCK 0x08         /* the record flags ram.c passes */
#define STREAM_HEAD 0x11223344u
#define STREAM_TAIL 0x55667788u

/* The destination block is listed; the source is another mapping. */
typedef struct TestBlocks {
    RAMBlock *dst;
    RAMBlock src;
    char *path;
} TestBlocks;

static void fill_page(RAMBlock *rb, uint64_t page, uint8_t seed)
{
    memset(rb->host + page * TARGET_PAGE_SIZE, seed, TARGET_PAGE_SIZE);
}

/* Both blocks of @pages pages, all zero (untouched) on both sides. */
static void blocks_init_zero(TestBlocks *t, uint64_t pages)
{
    uint64_t size = pages * TARGET_PAGE_SIZE;

    t->dst = ram_block_add("ram-mapped", 0, size, -1, 0, false,
                           &error_abort);
    memset(&t->src, 0, sizeof(t->src));
    g_strlcpy(t->src.idstr, "ram-mapped", sizeof(t->src.idstr));
    t->src.size = size;
    t->src.pages = pages;
    t->src.host = mmap(NULL, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    g_assert(t->src.host != MAP_FAILED);
    t->path = g_strdup_printf("%s/mapped-ram-XXXXXX", g_get_tmp_dir());
    close(g_mkstemp(t->path));
}

static void blocks_init(TestBlocks *t)
{
    blocks_init_zero(t, PAGES);
    /* Every third page zero, the others data. */
    for (uint64_t p = 0; p < PAGES; p++) {
        if (p % 3) {
            fill_page(&t->src, p, p);
        }
    }
}

static void blocks_free(TestBlocks *t)
{
    munmap(t->src.host, t->src.size);
    unlink(t->path);
    g_free(t->path);
    ram_blocks_free();
}

/*
 * A stream around one block header: head, header (region skipped),
 * tail.  @write_pages writes the pages; the bitmap goes last.
 */
static void save_file(TestBlocks *t, void (*write_pages)(TestBlocks *,
                                                         MappedRamBlock *))
{
    int fd = open(t->path, O_RDWR | O_TRUNC);
    QEMUFile *f = qemu_file_new_output(mig_channel_new_fd(fd, "test",
                                                          NULL));
    MappedRamBlock mb;

    qemu_put_be32(f, STREAM_HEAD);
    g_assert_true(mapped_ram_save_block_header(f, &mb, &t->src, FLAG_BLOCK,
                                               &error_abort));
    g_assert_cmpint(mb.pages_offset % MAPPED_RAM_ALIGN, ==, 0);
    mapped_ram_publish(&mb, 1);
    write_pages(t, &mb);
    mapped_ram_publish(NULL, 0);
    g_assert_true(mapped_ram_save_bitmap(fd, &mb, &error_abort));
    qemu_put_be32(f, STREAM_TAIL);
    g_assert_cmpint(qemu_fclose(f), ==, 0);
    g_free(mb.bitmap);
}

/* Load the file with @threads readers; NULL or the error. */
static Error *load_file(TestBlocks *t, unsigned threads)
{
    int fd = open(t->path, O_RDONLY);
    QEMUFile *f = qemu_file_new_input(mig_channel_new_fd(fd, "test", NULL));
    /* Several readers also have the prefault helper ahead of them. */
    RamPrefault *prefault = threads > 1 ? ram_prefault_start() : NULL;
    Error *err = NULL;

    /* Zero again, and not resident: the load must write what it needs. */
    g_assert_cmpint(madvise(t->dst->host, t->dst->size, MADV_DONTNEED), ==, 0);
    g_assert_cmphex(qemu_get_be32(f), ==, STREAM_HEAD);
    g_assert_cmphex(qemu_get_be64(f), ==, FLAG_BLOCK);
    if (mapped_ram_load_block(f, threads, prefault, &err) == t->dst) {
        /* The stream goes on right after the region. */
        g_assert_cmphex(qemu_get_be32(f), ==, STREAM_TAIL);
    }
    ram_prefault_stop(prefault);
    qemu_fclose(f);
    return err;
}

/* One writer, two passes: page 1 becomes zero, page 3 gets data. */
static void write_two_passes(TestBlocks *t, MappedRamBlock *mb)
{
    int fd = mapped_ram_open(t->path, true, &error_abort);
    uint64_t normal = 0, zero = 0, bytes = 0;

    g_assert_true(mapped_ram_save_run(fd, mb, 0, PAGES, &normal, &zero,
                                      &bytes, &error_abort));
    g_assert_cmpint(zero, ==, (PAGES + 2) / 3);
    g_assert_cmpint(normal, ==, PAGES - zero);
    g_assert_cmpint(bytes, ==, normal * TARGET_PAGE_SIZE);
    fill_page(&t->src, 1, 0);
    fill_page(&t->src, 3, 0xee);
    g_assert_true(mapped_ram_save_run(fd, mb, 0, 5, &normal, &zero,
                                      &bytes, &error_abort));
    g_assert_false(test_bit(1, mb->bitmap));
    g_assert_true(test_bit(3, mb->bitmap));
    close(fd);
}

static void test_rewrite(void)
{
    TestBlocks t;

    blocks_init(&t);
    save_file(&t, write_two_passes);
    for (unsigned threads = 1; threads <= 3; threads++) {
        g_assert_null(load_file(&t, threads));
        g_assert_cmpmem(t.dst->host, t.dst->size, t.src.host, t.src.size);
    }
    blocks_free(&t);
}

/* Every page through two multifd channels, then page 2 zeroed. */
static void write_multifd(TestBlocks *t, MappedRamBlock *mb)
{
    MigrationAddress addr = { .type = MIGRATION_ADDRESS_FILE,
                              .path = t->path };
    static const uint8_t uuid[16];
    MigCancel *cancel = mig_cancel_new(&error_abort);
    MultiFDParams params;

    multifd_params_init(&params);
    params.mapped_ram = true;
    g_assert_true(multifd_send_setup(&addr, uuid, &params, cancel,
                                     &error_abort));
    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t p = 0; p < PAGES; p++) {
            g_assert_true(multifd_queue_ram_page(&t->src, p * TARGET_PAGE_SIZE,
                                                 &error_abort));
        }
        g_assert_true(multifd_send_sync(&error_abort));
        fill_page(&t->src, 2, 0);
    }
    g_assert_cmpint(multifd_ram_normal_pages() + multifd_ram_zero_pages(),
                    ==, 2 * PAGES);
    multifd_send_shutdown();
    mig_cancel_free(cancel);
}

static void test_multifd(void)
{
    TestBlocks t;

    blocks_init(&t);
    save_file(&t, write_multifd);
    g_assert_null(load_file(&t, 2));
    g_assert_cmpmem(t.dst->host, t.dst->size, t.src.host, t.src.size);
    blocks_free(&t);
}

/* Every page of the block in one pass. */
static void write_once(TestBlocks *t, MappedRamBlock *mb)
{
    int fd = mapped_ram_open(t->path, true, &error_abort);
    uint64_t normal = 0, zero = 0, bytes = 0;

    g_assert_true(mapped_ram_save_run(fd, mb, 0, mb->pages, &normal, &zero,
                                      &bytes, &error_abort));
    close(fd);
}

/*
 * 256 MiB whose only data is its first page: the readers' prefault
 * helper may run ahead of that page's window, but windows of zero pages
 * must not make it fault the rest in (zero pages are never touched).
 */
static void test_zero_rest_untouched(void)
{
    uint64_t pages = 256 * MiB / TARGET_PAGE_SIZE;
    size_t far = 128 * MiB / TARGET_PAGE_SIZE, resident = 0;
    g_autofree unsigned char *vec = g_malloc(pages);
    TestBlocks t;

    blocks_init_zero(&t, pages);
    fill_page(&t.src, 0, 0x42);
    save_file(&t, write_once);
    g_assert_null(load_file(&t, 2));
    g_assert_cmpint(mincore(t.dst->host, t.dst->size, vec), ==, 0);
    for (size_t p = far; p < pages; p++) {
        resident += vec[p] & 1;
    }
    g_assert_cmpuint(resident, ==, 0);
    g_assert_cmpmem(t.dst->host, TARGET_PAGE_SIZE, t.src.host,
                    TARGET_PAGE_SIZE);
    blocks_free(&t);
}

static void assert_load_fails(TestBlocks *t, const char *fragment)
{
    Error *err = load_file(t, 2);

    g_assert_nonnull(err);
    if (!strstr(error_get_pretty(err), fragment)) {
        g_error("'%s' lacks '%s'", error_get_pretty(err), fragment);
    }
    error_free(err);
}

static void test_damaged(void)
{
    TestBlocks t;
    uint64_t word;
    int fd;
    /* head, flags, counted id, size: then the two offsets */
    off_t at = 4 + 8 + 1 + strlen("ram-mapped") + 8;
    uint64_t bitmap_offset, pages_offset;

    blocks_init(&t);
    save_file(&t, write_two_passes);
    fd = open(t.path, O_RDWR);
    g_assert_cmpint(pread(fd, &bitmap_offset, 8, at), ==, 8);
    g_assert_cmpint(pread(fd, &pages_offset, 8, at + 8), ==, 8);
    bitmap_offset = GUINT64_FROM_BE(bitmap_offset);
    pages_offset = GUINT64_FROM_BE(pages_offset);

    /* A bit for page 69 of 67. */
    g_assert_cmpint(pread(fd, &word, 8, bitmap_offset + 8), ==, 8);
    word |= GUINT64_TO_LE(1ULL << 5);
    g_assert_cmpint(pwrite(fd, &word, 8, bitmap_offset + 8), ==, 8);
    assert_load_fails(&t, "beyond the block's 67 pages");

    g_assert_cmpint(ftruncate(fd, pages_offset + 10 * TARGET_PAGE_SIZE), ==,
                    0);
    assert_load_fails(&t, "truncated");
    close(fd);
    blocks_free(&t);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/multifd/mapped-ram/rewrite", test_rewrite);
    g_test_add_func("/multifd/mapped-ram/multifd", test_multifd);
    g_test_add_func("/multifd/mapped-ram/damaged", test_damaged);
    g_test_add_func("/multifd/mapped-ram/zero-rest-untouched",
                    test_zero_rest_untouched);
    return g_test_run();
}
