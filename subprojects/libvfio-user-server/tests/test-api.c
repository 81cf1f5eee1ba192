/*
 * The setup API refuses bad device descriptions with a message that
 * names the problem; the serving functions time out, stop and clean up.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "test-device.h"
#include "vus-client.h"

typedef struct LogCapture {
    GString *text;
} LogCapture;

static void capture_log(void *opaque, VusLogLevel level, const char *msg)
{
    LogCapture *lc = opaque;

    g_string_append_printf(lc->text, "%s\n", msg);
}

static ssize_t dummy_access(void *opaque, uint32_t region, uint64_t offset,
                            void *buf, size_t count, bool is_write)
{
    return count;
}

static int dummy_transition(void *opaque, enum vfio_device_mig_state from,
                            enum vfio_device_mig_state to)
{
    return 0;
}

static ssize_t dummy_read(void *opaque, void *buf, uint64_t size)
{
    return 0;
}

static ssize_t dummy_write(void *opaque, const void *buf, uint64_t size)
{
    return size;
}

static void test_setup_errors(void)
{
    LogCapture lc = { g_string_new("") };
    VusCtx *ctx = vus_ctx_new("bad-dev", &lc);
    VusRegionDesc r = { .size = 4096, .flags = VUS_REGION_READ,
                        .access = dummy_access, .mmap_fd = -1 };
    VusPciIds ids = { .vendor_id = 1, .device_id = 2 };
    VusMigrationOps mig = { .flags = VFIO_MIGRATION_P2P,
                            .transition = dummy_transition,
                            .read_data = dummy_read,
                            .write_data = dummy_write };
    VusMmapArea area = { .offset = 100, .size = 4096 };
    int memfd = memfd_create("api", MFD_CLOEXEC);

    g_assert_nonnull(ctx);
    vus_ctx_set_log(ctx, capture_log, VUS_LOG_DEBUG);
    g_assert_true(vus_ctx_opaque(ctx) == &lc);

    /* Capabilities before vus_pci_setup, bad ids. */
    g_assert_cmpint(vus_pci_add_msi_cap(ctx, 1), ==, -EINVAL);
    ids.config_size = 512;
    g_assert_cmpint(vus_pci_setup(ctx, &ids), ==, -EINVAL);
    ids.config_size = 0;
    ids.class_code = 0x1000000;
    g_assert_cmpint(vus_pci_setup(ctx, &ids), ==, -EINVAL);
    ids.class_code = 0x020000;
    g_assert_cmpint(vus_pci_setup(ctx, &ids), ==, 0);
    g_assert_cmpint(vus_pci_setup(ctx, &ids), ==, -EINVAL);

    /* BARs: power of two, 64-bit needs the next BAR, no I/O 64-bit. */
    r.size = 3000;
    g_assert_cmpint(vus_setup_region(ctx, 0, &r), ==, -EINVAL);
    r.size = 8;
    g_assert_cmpint(vus_setup_region(ctx, 0, &r), ==, -EINVAL);
    r.size = 4096;
    r.flags |= VUS_BAR_MEM64;
    g_assert_cmpint(vus_setup_region(ctx, 5, &r), ==, -EINVAL);
    r.flags |= VUS_BAR_IO;
    g_assert_cmpint(vus_setup_region(ctx, 0, &r), ==, -EINVAL);
    r.flags = VUS_REGION_READ | VUS_BAR_MEM64;
    g_assert_cmpint(vus_setup_region(ctx, 0, &r), ==, 0);
    g_assert_cmpint(vus_setup_region(ctx, 1, &r), ==, -EINVAL);
    r.flags = 0x80000000u;
    g_assert_cmpint(vus_setup_region(ctx, 2, &r), ==, -EINVAL);
    r.flags = VUS_REGION_READ;
    r.access = NULL;
    g_assert_cmpint(vus_setup_region(ctx, 2, &r), ==, -EINVAL);
    r.access = dummy_access;
    g_assert_cmpint(vus_setup_region(ctx, VUS_MAX_REGIONS, &r), ==, -EINVAL);
    /* Mappable areas must be aligned and inside. */
    r.mmap_fd = memfd;
    r.mmap_areas = &area;
    r.nr_mmap_areas = 1;
    g_assert_cmpint(vus_setup_region(ctx, 2, &r), ==, -EINVAL);
    area.offset = 4096;
    g_assert_cmpint(vus_setup_region(ctx, 2, &r), ==, -EINVAL);
    r.mmap_fd_offset = 100;
    area.offset = 0;
    g_assert_cmpint(vus_setup_region(ctx, 2, &r), ==, -EINVAL);
    r.mmap_fd_offset = 0;
    g_assert_cmpint(vus_setup_region(ctx, 2, &r), ==, 0);

    /* MSI-X must fit in its BAR; MSI vector counts are powers of two. */
    g_assert_cmpint(vus_pci_add_msix_cap(ctx, 2048, 0, 0, 0, 0), ==, -EINVAL);
    g_assert_cmpint(vus_pci_add_msix_cap(ctx, 4, 3, 0, 0, 0), ==, -EINVAL);
    g_assert_cmpint(vus_pci_add_msix_cap(ctx, 4, 0, 4, 0, 0x100), ==, -EINVAL);
    g_assert_cmpint(vus_pci_add_msix_cap(ctx, 4, 0, 0, 0, 0x100), >, 0);
    g_assert_cmpint(vus_pci_add_msi_cap(ctx, 3), ==, -EINVAL);
    g_assert_cmpint(vus_pci_add_msi_cap(ctx, 64), ==, -EINVAL);
    {
        uint8_t big[250] = { 0 };
        g_assert_cmpint(vus_pci_add_cap(ctx, 0x09, big, sizeof(big), NULL),
                        ==, -ENOSPC);
    }

    /* IRQ counts. */
    g_assert_cmpint(vus_setup_irqs(ctx, VFIO_PCI_INTX_IRQ_INDEX, 2), ==,
                    -EINVAL);
    g_assert_cmpint(vus_setup_irqs(ctx, VFIO_PCI_MSIX_IRQ_INDEX, 2049), ==,
                    -EINVAL);
    g_assert_cmpint(vus_setup_irqs(ctx, VFIO_PCI_NUM_IRQS, 1), ==, -EINVAL);

    /*
     * Migration: STOP_COPY is required, and the callbacks; precopy_info
     * is optional even with PRE_COPY (a plain 0.9.2 device).
     */
    g_assert_cmpint(vus_setup_migration(ctx, &mig), ==, -EINVAL);
    mig.flags = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY;
    g_assert_cmpint(vus_setup_migration(ctx, &mig), ==, 0);
    mig.flags = VFIO_MIGRATION_STOP_COPY | (1u << 5);
    g_assert_cmpint(vus_setup_migration(ctx, &mig), ==, -EINVAL);
    mig.flags = VFIO_MIGRATION_STOP_COPY;
    mig.read_data = NULL;
    g_assert_cmpint(vus_setup_migration(ctx, &mig), ==, -EINVAL);
    mig.read_data = dummy_read;
    g_assert_cmpint(vus_setup_migration(ctx, &mig), ==, 0);

    /* Transfer size bounds. */
    g_assert_cmpint(vus_ctx_set_max_data_xfer_size(ctx, 100), ==, -EINVAL);
    g_assert_cmpint(vus_ctx_set_max_data_xfer_size(ctx, 1u << 30), ==,
                    -EINVAL);
    g_assert_cmpint(vus_ctx_set_max_data_xfer_size(ctx, 65536), ==, 0);

    /* Serving needs realize first. */
    g_assert_cmpint(vus_ctx_serve_one(ctx, 0), ==, -EINVAL);
    g_assert_cmpint(vus_ctx_start(ctx), ==, -EINVAL);

    /* Every refusal said what and why, prefixed with the device name. */
    g_test_message("%s", lc.text->str);
    g_assert_nonnull(strstr(lc.text->str, "bad-dev: BAR0: size 0xbb8 is not "
                                          "a power of two"));
    g_assert_nonnull(strstr(lc.text->str, "bad-dev: migration flags"));
    g_assert_nonnull(strstr(lc.text->str, "mmap area 0"));
    vus_ctx_free(ctx);
    close(memfd);
    g_string_free(lc.text, true);
}

static gpointer serve_one_thread(gpointer opaque)
{
    return GINT_TO_POINTER(vus_ctx_serve_one(opaque, 5000));
}

/* Leave at @path a socket file whose server is gone. */
static void bind_stale_socket(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), ==, 0);
    close(fd);
}

static void test_realize_and_serve(void)
{
    g_autofree char *dir = NULL;
    g_autofree char *path = vc_tmp_socket_path(&dir);
    g_autofree char *file = g_build_filename(dir, "regular", NULL);
    char longpath[200];
    VusCtx *ctx = vus_ctx_new("serve", NULL);
    int fd;

    vus_ctx_set_log(ctx, NULL, VUS_LOG_ERROR);
    /* A path that is too long; a regular file in the way. */
    memset(longpath, 'x', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = '\0';
    g_assert_cmpint(vus_ctx_realize(ctx, longpath), ==, -ENAMETOOLONG);
    fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    g_assert_cmpint(fd, >=, 0);
    close(fd);
    g_assert_cmpint(vus_ctx_realize(ctx, file), ==, -EEXIST);
    g_assert_true(g_file_test(file, G_FILE_TEST_EXISTS));
    unlink(file);

    /* A socket file that nobody listens on any more is replaced. */
    bind_stale_socket(path);
    g_assert_cmpint(vus_ctx_realize(ctx, path), ==, 0);
    g_assert_cmpint(vus_ctx_realize(ctx, path), ==, -EBUSY);
    vus_ctx_free(ctx);
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));

    ctx = vus_ctx_new("serve", NULL);
    vus_ctx_set_log(ctx, NULL, VUS_LOG_ERROR);
    g_assert_cmpint(vus_ctx_realize(ctx, path), ==, 0);
    /* Nobody connects: a timeout. */
    g_assert_cmpint(vus_ctx_serve_one(ctx, 20), ==, -ETIMEDOUT);
    /*
     * A live server is not taken over.  The twin's probe is a connection
     * that closes at once: the server serves it like any other.
     */
    {
        LogCapture lc = { g_string_new(NULL) };
        VusCtx *twin = vus_ctx_new("twin", &lc);

        vus_ctx_set_log(twin, capture_log, VUS_LOG_ERROR);
        g_assert_cmpint(vus_ctx_realize(twin, path), ==, -EADDRINUSE);
        g_assert_nonnull(strstr(lc.text->str,
                                "a server is already listening on"));
        vus_ctx_free(twin);
        g_string_free(lc.text, TRUE);
        g_assert_cmpint(vus_ctx_serve_one(ctx, 1000), ==, 0);
    }
    /* One client, served on a thread of ours until it goes. */
    {
        GThread *t = g_thread_new("serve-one", serve_one_thread, ctx);
        VusClient *c = vc_connect(path);
        uint32_t info[4] = { 16, 0, 0, 0 };

        g_assert_cmpint(vc_version(c, NULL, NULL), ==, 0);
        g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_INFO, info,
                                sizeof(info), NULL, 0, NULL), ==, 0);
        vc_close(c);
        g_assert_cmpint(GPOINTER_TO_INT(g_thread_join(t)), ==, 0);
    }
    /* A stop is final: serving returns at once from then on. */
    vus_ctx_stop(ctx);
    g_assert_cmpint(vus_ctx_serve_one(ctx, -1), ==, -ECANCELED);
    g_assert_cmpint(vus_ctx_run(ctx), ==, 0);
    vus_ctx_free(ctx);
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    rmdir(dir);
}

static void test_state_names(void)
{
    g_assert_cmpstr(vus_mig_state_name(VFIO_DEVICE_STATE_PRE_COPY_P2P), ==,
                    "PRE_COPY_P2P");
    g_assert_cmpstr(vus_mig_state_name(VFIO_DEVICE_STATE_ERROR), ==, "ERROR");
    g_assert_cmpstr(vus_mig_state_name(8), ==, "?");
    g_assert_true(vus_mig_state_is_saving(VFIO_DEVICE_STATE_PRE_COPY_P2P));
    g_assert_true(vus_mig_state_is_saving(VFIO_DEVICE_STATE_STOP_COPY));
    g_assert_false(vus_mig_state_is_saving(VFIO_DEVICE_STATE_RUNNING_P2P));
    g_assert_false(vus_mig_state_is_saving(VFIO_DEVICE_STATE_RESUMING));
    g_assert_false(vus_mig_state_supported(0, VFIO_DEVICE_STATE_RUNNING));
    g_assert_false(vus_mig_state_supported(VFIO_MIGRATION_STOP_COPY |
                                           VFIO_MIGRATION_PRE_COPY,
                                           VFIO_DEVICE_STATE_PRE_COPY_P2P));
    g_assert_true(vus_mig_state_supported(VFIO_MIGRATION_STOP_COPY,
                                          VFIO_DEVICE_STATE_RESUMING));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vus/api/setup-errors", test_setup_errors);
    g_test_add_func("/vus/api/realize-and-serve", test_realize_and_serve);
    g_test_add_func("/vus/api/state-names", test_state_names);
    return g_test_run();
}
