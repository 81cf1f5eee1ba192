/*
 * hw/vfio/region-caps.c: the sparse-mmap capability of a region info, as
 * the kernel and vfio-user servers lay it out, and the malformed chains
 * that a server may send.
 */
#include "qemu/osdep.h"
#include "hw/vfio/region-caps.h"

#define REGION_SIZE 0x100000

/* A region info with room for a capability chain after it. */
typedef struct {
    struct vfio_region_info info;
    uint8_t chain[256];
} InfoBuf;

static void info_init(InfoBuf *b)
{
    memset(b, 0, sizeof(*b));
    b->info.argsz = sizeof(*b);
    b->info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_MMAP;
    b->info.size = REGION_SIZE;
}

/*
 * A sparse-mmap capability at @off that claims @n areas, copied from
 * @areas unless it is NULL.
 */
static void add_sparse(InfoBuf *b, uint32_t off, uint32_t n,
                       const struct vfio_region_sparse_mmap_area *areas)
{
    struct vfio_region_info_cap_sparse_mmap *sp =
        (void *)((uint8_t *)&b->info + off);

    b->info.flags |= VFIO_REGION_INFO_FLAG_CAPS;
    b->info.cap_offset = off;
    sp->header.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP;
    sp->header.version = 1;
    sp->nr_areas = n;
    if (areas) {
        memcpy(sp->areas, areas, n * sizeof(*areas));
    }
}

static void test_no_capability(void)
{
    g_autofree struct vfio_region_sparse_mmap_area *areas = NULL;
    InfoBuf b;
    bool listed = true;

    info_init(&b);
    g_assert_cmpint(vfio_region_sparse_areas(&b.info, &areas, &listed,
                                             &error_abort), ==, 0);
    g_assert_false(listed);
    g_assert_null(areas);
}

static void test_areas(void)
{
    static const struct vfio_region_sparse_mmap_area two[] = {
        { .offset = 0, .size = 0x1000 },
        { .offset = 0x3000, .size = REGION_SIZE - 0x3000 },
    };
    g_autofree struct vfio_region_sparse_mmap_area *areas = NULL;
    InfoBuf b;
    bool listed = false;

    info_init(&b);
    add_sparse(&b, sizeof(b.info), 2, two);
    g_assert_cmpint(vfio_region_sparse_areas(&b.info, &areas, &listed,
                                             &error_abort), ==, 2);
    g_assert_true(listed);
    g_assert_cmphex(areas[1].offset, ==, 0x3000);
    g_assert_cmphex(areas[1].size, ==, REGION_SIZE - 0x3000);
}

/* An empty list: nothing may be mapped, unlike a missing capability. */
static void test_empty_list(void)
{
    g_autofree struct vfio_region_sparse_mmap_area *areas = NULL;
    InfoBuf b;
    bool listed = false;

    info_init(&b);
    add_sparse(&b, sizeof(b.info), 0, NULL);
    g_assert_cmpint(vfio_region_sparse_areas(&b.info, &areas, &listed,
                                             &error_abort), ==, 0);
    g_assert_true(listed);
}

static void test_malformed(void)
{
    static const struct vfio_region_sparse_mmap_area outside[] = {
        { .offset = REGION_SIZE - 0x1000, .size = 0x2000 },
    };
    g_autofree struct vfio_region_sparse_mmap_area *areas = NULL;
    Error *err = NULL;
    InfoBuf b;

    /* An area past the end of the region. */
    info_init(&b);
    add_sparse(&b, sizeof(b.info), 1, outside);
    g_assert_cmpint(vfio_region_sparse_areas(&b.info, &areas, NULL, &err),
                    ==, -1);
    g_assert_nonnull(strstr(error_get_pretty(err), "outside the region"));
    g_clear_pointer(&err, error_free);

    /* More areas than the info holds. */
    info_init(&b);
    add_sparse(&b, sizeof(b.info), 1000, NULL);
    g_assert_cmpint(vfio_region_sparse_areas(&b.info, &areas, NULL, &err),
                    ==, -1);
    g_assert_nonnull(strstr(error_get_pretty(err), "does not fit"));
    g_clear_pointer(&err, error_free);

    /* A chain that points outside the info, and one that loops. */
    info_init(&b);
    b.info.flags |= VFIO_REGION_INFO_FLAG_CAPS;
    b.info.cap_offset = sizeof(b) + 8;
    g_assert_cmpint(vfio_region_sparse_areas(&b.info, &areas, NULL, &err),
                    ==, -1);
    g_clear_pointer(&err, error_free);
    info_init(&b);
    b.info.flags |= VFIO_REGION_INFO_FLAG_CAPS;
    b.info.cap_offset = sizeof(b.info);
    ((struct vfio_info_cap_header *)b.chain)->id = 99;
    ((struct vfio_info_cap_header *)b.chain)->next = sizeof(b.info);
    g_assert_cmpint(vfio_region_sparse_areas(&b.info, &areas, NULL, &err),
                    ==, -1);
    g_clear_pointer(&err, error_free);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/region-caps/none", test_no_capability);
    g_test_add_func("/region-caps/areas", test_areas);
    g_test_add_func("/region-caps/empty-list", test_empty_list);
    g_test_add_func("/region-caps/malformed", test_malformed);
    return g_test_run();
}
