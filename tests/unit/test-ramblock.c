/*
 * RAM blocks, memory backends, the machine's RAM and the guest memory API.
 */
#include "qemu/osdep.h"
#include <sys/mman.h>
#include "qemu/main-loop.h"
#include "system/hostmem.h"
#include "system/ramblock.h"

static void test_teardown(void)
{
    ram_blocks_free();
    object_unparent(object_get_container("/objects"));
}

static void test_add_and_lookup(void)
{
    RAMBlock *low = ram_block_add("low", 0, 64 * KiB, -1, 0, false,
                                  &error_abort);
    RAMBlock *high = ram_block_add("high", 1 * MiB, 32 * KiB, -1, 0, false,
                                   &error_abort);
    uint64_t offset = 0;

    g_assert(ram_block_first() == low);
    g_assert(low->next == high);
    g_assert(ram_block_find("high") == high);
    g_assert_null(ram_block_find("nope"));
    g_assert_cmpuint(ram_total_size(), ==, 96 * KiB);
    g_assert_cmpuint(high->pages, ==, 8);

    g_assert(ram_block_from_gpa(1 * MiB + 4096, 4096, &offset) == high);
    g_assert_cmpuint(offset, ==, 4096);
    /* The last byte of a block, and one past it. */
    g_assert(ram_block_from_gpa(64 * KiB - 1, 1, NULL) == low);
    g_assert_null(ram_block_from_gpa(64 * KiB - 1, 2, NULL));
    g_assert_null(ram_block_from_gpa(64 * KiB, 1, NULL));
    g_assert_null(ram_block_from_gpa(UINT64_MAX, 2, NULL));

    g_assert_nonnull(guest_ram_ptr(1 * MiB, 32 * KiB));
    g_assert_null(guest_ram_ptr(1 * MiB, 32 * KiB + 1));
    test_teardown();
}

static void test_add_rejects(void)
{
    Error *err = NULL;

    ram_block_add("a", 0, 64 * KiB, -1, 0, false, &error_abort);
    g_assert_null(ram_block_add("a", 1 * MiB, 4096, -1, 0, false, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "exists already"));
    error_free(err);
    err = NULL;
    g_assert_null(ram_block_add("b", 60 * KiB, 8 * KiB, -1, 0, false, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "overlaps block 'a'"));
    error_free(err);
    err = NULL;
    g_assert_null(ram_block_add("c", 1 * MiB, 100, -1, 0, false, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "multiples of the page"));
    error_free(err);
    err = NULL;
    g_assert_null(ram_block_add("", 1 * MiB, 4096, -1, 0, false, &err));
    error_free(err);
    g_assert_cmpuint(ram_total_size(), ==, 64 * KiB);
    test_teardown();
}

static void test_read_write_across_blocks(void)
{
    uint8_t buf[3 * 4096], back[sizeof(buf)];

    ram_block_add("a", 0, 8 * KiB, -1, 0, false, &error_abort);
    ram_block_add("b", 8 * KiB, 8 * KiB, -1, 0, false, &error_abort);
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = i * 7 + 3;
    }
    g_assert_true(guest_ram_write(2 * KiB, buf, sizeof(buf)));
    g_assert_true(guest_ram_read(2 * KiB, back, sizeof(back)));
    g_assert_cmpmem(buf, sizeof(buf), back, sizeof(back));
    /* Pieces landed in both blocks. */
    g_assert_cmpint(ram_block_find("b")->host[0], ==, buf[6 * KiB]);

    /* Past the end of RAM: nothing is written at all. */
    memset(back, 0xee, sizeof(back));
    g_assert_false(guest_ram_write(14 * KiB, back, sizeof(back)));
    g_assert_true(guest_ram_read(14 * KiB, back, 2 * KiB));
    for (size_t i = 0; i < 2 * KiB; i++) {
        g_assert_cmpint(back[i], ==, 0);
    }
    g_assert_false(guest_ram_read(16 * KiB, back, 1));
    g_assert_true(guest_ram_read(0, back, 0));
    test_teardown();
}

static HostMemoryBackend *make_backend(const char *type, const char *opts,
                                       Error **errp)
{
    g_autoptr(KeyVal) kv = keyval_parse(opts, NULL, "-object", errp);
    const char *id;

    if (!kv) {
        return NULL;
    }
    id = keyval_get(kv, "id");
    return (HostMemoryBackend *)object_create(type,
                                              object_get_container("/objects"),
                                              id, kv, errp);
}

static void test_backend_memfd_shared(void)
{
    HostMemoryBackend *be = make_backend(TYPE_MEMORY_BACKEND_MEMFD,
                                         "id=mem0,size=1M", &error_abort);
    RAMBlock *rb;
    uint8_t byte = 0;

    g_assert_true(be->share);
    g_assert_cmpint(be->fd, >=, 0);
    /* Sealed: a device server that maps it cannot shrink it under us. */
    g_assert_cmpint(ftruncate(be->fd, 4096), ==, -1);
    g_assert_cmpint(errno, ==, EPERM);
    g_assert_true(machine_ram_init(0, "mem0", &error_abort));
    rb = ram_block_first();
    g_assert_cmpstr(rb->idstr, ==, "mem0");
    g_assert_cmpuint(rb->gpa, ==, 0);
    g_assert_cmpuint(rb->size, ==, 1 * MiB);
    g_assert_true(rb->shared);
    g_assert_cmpint(rb->fd, ==, be->fd);

    /* A write through the guest memory API shows through the fd. */
    g_assert_true(guest_ram_write(4096 + 5, "\x5a", 1));
    g_assert_cmpint(pread(rb->fd, &byte, 1, 4096 + 5), ==, 1);
    g_assert_cmpint(byte, ==, 0x5a);
    test_teardown();
}

static void test_backend_ram_private(void)
{
    HostMemoryBackend *be = make_backend(TYPE_MEMORY_BACKEND_RAM,
                                         "id=r,size=2M,prealloc=on",
                                         &error_abort);
    unsigned char resident[2 * MiB / 4096];

    g_assert_false(be->share);
    g_assert_cmpint(be->fd, ==, -1);
    /* prealloc=on: every page is resident before the guest touches it. */
    g_assert_cmpint(mincore(be->host, be->size, resident), ==, 0);
    for (size_t i = 0; i < G_N_ELEMENTS(resident); i++) {
        g_assert_true(resident[i] & 1);
    }
    g_assert_true(machine_ram_init(2 * MiB, "r", &error_abort));
    g_assert_cmpint(ram_block_first()->fd, ==, -1);
    g_assert_false(ram_block_first()->shared);
    test_teardown();
}

static void test_backend_file(void)
{
    g_autofree char *dir = g_dir_make_tmp("vmig-ramblock-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "ram", NULL);
    g_autofree char *opts = g_strdup_printf("id=f,size=64K,mem-path=%s,"
                                            "share=on", path);
    g_autofree char *tmp_opts = g_strdup_printf("id=t,size=64K,mem-path=%s",
                                                dir);
    HostMemoryBackend *be = make_backend(TYPE_MEMORY_BACKEND_FILE, opts,
                                         &error_abort);
    HostMemoryBackend *tmp = make_backend(TYPE_MEMORY_BACKEND_FILE, tmp_opts,
                                          &error_abort);
    Error *err = NULL;
    uint8_t byte = 0;
    int fd;

    g_assert_true(be->share);
    g_assert_false(tmp->share);
    memset(be->host, 0xa5, 4096);
    msync(be->host, 4096, MS_SYNC);
    fd = open(path, O_RDONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pread(fd, &byte, 1, 100), ==, 1);
    g_assert_cmpint(byte, ==, 0xa5);
    close(fd);

    /* A private mapping of the same file does not change it. */
    g_assert_true(machine_ram_init(0, "t", &error_abort));
    g_assert_cmpint(ram_block_first()->fd, ==, -1);

    g_assert_null(make_backend(TYPE_MEMORY_BACKEND_FILE, "id=n,size=64K",
                               &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "'mem-path' is required"));
    error_free(err);
    err = NULL;
    g_assert_null(make_backend(TYPE_MEMORY_BACKEND_FILE,
                               "id=m,size=64K,mem-path=/nonexistent/dir/x",
                               &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "/nonexistent/dir/x"));
    error_free(err);

    test_teardown();
    unlink(path);
    rmdir(dir);
}

static void test_backend_rejects(void)
{
    Error *err = NULL;

    g_assert_null(make_backend(TYPE_MEMORY_BACKEND_RAM, "id=z", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "'size' is required"));
    error_free(err);
    err = NULL;
    g_assert_null(make_backend(TYPE_MEMORY_BACKEND_MEMFD, "id=u,size=1000",
                               &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "not a multiple"));
    error_free(err);
    test_teardown();
}

static void test_machine_ram(void)
{
    Error *err = NULL;

    /* Default: a 128 MiB memfd backend named pc.ram. */
    g_assert_true(machine_ram_init(0, NULL, &error_abort));
    g_assert_cmpstr(ram_block_first()->idstr, ==, "pc.ram");
    g_assert_cmpuint(ram_total_size(), ==, MACHINE_DEFAULT_RAM_SIZE);
    g_assert_true(ram_block_first()->shared);
    g_assert_nonnull(host_memory_backend_find("pc.ram", &error_abort));
    g_assert_false(machine_ram_init(0, NULL, &err));
    error_free(err);
    err = NULL;
    test_teardown();

    g_assert_true(machine_ram_init(8 * MiB, NULL, &error_abort));
    g_assert_cmpuint(ram_total_size(), ==, 8 * MiB);
    test_teardown();

    /* -m disagreeing with the backend names both sizes. */
    make_backend(TYPE_MEMORY_BACKEND_RAM, "id=m,size=4M", &error_abort);
    g_assert_false(machine_ram_init(8 * MiB, "m", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "8 MiB"));
    g_assert_nonnull(strstr(error_get_pretty(err), "4 MiB"));
    error_free(err);
    err = NULL;
    g_assert_null(ram_block_first());

    g_assert_false(machine_ram_init(0, "missing", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "'missing'"));
    error_free(err);
    test_teardown();
}

static void test_next_data_skips_holes(void)
{
    RAMBlock *rb;
    uint64_t end = 0, off;

    g_assert_true(machine_ram_init(4 * MiB, NULL, &error_abort));
    rb = ram_block_first();
    off = ram_block_next_data(rb, 0, &end);
    g_assert_cmpuint(off, ==, rb->size);

    rb->host[1 * MiB + 10] = 1;
    off = ram_block_next_data(rb, 0, &end);
    g_assert_cmpuint(off, <=, 1 * MiB);
    g_assert_cmpuint(end, >, 1 * MiB);
    g_assert_cmpuint(end, <=, rb->size);
    /* Nothing is ever reported as a hole that holds data. */
    off = ram_block_next_data(rb, 1 * MiB, &end);
    g_assert_cmpuint(off, ==, 1 * MiB);
    test_teardown();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    bql_lock();
    g_test_add_func("/ramblock/add-and-lookup", test_add_and_lookup);
    g_test_add_func("/ramblock/add-rejects", test_add_rejects);
    g_test_add_func("/ramblock/read-write-across-blocks",
                    test_read_write_across_blocks);
    g_test_add_func("/ramblock/backend/memfd-shared",
                    test_backend_memfd_shared);
    g_test_add_func("/ramblock/backend/ram-private", test_backend_ram_private);
    g_test_add_func("/ramblock/backend/file", test_backend_file);
    g_test_add_func("/ramblock/backend/rejects", test_backend_rejects);
    g_test_add_func("/ramblock/machine-ram", test_machine_ram);
    g_test_add_func("/ramblock/next-data-skips-holes",
                    test_next_data_skips_holes);
    return g_test_run();
}
