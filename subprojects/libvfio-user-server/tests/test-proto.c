/*
 * Transport, VERSION and the device model commands, with good and bad
 * sizes, bad fds and malformed framing; the server must answer with an
 * error (or drop a client whose framing is lost) and keep serving.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test-device.h"
#include "vus-client.h"

/* One more than the server's max_msg_fds. */
#define VUS_TEST_MANY_FDS 9

static uint16_t rd16(const uint8_t *p)
{
    return p[0] | p[1] << 8;
}

static uint32_t rd32(const uint8_t *p)
{
    return rd16(p) | (uint32_t)rd16(p + 2) << 16;
}

static int version_raw(VusClient *c, const void *payload, size_t len,
                       const int *fds, size_t nfds)
{
    return vc_call(c, VFIO_USER_VERSION, payload, len, fds, nfds, NULL);
}

static int version_json(VusClient *c, const char *json)
{
    return vc_version(c, json, NULL);
}

static void test_socket_mode(void)
{
    TestDev *td = td_new(0);
    struct stat st;

    g_assert_cmpint(stat(td->path, &st), ==, 0);
    g_assert_true(S_ISSOCK(st.st_mode));
    g_assert_cmpuint(st.st_mode & 0777, ==, 0600);
    td_free(td);
}

static void test_version(void)
{
    TestDev *td = td_new(VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY);
    VusClient *c = vc_connect(td->path);
    struct vfio_user_version v = { .major = 0, .minor = 2 };
    uint8_t buf[64];
    VcMsg r;
    const char *json;
    uint32_t info[4] = { 16, 0, 0, 0 };

    /* Anything before VERSION is refused. */
    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_INFO, info, sizeof(info),
                            NULL, 0, NULL), ==, -EINVAL);
    /* Too short, wrong major, capabilities not NUL-terminated. */
    g_assert_cmpint(version_raw(c, &v, 2, NULL, 0), ==, -EINVAL);
    v.major = 1;
    g_assert_cmpint(version_raw(c, &v, sizeof(v), NULL, 0), ==, -ENOTSUP);
    v.major = 0;
    memcpy(buf, &v, 4);
    memcpy(buf + 4, "{}", 2);
    g_assert_cmpint(version_raw(c, buf, 6, NULL, 0), ==, -EINVAL);
    memcpy(buf + 4, "{}\0{}", 6);
    g_assert_cmpint(version_raw(c, buf, 10, NULL, 0), ==, -EINVAL);

    /* Bad JSON and known keys of the wrong type. */
    static const char *const bad[] = {
        "{", "[]", "\"caps\"", "{\"capabilities\":5}",
        "{\"capabilities\":{\"max_msg_fds\":-1}}",
        "{\"capabilities\":{\"max_msg_fds\":1.5}}",
        "{\"capabilities\":{\"max_msg_fds\":1e400}}",
        "{\"capabilities\":{\"max_data_xfer_size\":\"big\"}}",
        "{\"capabilities\":{\"max_data_xfer_size\":16}}",
        "{\"capabilities\":{\"migration\":{\"pgsize\":3000}}}",
        "{\"capabilities\":{\"migration\":[]}}",
        "{\"capabilities\":{\"twin_socket\":{\"supported\":1}}}",
        "{\"capabilities\":{\"twin_socket\":[]}}",
        "{\"capabilities\":{\"write_multiple\":\"yes\"}}",
        "{\"capabilities\":{\"pgsizes\":-4096}}",
        "{\"capabilities\":{\"migration\":{\"max_bitmap_size\":true}}}",
        "{\"capabilities\":{\"migration\":{\"x-precopy-info\":1}}}",
        "{\"capabilities\":{}} trailing",
        "{\"a\":\"\\x\"}", "{\"a\":01}", "{\"a\" 1}", "{\"a\":[1,]}",
        /* Nested deeper than the reader allows. */
        ("{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
         "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"),
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_test_message("bad capabilities: %s", bad[i]);
        g_assert_cmpint(version_json(c, bad[i]), ==, -EINVAL);
    }

    /* Unknown keys of any shape are ignored; the lowest minor wins. */
    json = "{\"capabilities\":{\"x-future\":[1e400,{\"y\":null},\"s\\u00e9\"],"
           "\"max_msg_fds\":4,\"max_data_xfer_size\":8192,"
           "\"migration\":{\"pgsize\":4096,\"x-other\":true}},"
           "\"vendor\":{\"a\":-1.5e3}}";
    g_assert_cmpint(vc_version(c, json, &r), ==, 0);
    g_assert_cmpuint(r.len, >, 4);
    g_assert_cmpuint(rd16(r.payload), ==, 0);
    g_assert_cmpuint(rd16(r.payload + 2), ==, VFIO_USER_MINOR);
    g_assert_cmpint(r.payload[r.len - 1], ==, '\0');
    json = (const char *)r.payload + 4;
    g_test_message("server capabilities: %s", json);
    /* Only what was proposed, and the one limit below its default. */
    g_assert_cmpstr(json, ==, "{\"capabilities\":{\"max_msg_fds\":8,"
                    "\"max_data_xfer_size\":8192,\"max_dma_maps\":1024,"
                    "\"migration\":{\"pgsize\":4096}}}");
    g_assert_cmpuint(r.nfds, ==, 0);
    vc_msg_free(&r);

    /* Negotiated: a read over 8 KiB is refused, 8 KiB is fine. */
    g_assert_cmpint(vc_region_read(c, 2, 0, buf, 0), ==, 0);
    {
        g_autofree uint8_t *big = g_malloc(16384);
        g_assert_cmpint(vc_region_read(c, 2, 0, big, 8192), ==, 0);
        g_assert_cmpint(vc_region_read(c, 2, 0, big, 8193), ==, -EINVAL);
    }
    /* VERSION only once. */
    g_assert_cmpint(version_json(c, NULL), ==, -EINVAL);
    vc_close(c);

    /* A lower client minor version is the one used; no JSON at all. */
    c = vc_connect(td->path);
    v.minor = 1;
    g_assert_cmpint(vc_call(c, VFIO_USER_VERSION, &v, sizeof(v), NULL, 0,
                            &r), ==, 0);
    g_assert_cmpuint(rd16(r.payload + 2), ==, 1);
    vc_msg_free(&r);
    vc_close(c);
    td_free(td);
}

/* VERSION with @json; the reply's capabilities string in *@caps. */
static int version_caps(VusClient *c, const char *json, VcMsg *r,
                        const char **caps)
{
    int ret = vc_version(c, json, r);

    if (ret == 0) {
        g_assert_cmpuint(r->len, >, 4);
        g_assert_cmpint(r->payload[r->len - 1], ==, '\0');
        *caps = (const char *)r->payload + 4;
        g_test_message("server capabilities: %s", *caps);
    }
    return ret;
}

/*
 * A client as the widely used client library's sample writes it: it
 * proposes only max_msg_fds, max_data_xfer_size and migration.pgsize,
 * and does not expect anything else back (twin_socket above all).  The
 * reply is checked byte for byte, then the session must work with the
 * small transfer size the client asked for.
 */
static void test_version_sample_client(void)
{
    TestDev *td = td_new(VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY);
    VusClient *c = vc_connect(td->path);
    uint8_t buf[2048];
    uint32_t info[4] = { 16, 0, 0, 0 };
    const char *caps;
    uint32_t state;
    VcMsg r;

    g_assert_cmpint(version_caps(c, "{\"capabilities\":{\"max_msg_fds\":32,"
                                 "\"max_data_xfer_size\":1024,\"migration\":"
                                 "{\"pgsize\":4096}}}", &r, &caps), ==, 0);
    g_assert_cmpstr(caps, ==, "{\"capabilities\":{\"max_msg_fds\":8,"
                    "\"max_data_xfer_size\":1024,\"max_dma_maps\":1024,"
                    "\"migration\":{\"pgsize\":4096}}}");
    g_assert_null(strstr(caps, "twin_socket"));
    g_assert_cmpuint(r.nfds, ==, 0);
    g_assert_cmpuint(rd16(r.payload), ==, 0);
    g_assert_cmpuint(rd16(r.payload + 2), ==, VFIO_USER_MINOR);
    vc_msg_free(&r);
    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_INFO, info, sizeof(info),
                            NULL, 0, NULL), ==, 0);
    g_assert_cmpint(vc_region_read(c, 2, 0, buf, 1024), ==, 0);
    g_assert_cmpint(vc_region_read(c, 2, 0, buf, 1025), ==, -EINVAL);
    /* Migration works without the capability's extensions. */
    g_assert_cmpint(vc_set_state(c, VFIO_DEVICE_STATE_PRE_COPY), ==, 0);
    g_assert_cmpint(vc_mig_read(c, buf, 1024), >=, 0);
    g_assert_cmpint(vc_set_state(c, VFIO_DEVICE_STATE_RUNNING), ==, 0);
    g_assert_cmpint(vc_get_state(c, &state), ==, 0);
    g_assert_cmpuint(state, ==, VFIO_DEVICE_STATE_RUNNING);
    vc_close(c);

    /* Nothing proposed at all: nothing but the limits below default. */
    c = vc_connect(td->path);
    g_assert_cmpint(version_caps(c, "{}", &r, &caps), ==, 0);
    g_assert_cmpstr(caps, ==, "{\"capabilities\":{\"max_dma_maps\":1024}}");
    vc_msg_free(&r);
    vc_close(c);
    td_free(td);
}

/* Every optional capability comes back when, and only when, proposed. */
static void test_version_features(void)
{
    TestDev *td = td_new(VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY);
    TestDev *plain = td_new(0);
    const char *all = "{\"capabilities\":{\"max_msg_fds\":1,"
                      "\"max_data_xfer_size\":65536,\"pgsizes\":4096,"
                      "\"max_dma_maps\":100,\"write_multiple\":true,"
                      "\"migration\":{\"pgsize\":4096,"
                      "\"max_bitmap_size\":268435456,\"x-precopy-info\":true,"
                      "\"x-mig-data-size\":true}}}";
    VusClient *c = vc_connect(td->path);
    const char *caps;
    VcMsg r;

    g_assert_cmpint(version_caps(c, all, &r, &caps), ==, 0);
    /* max_bitmap_size: a report bitmap has to fit in one message. */
    g_assert_cmpstr(caps, ==, "{\"capabilities\":{\"max_msg_fds\":8,"
                    "\"max_data_xfer_size\":65536,\"pgsizes\":4096,"
                    "\"max_dma_maps\":1024,\"write_multiple\":true,"
                    "\"migration\":{\"pgsize\":4096,"
                    "\"max_bitmap_size\":65536,\"x-precopy-info\":true,"
                    "\"x-mig-data-size\":true}}}");
    vc_msg_free(&r);
    vc_close(c);

    /* Proposed as false is not proposed. */
    c = vc_connect(td->path);
    g_assert_cmpint(version_caps(c, "{\"capabilities\":{\"write_multiple\":"
                                 "false,\"migration\":{\"x-precopy-info\":"
                                 "false}}}", &r, &caps), ==, 0);
    g_assert_cmpstr(caps, ==, "{\"capabilities\":{\"max_dma_maps\":1024,"
                    "\"migration\":{\"pgsize\":4096}}}");
    vc_msg_free(&r);
    vc_close(c);

    /* A device without migration answers no "migration" at all. */
    c = vc_connect(plain->path);
    g_assert_cmpint(version_caps(c, all, &r, &caps), ==, 0);
    g_assert_null(strstr(caps, "migration"));
    g_assert_nonnull(strstr(caps, "\"write_multiple\":true"));
    vc_msg_free(&r);
    vc_close(c);
    td_free(plain);
    td_free(td);
}

/*
 * Twin socket, as the protocol has it: the client says it supports the
 * mode, the server makes the pair and passes the client's end with the
 * reply, at fd_index.  An fd sent with VERSION is refused.
 */
static void test_twin_socket(void)
{
    TestDev *td = td_new(0);
    VusClient *c = vc_connect(td->path);
    const char *twin = "{\"capabilities\":{\"twin_socket\":"
                       "{\"supported\":true}}}";
    const char *twin_nofds = "{\"capabilities\":{\"max_msg_fds\":0,"
                             "\"twin_socket\":{\"supported\":true}}}";
    uint8_t buf[256];
    struct vfio_user_version v = { 0, 2 };
    int efd = eventfd(0, EFD_CLOEXEC);
    const char *caps;
    struct stat st;
    VcMsg r;

    memcpy(buf, &v, 4);
    strcpy((char *)buf + 4, twin);
    /* An fd with VERSION: the twin socket is not the client's to give. */
    g_assert_cmpint(version_raw(c, buf, 4 + strlen(twin) + 1, &efd, 1), ==,
                    -EINVAL);
    g_assert_cmpint(version_raw(c, &v, sizeof(v), &efd, 1), ==, -EINVAL);
    /* A client that takes no fds gets no twin socket. */
    g_assert_cmpint(version_caps(c, twin_nofds, &r, &caps), ==, 0);
    g_assert_null(strstr(caps, "twin_socket"));
    g_assert_cmpuint(r.nfds, ==, 0);
    vc_msg_free(&r);
    vc_close(c);

    c = vc_connect(td->path);
    g_assert_cmpint(version_caps(c, twin, &r, &caps), ==, 0);
    g_assert_nonnull(strstr(caps, "\"twin_socket\":{\"supported\":true,"
                            "\"fd_index\":0}"));
    g_assert_cmpuint(r.nfds, ==, 1);
    g_assert_cmpint(fstat(r.fds[0], &st), ==, 0);
    g_assert_true(S_ISSOCK(st.st_mode));
    vc_msg_free(&r);
    close(efd);
    vc_close(c);
    td_free(td);
}

static void expect_disconnect(VusClient *c)
{
    VcMsg m;
    int ret;

    /* An error reply may come first; then the server hangs up. */
    while ((ret = vc_recv(c, &m)) == 0) {
        g_assert_true(m.hdr.flags & VFIO_USER_F_ERROR);
        vc_msg_free(&m);
    }
    g_assert_cmpint(ret, ==, -ECONNRESET);
}

static void test_framing(void)
{
    TestDev *td = td_new(0);
    VusClient *c = vc_open(td->path);
    struct vfio_user_header h = { .msg_id = 7, .cmd = 4, .msg_size = 8 };
    uint32_t info[4] = { 16, 0, 0, 0 };
    VcMsg m;
    uint16_t id;

    /* Unknown, retired and server-to-client commands. */
    g_assert_cmpint(vc_call(c, 99, NULL, 0, NULL, 0, NULL), ==, -ENOSYS);
    g_assert_cmpint(vc_call(c, 14, NULL, 0, NULL, 0, NULL), ==, -ENOSYS);
    g_assert_cmpint(vc_call(c, 0, NULL, 0, NULL, 0, NULL), ==, -ENOSYS);
    g_assert_cmpint(vc_call(c, 0xffff, info, 16, NULL, 0, NULL), ==, -ENOSYS);
    g_assert_cmpint(vc_call(c, VFIO_USER_DMA_READ, info, 16, NULL, 0, NULL),
                    ==, -EINVAL);

    /* A command with the error flag, or an unknown type. */
    id = vc_send(c, VFIO_USER_DEVICE_GET_INFO, VFIO_USER_F_ERROR, info,
                 sizeof(info), NULL, 0);
    g_assert_cmpint(vc_recv(c, &m), ==, 0);
    g_assert_cmpuint(m.hdr.msg_id, ==, id);
    g_assert_cmpuint(m.hdr.error_no, ==, EINVAL);
    vc_msg_free(&m);
    vc_send(c, VFIO_USER_DEVICE_GET_INFO, 5, info, sizeof(info), NULL, 0);
    g_assert_cmpint(vc_recv(c, &m), ==, 0);
    g_assert_cmpuint(m.hdr.error_no, ==, EINVAL);
    vc_msg_free(&m);

    /* An unsolicited reply is dropped without an answer; NO_REPLY is
     * honoured: the next answer is the next command's. */
    vc_send(c, VFIO_USER_DEVICE_GET_INFO, VFIO_USER_F_TYPE_REPLY, info,
            sizeof(info), NULL, 0);
    vc_send(c, VFIO_USER_DEVICE_GET_INFO, VFIO_USER_F_NO_REPLY, info,
            sizeof(info), NULL, 0);
    vc_send(c, 99, VFIO_USER_F_NO_REPLY, NULL, 0, NULL, 0);
    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_INFO, info, sizeof(info),
                            NULL, 0, NULL), ==, 0);

    /* Too many fds, and fds on a command that takes none. */
    {
        int fds[VUS_TEST_MANY_FDS];
        for (int i = 0; i < VUS_TEST_MANY_FDS; i++) {
            fds[i] = eventfd(0, EFD_CLOEXEC);
        }
        g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_INFO, info,
                                sizeof(info), fds, VUS_TEST_MANY_FDS, NULL),
                        ==, -EINVAL);
        g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_INFO, info,
                                sizeof(info), fds, 1, NULL), ==, -EINVAL);
        for (int i = 0; i < VUS_TEST_MANY_FDS; i++) {
            close(fds[i]);
        }
    }

    /* A message larger than the limit is consumed and refused. */
    {
        size_t big = VFIO_USER_DEF_MAX_XFER + 64 * 1024;
        g_autofree uint8_t *p = g_malloc0(big);
        g_assert_cmpint(vc_call(c, VFIO_USER_REGION_WRITE, p, big, NULL, 0,
                                NULL), ==, -EINVAL);
        g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_INFO, info,
                                sizeof(info), NULL, 0, NULL), ==, 0);
    }

    /* msg_size smaller than the header: framing is lost, client dropped. */
    g_assert_cmpint(vc_send_raw(c, &h, sizeof(h), NULL, 0), ==, 0);
    expect_disconnect(c);
    vc_close(c);

    /* Half a header, then gone. */
    c = vc_open(td->path);
    g_assert_cmpint(vc_send_raw(c, &h, 5, NULL, 0), ==, 0);
    vc_close(c);
    /* Half a payload, then gone. */
    c = vc_open(td->path);
    h.msg_size = 100;
    g_assert_cmpint(vc_send_raw(c, &h, sizeof(h), NULL, 0), ==, 0);
    g_assert_cmpint(vc_send_raw(c, info, 10, NULL, 0), ==, 0);
    vc_close(c);

    /* The server is still there for the next client. */
    c = vc_open(td->path);
    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_INFO, info, sizeof(info),
                            NULL, 0, NULL), ==, 0);
    vc_close(c);
    td_free(td);
}

static void test_device_info(void)
{
    TestDev *td = td_new(0);
    VusClient *c = vc_open(td->path);
    struct vfio_user_device_info info = { .argsz = sizeof(info) };
    VcMsg r;

    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_INFO, &info, sizeof(info),
                            NULL, 0, &r), ==, 0);
    g_assert_cmpuint(r.len, ==, sizeof(info));
    memcpy(&info, r.payload, sizeof(info));
    g_assert_cmpuint(info.num_regions, ==, VFIO_PCI_NUM_REGIONS);
    g_assert_cmpuint(info.num_irqs, ==, VFIO_PCI_NUM_IRQS);
    g_assert_cmpuint(info.flags, ==,
                     VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET);
    vc_msg_free(&r);
    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_INFO, &info, 12, NULL, 0,
                            NULL), ==, -EINVAL);
    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_INFO, &info, 0, NULL, 0,
                            NULL), ==, -EINVAL);
    info.argsz = 8;
    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_INFO, &info, sizeof(info),
                            NULL, 0, NULL), ==, -EINVAL);
    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_RESET, &info, 4, NULL, 0,
                            NULL), ==, -EINVAL);
    vc_close(c);
    td_free(td);
}

static int region_info(VusClient *c, uint32_t index, uint32_t argsz,
                       VcMsg *r)
{
    struct vfio_region_info ri = { .argsz = argsz, .index = index };

    return vc_call(c, VFIO_USER_DEVICE_GET_REGION_INFO, &ri, sizeof(ri),
                   NULL, 0, r);
}

static void test_region_info(void)
{
    TestDev *td = td_new(0);
    VusClient *c = vc_open(td->path);
    struct vfio_region_info ri;
    struct vfio_region_info_cap_sparse_mmap cap;
    struct vfio_region_sparse_mmap_area area;
    uint8_t pattern[64];
    VcMsg r;
    void *map;

    g_assert_cmpint(region_info(c, 0, sizeof(ri), &r), ==, 0);
    memcpy(&ri, r.payload, sizeof(ri));
    g_assert_cmpuint(ri.size, ==, TD_BAR0_SIZE);
    g_assert_cmpuint(ri.flags, ==, VFIO_REGION_INFO_FLAG_READ |
                     VFIO_REGION_INFO_FLAG_WRITE);
    g_assert_cmpuint(r.nfds, ==, 0);
    vc_msg_free(&r);

    /* Too little room for the sparse capability: told how much. */
    g_assert_cmpint(region_info(c, 2, sizeof(ri), &r), ==, 0);
    memcpy(&ri, r.payload, sizeof(ri));
    g_assert_cmpuint(r.len, ==, sizeof(ri));
    g_assert_cmpuint(ri.argsz, ==, sizeof(ri) + sizeof(cap) + 2 * sizeof(area));
    g_assert_true(ri.flags & VFIO_REGION_INFO_FLAG_CAPS);
    g_assert_cmpuint(ri.cap_offset, ==, 0);
    vc_msg_free(&r);

    g_assert_cmpint(region_info(c, 2, 256, &r), ==, 0);
    memcpy(&ri, r.payload, sizeof(ri));
    g_assert_cmpuint(ri.size, ==, TD_BAR2_SIZE);
    g_assert_true(ri.flags & VFIO_REGION_INFO_FLAG_MMAP);
    g_assert_cmpuint(ri.cap_offset, ==, sizeof(ri));
    g_assert_cmpuint(r.len, ==, ri.argsz);
    memcpy(&cap, r.payload + ri.cap_offset, sizeof(cap));
    g_assert_cmpuint(cap.header.id, ==, VFIO_REGION_INFO_CAP_SPARSE_MMAP);
    g_assert_cmpuint(cap.nr_areas, ==, 2);
    memcpy(&area, r.payload + ri.cap_offset + sizeof(cap) + sizeof(area),
           sizeof(area));
    g_assert_cmpuint(area.offset, ==, 32768);
    g_assert_cmpuint(area.size, ==, 32768);
    g_assert_cmpuint(r.nfds, ==, 1);

    /* The fd maps the same memory the device serves. */
    for (size_t i = 0; i < sizeof(pattern); i++) {
        pattern[i] = i ^ 0x5a;
    }
    g_assert_cmpint(vc_region_write(c, 2, 32768 + 100, pattern,
                                    sizeof(pattern)), ==, 0);
    map = mmap(NULL, 32768, PROT_READ, MAP_SHARED, r.fds[0],
               ri.offset + 32768);
    g_assert_true(map != MAP_FAILED);
    g_assert_cmpmem((uint8_t *)map + 100, sizeof(pattern), pattern,
                    sizeof(pattern));
    munmap(map, 32768);
    vc_msg_free(&r);

    /* Config space, a missing region, an index beyond, bad sizes. */
    g_assert_cmpint(region_info(c, VFIO_PCI_CONFIG_REGION_INDEX, sizeof(ri),
                                &r), ==, 0);
    memcpy(&ri, r.payload, sizeof(ri));
    g_assert_cmpuint(ri.size, ==, 256);
    vc_msg_free(&r);
    g_assert_cmpint(region_info(c, 1, sizeof(ri), &r), ==, 0);
    memcpy(&ri, r.payload, sizeof(ri));
    g_assert_cmpuint(ri.size, ==, 0);
    g_assert_cmpuint(ri.flags, ==, 0);
    vc_msg_free(&r);
    g_assert_cmpint(region_info(c, 9, sizeof(ri), NULL), ==, -EINVAL);
    g_assert_cmpint(region_info(c, 0xffffffff, sizeof(ri), NULL), ==, -EINVAL);
    g_assert_cmpint(region_info(c, 0, 16, NULL), ==, -EINVAL);
    memset(&ri, 0, sizeof(ri));
    ri.argsz = sizeof(ri);
    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_REGION_INFO, &ri, 16,
                            NULL, 0, NULL), ==, -EINVAL);
    vc_close(c);

    /* A client that takes no fds is not offered the mapping. */
    c = vc_connect(td->path);
    g_assert_cmpint(version_json(c, "{\"capabilities\":{\"max_msg_fds\":0}}"),
                    ==, 0);
    g_assert_cmpint(region_info(c, 2, 256, &r), ==, 0);
    memcpy(&ri, r.payload, sizeof(ri));
    g_assert_false(ri.flags & VFIO_REGION_INFO_FLAG_MMAP);
    g_assert_cmpuint(r.nfds, ==, 0);
    vc_msg_free(&r);
    vc_close(c);
    td_free(td);
}

static void test_config_space(void)
{
    TestDev *td = td_new(0);
    VusClient *c = vc_open(td->path);
    uint8_t cfg[256], v[4];
    uint32_t ones = 0xffffffff, zero = 0;
    uint8_t p;

    g_assert_cmpint(vc_region_read(c, 7, 0, cfg, sizeof(cfg)), ==, 0);
    g_assert_cmpuint(rd16(cfg + 0), ==, 0x1b36);
    g_assert_cmpuint(rd16(cfg + 2), ==, 0x0042);
    g_assert_cmpuint(rd32(cfg + 8) >> 8, ==, 0x058000);
    g_assert_cmpuint(cfg[8], ==, 2);
    g_assert_cmpuint(rd16(cfg + 0x2c), ==, 0x1af4);
    g_assert_cmpuint(rd16(cfg + 0x2e), ==, 0x1100);
    g_assert_cmpuint(cfg[0x3d], ==, 1);             /* INTA */
    g_assert_true(rd16(cfg + 6) & 0x10);            /* capability list */
    /* BAR2 is 64-bit prefetchable memory. */
    g_assert_cmpuint(rd32(cfg + 0x18), ==, 0xc);
    /* Capability list: MSI, then MSI-X, then the end. */
    p = cfg[0x34];
    g_assert_cmpuint(cfg[p], ==, 0x05);
    p = cfg[p + 1];
    g_assert_cmpuint(cfg[p], ==, 0x11);
    g_assert_cmpuint(rd16(cfg + p + 2) & 0x7ff, ==, TD_MSIX_VECS - 1);
    g_assert_cmpuint(rd32(cfg + p + 4), ==, 0x800);
    g_assert_cmpuint(cfg[p + 1], ==, 0);

    /* BAR sizing. */
    g_assert_cmpint(vc_region_write(c, 7, 0x10, &ones, 4), ==, 0);
    g_assert_cmpint(vc_region_read(c, 7, 0x10, v, 4), ==, 0);
    g_assert_cmpuint(rd32(v), ==, 0xfffff000);
    g_assert_cmpint(vc_region_write(c, 7, 0x18, &ones, 4), ==, 0);
    g_assert_cmpint(vc_region_write(c, 7, 0x1c, &ones, 4), ==, 0);
    g_assert_cmpint(vc_region_read(c, 7, 0x18, v, 4), ==, 0);
    g_assert_cmpuint(rd32(v), ==, 0xffff000c);
    g_assert_cmpint(vc_region_read(c, 7, 0x1c, v, 4), ==, 0);
    g_assert_cmpuint(rd32(v), ==, 0xffffffff);
    /* An absent BAR stays 0; the ids are read-only. */
    g_assert_cmpint(vc_region_write(c, 7, 0x14, &ones, 4), ==, 0);
    g_assert_cmpint(vc_region_read(c, 7, 0x14, v, 4), ==, 0);
    g_assert_cmpuint(rd32(v), ==, 0);
    g_assert_cmpint(vc_region_write(c, 7, 0, &zero, 4), ==, 0);
    g_assert_cmpint(vc_region_read(c, 7, 0, v, 4), ==, 0);
    g_assert_cmpuint(rd16(v), ==, 0x1b36);
    /* Command: memory + bus master stick, reserved bits do not. */
    g_assert_cmpint(vc_region_write(c, 7, 4, &ones, 2), ==, 0);
    g_assert_cmpint(vc_region_read(c, 7, 4, v, 2), ==, 0);
    g_assert_cmpuint(rd16(v), ==, 0x0547);
    /* Outside config space. */
    g_assert_cmpint(vc_region_read(c, 7, 250, v, 8), ==, -EINVAL);
    g_assert_cmpint(vus_pci_config_read(td->ctx, 0, v, 2), ==, 0);
    g_assert_cmpuint(rd16(v), ==, 0x1b36);
    g_assert_cmpint(vus_pci_config_read(td->ctx, 255, v, 2), ==, -EINVAL);
    vc_close(c);
    td_free(td);
}

static void test_region_rw(void)
{
    TestDev *td = td_new(0);
    VusClient *c = vc_open(td->path);
    struct vfio_user_region_access a;
    uint8_t buf[64], back[64];
    VcMsg r;

    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = i * 3;
    }
    g_assert_cmpint(vc_region_write(c, 0, 4096 - 64, buf, 64), ==, 0);
    g_assert_cmpint(vc_region_read(c, 0, 4096 - 64, back, 64), ==, 0);
    g_assert_cmpmem(buf, 64, back, 64);
    g_assert_cmpmem(td->bar0 + 4096 - 64, 64, buf, 64);

    /* Out of bounds, wrapping, missing regions. */
    g_assert_cmpint(vc_region_read(c, 0, 4096 - 63, back, 64), ==, -EINVAL);
    g_assert_cmpint(vc_region_read(c, 0, 0xffffffffffffffc0ull, back, 64), ==,
                    -EINVAL);
    g_assert_cmpint(vc_region_write(c, 0, 4097, buf, 0), ==, -EINVAL);
    g_assert_cmpint(vc_region_read(c, 1, 0, back, 4), ==, -EINVAL);
    g_assert_cmpint(vc_region_read(c, 9, 0, back, 4), ==, -EINVAL);
    g_assert_cmpint(vc_region_read(c, 0xffffffff, 0, back, 4), ==, -EINVAL);

    /* Sizes that disagree with count. */
    a = (struct vfio_user_region_access) { .offset = 0, .region = 0,
                                           .count = 64 };
    g_assert_cmpint(vc_call(c, VFIO_USER_REGION_WRITE, &a, sizeof(a), NULL, 0,
                            NULL), ==, -EINVAL);
    g_assert_cmpint(vc_call(c, VFIO_USER_REGION_READ, &a, 12, NULL, 0, NULL),
                    ==, -EINVAL);
    {
        uint8_t p[sizeof(a) + 8] = { 0 };
        memcpy(p, &a, sizeof(a));
        g_assert_cmpint(vc_call(c, VFIO_USER_REGION_READ, p, sizeof(p), NULL,
                                0, NULL), ==, -EINVAL);
    }
    a.count = 0x80000000u;
    g_assert_cmpint(vc_call(c, VFIO_USER_REGION_READ, &a, sizeof(a), NULL, 0,
                            NULL), ==, -EINVAL);

    /* REGION_WRITE_MULTI */
    {
        struct {
            uint64_t wr_cnt;
            struct vfio_user_write_multi_entry e[2];
        } wm = { .wr_cnt = 2 };
        uint8_t big[8 + (VFIO_USER_MULTI_MAX + 1) * 24] = { 0 };
        uint64_t cnt = VFIO_USER_MULTI_MAX + 1;

        wm.e[0] = (struct vfio_user_write_multi_entry) {
            .offset = 16, .region = 0, .count = 4, .data = { 1, 2, 3, 4 } };
        wm.e[1] = (struct vfio_user_write_multi_entry) {
            .offset = 100, .region = 0, .count = 8,
            .data = { 9, 8, 7, 6, 5, 4, 3, 2 } };
        g_assert_cmpint(vc_call(c, VFIO_USER_REGION_WRITE_MULTI, &wm,
                                sizeof(wm), NULL, 0, &r), ==, 0);
        g_assert_cmpuint(r.len, ==, 8);
        vc_msg_free(&r);
        g_assert_cmpint(vc_region_read(c, 0, 16, back, 4), ==, 0);
        g_assert_cmpmem(back, 4, wm.e[0].data, 4);
        g_assert_cmpint(vc_region_read(c, 0, 100, back, 8), ==, 0);
        g_assert_cmpmem(back, 8, wm.e[1].data, 8);

        /* A bad entry: nothing is written, not even the good one. */
        wm.e[0].data[0] = 0x77;
        wm.e[1].count = 9;
        g_assert_cmpint(vc_call(c, VFIO_USER_REGION_WRITE_MULTI, &wm,
                                sizeof(wm), NULL, 0, NULL), ==, -EINVAL);
        g_assert_cmpint(vc_region_read(c, 0, 16, back, 1), ==, 0);
        g_assert_cmpuint(back[0], ==, 1);
        wm.e[1].count = 8;
        wm.e[1].offset = 4092;
        g_assert_cmpint(vc_call(c, VFIO_USER_REGION_WRITE_MULTI, &wm,
                                sizeof(wm), NULL, 0, NULL), ==, -EINVAL);
        wm.wr_cnt = 3;
        g_assert_cmpint(vc_call(c, VFIO_USER_REGION_WRITE_MULTI, &wm,
                                sizeof(wm), NULL, 0, NULL), ==, -EINVAL);
        wm.wr_cnt = 0;
        g_assert_cmpint(vc_call(c, VFIO_USER_REGION_WRITE_MULTI, &wm, 8,
                                NULL, 0, NULL), ==, -EINVAL);
        memcpy(big, &cnt, 8);
        g_assert_cmpint(vc_call(c, VFIO_USER_REGION_WRITE_MULTI, big,
                                sizeof(big), NULL, 0, NULL), ==, -EINVAL);
        g_assert_cmpint(vc_call(c, VFIO_USER_REGION_WRITE_MULTI, big, 4,
                                NULL, 0, NULL), ==, -EINVAL);
    }

    /* DEVICE_GET_REGION_IO_FDS: none offered. */
    {
        struct vfio_user_region_io_fds_request req = {
            .argsz = sizeof(req), .index = 0,
        };
        g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_REGION_IO_FDS, &req,
                                sizeof(req), NULL, 0, &r), ==, 0);
        memcpy(&req, r.payload, sizeof(req));
        g_assert_cmpuint(req.count, ==, 0);
        vc_msg_free(&r);
        req.index = 50;
        g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_REGION_IO_FDS, &req,
                                sizeof(req), NULL, 0, NULL), ==, -EINVAL);
        g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_REGION_IO_FDS, &req,
                                8, NULL, 0, NULL), ==, -EINVAL);
    }
    vc_close(c);
    td_free(td);
}

static int set_irqs(VusClient *c, uint32_t flags, uint32_t index,
                    uint32_t start, uint32_t count, const void *data,
                    size_t len, const int *fds, size_t nfds)
{
    uint8_t buf[sizeof(struct vfio_irq_set) + 64];
    struct vfio_irq_set s = {
        .argsz = sizeof(s) + len, .flags = flags, .index = index,
        .start = start, .count = count,
    };

    g_assert_cmpuint(len, <=, 64);
    memcpy(buf, &s, sizeof(s));
    if (len) {
        memcpy(buf + sizeof(s), data, len);
    }
    return vc_call(c, VFIO_USER_DEVICE_SET_IRQS, buf, sizeof(s) + len, fds,
                   nfds, NULL);
}

static uint64_t eventfd_count(int fd)
{
    uint64_t v = 0;

    if (read(fd, &v, sizeof(v)) != sizeof(v)) {
        return 0;
    }
    return v;
}

static void test_irqs(void)
{
    const uint32_t trig_efd = VFIO_IRQ_SET_DATA_EVENTFD |
                              VFIO_IRQ_SET_ACTION_TRIGGER;
    TestDev *td = td_new(0);
    VusClient *c = vc_open(td->path);
    struct vfio_irq_info ii;
    int efd[TD_MSIX_VECS], pipefd[2];
    uint8_t bools[TD_MSIX_VECS] = { 0, 1, 0, 1 };
    VcMsg r;

    for (uint32_t i = 0; i < VFIO_PCI_NUM_IRQS; i++) {
        static const uint32_t counts[] = { 1, 1, TD_MSIX_VECS, 0, 0 };
        ii = (struct vfio_irq_info) { .argsz = sizeof(ii), .index = i };
        g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_IRQ_INFO, &ii,
                                sizeof(ii), NULL, 0, &r), ==, 0);
        memcpy(&ii, r.payload, sizeof(ii));
        g_assert_cmpuint(ii.count, ==, counts[i]);
        g_assert_true(ii.flags & VFIO_IRQ_INFO_EVENTFD);
        vc_msg_free(&r);
    }
    ii.index = VFIO_PCI_NUM_IRQS;
    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_IRQ_INFO, &ii, sizeof(ii),
                            NULL, 0, NULL), ==, -EINVAL);
    g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_IRQ_INFO, &ii, 8, NULL, 0,
                            NULL), ==, -EINVAL);

    for (int i = 0; i < TD_MSIX_VECS; i++) {
        efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    g_assert_cmpint(pipe2(pipefd, O_CLOEXEC), ==, 0);

    /* Not attached yet. */
    g_assert_cmpint(vus_irq_trigger(td->ctx, VFIO_PCI_MSIX_IRQ_INDEX, 0), ==,
                    -ENOENT);
    g_assert_cmpint(vus_irq_trigger(td->ctx, VFIO_PCI_MSIX_IRQ_INDEX, 4), ==,
                    -EINVAL);
    /* Bad requests: fd count, not an eventfd, range, flags. */
    g_assert_cmpint(set_irqs(c, trig_efd, VFIO_PCI_MSIX_IRQ_INDEX, 0, 4, NULL,
                             0, efd, 3), ==, -EINVAL);
    {
        int mixed[2] = { efd[0], pipefd[1] };
        g_assert_cmpint(set_irqs(c, trig_efd, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2,
                                 NULL, 0, mixed, 2), ==, -EINVAL);
    }
    g_assert_cmpint(set_irqs(c, trig_efd, VFIO_PCI_MSIX_IRQ_INDEX, 3, 2, NULL,
                             0, efd, 2), ==, -EINVAL);
    g_assert_cmpint(set_irqs(c, trig_efd, VFIO_PCI_MSIX_IRQ_INDEX, 0xffffffff,
                             2, NULL, 0, efd, 2), ==, -EINVAL);
    g_assert_cmpint(set_irqs(c, trig_efd | VFIO_IRQ_SET_ACTION_MASK,
                             VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, NULL, 0, efd, 1),
                    ==, -EINVAL);
    g_assert_cmpint(set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD |
                             VFIO_IRQ_SET_ACTION_MASK,
                             VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, NULL, 0, efd, 1),
                    ==, -EINVAL);
    g_assert_cmpint(set_irqs(c, trig_efd, 7, 0, 1, NULL, 0, efd, 1), ==,
                    -EINVAL);
    g_assert_cmpint(set_irqs(c, VFIO_IRQ_SET_DATA_BOOL |
                             VFIO_IRQ_SET_ACTION_TRIGGER,
                             VFIO_PCI_MSIX_IRQ_INDEX, 0, 4, bools, 3, NULL,
                             0), ==, -EINVAL);
    g_assert_cmpint(set_irqs(c, VFIO_IRQ_SET_DATA_NONE |
                             VFIO_IRQ_SET_ACTION_TRIGGER,
                             VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, NULL, 0, efd, 1),
                    ==, -EINVAL);

    /* Attach all four MSI-X vectors; trigger from the device. */
    g_assert_cmpint(set_irqs(c, trig_efd, VFIO_PCI_MSIX_IRQ_INDEX, 0, 4, NULL,
                             0, efd, 4), ==, 0);
    g_assert_true(vus_irq_is_enabled(td->ctx, VFIO_PCI_MSIX_IRQ_INDEX, 2));
    g_assert_cmpint(vus_irq_trigger(td->ctx, VFIO_PCI_MSIX_IRQ_INDEX, 2), ==,
                    0);
    g_assert_cmpuint(eventfd_count(efd[2]), ==, 1);
    g_assert_cmpuint(eventfd_count(efd[1]), ==, 0);

    /* Masked: pending until unmasked. */
    g_assert_cmpint(set_irqs(c, VFIO_IRQ_SET_DATA_NONE |
                             VFIO_IRQ_SET_ACTION_MASK,
                             VFIO_PCI_MSIX_IRQ_INDEX, 1, 1, NULL, 0, NULL, 0),
                    ==, 0);
    g_assert_false(vus_irq_is_enabled(td->ctx, VFIO_PCI_MSIX_IRQ_INDEX, 1));
    g_assert_cmpint(vus_irq_trigger(td->ctx, VFIO_PCI_MSIX_IRQ_INDEX, 1), ==,
                    0);
    g_assert_cmpuint(eventfd_count(efd[1]), ==, 0);
    g_assert_cmpint(set_irqs(c, VFIO_IRQ_SET_DATA_NONE |
                             VFIO_IRQ_SET_ACTION_UNMASK,
                             VFIO_PCI_MSIX_IRQ_INDEX, 1, 1, NULL, 0, NULL, 0),
                    ==, 0);
    g_assert_cmpuint(eventfd_count(efd[1]), ==, 1);

    /* Software trigger with bools: vectors 1 and 3 only. */
    g_assert_cmpint(set_irqs(c, VFIO_IRQ_SET_DATA_BOOL |
                             VFIO_IRQ_SET_ACTION_TRIGGER,
                             VFIO_PCI_MSIX_IRQ_INDEX, 0, 4, bools, 4, NULL,
                             0), ==, 0);
    g_assert_cmpuint(eventfd_count(efd[0]), ==, 0);
    g_assert_cmpuint(eventfd_count(efd[1]), ==, 1);
    g_assert_cmpuint(eventfd_count(efd[3]), ==, 1);

    /* Disable the index: detached again. */
    g_assert_cmpint(set_irqs(c, VFIO_IRQ_SET_DATA_NONE |
                             VFIO_IRQ_SET_ACTION_TRIGGER,
                             VFIO_PCI_MSIX_IRQ_INDEX, 0, 0, NULL, 0, NULL, 0),
                    ==, 0);
    g_assert_cmpint(vus_irq_trigger(td->ctx, VFIO_PCI_MSIX_IRQ_INDEX, 2), ==,
                    -ENOENT);

    /* INTx through the same path; detached when the client goes. */
    g_assert_cmpint(set_irqs(c, trig_efd, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, NULL,
                             0, efd, 1), ==, 0);
    g_assert_cmpint(vus_irq_trigger(td->ctx, VFIO_PCI_INTX_IRQ_INDEX, 0), ==,
                    0);
    g_assert_cmpuint(eventfd_count(efd[0]), ==, 1);
    vc_close(c);
    td_wait_disconnected(td);
    g_assert_cmpint(vus_irq_trigger(td->ctx, VFIO_PCI_INTX_IRQ_INDEX, 0), ==,
                    -ENOENT);

    for (int i = 0; i < TD_MSIX_VECS; i++) {
        close(efd[i]);
    }
    close(pipefd[0]);
    close(pipefd[1]);
    td_free(td);
}

static void test_reconnect(void)
{
    TestDev *td = td_new(VFIO_MIGRATION_STOP_COPY);
    uint32_t info[4] = { 16, 0, 0, 0 };

    for (int i = 0; i < 5; i++) {
        VusClient *c = vc_open(td->path);
        g_assert_cmpint(vc_call(c, VFIO_USER_DEVICE_GET_INFO, info,
                                sizeof(info), NULL, 0, NULL), ==, 0);
        if (i == 2) {
            /* The migration state outlives the connection. */
            g_assert_cmpint(vc_set_state(c, VFIO_DEVICE_STATE_STOP), ==, 0);
        }
        vc_close(c);
    }
    {
        VusClient *c = vc_open(td->path);
        uint32_t state;
        g_assert_cmpint(vc_get_state(c, &state), ==, 0);
        g_assert_cmpuint(state, ==, VFIO_DEVICE_STATE_STOP);
        vc_close(c);
    }
    td_wait_disconnected(td);
    g_assert_cmpint(td->clients_seen, ==, 6);
    td_free(td);
}

/* A client that stalls mid-message or stops reading cannot block stop. */
static void test_stop_stalled(void)
{
    TestDev *td = td_new(0);
    VusClient *c = vc_open(td->path);
    struct vfio_user_header h = { .msg_id = 1, .cmd = 4, .msg_size = 32 };
    struct vfio_user_region_access a = { .offset = 0, .region = 2,
                                         .count = TD_BAR2_SIZE };

    /* Replies pile up unread until the socket buffers are full. */
    for (int i = 0; i < 200; i++) {
        vc_send(c, VFIO_USER_REGION_READ, 0, &a, sizeof(a), NULL, 0);
    }
    g_assert_cmpint(vc_send_raw(c, &h, 10, NULL, 0), ==, 0);
    td_free(td);
    vc_close(c);

    /* The same with a client stalled inside a message. */
    td = td_new(0);
    c = vc_open(td->path);
    g_assert_cmpint(vc_send_raw(c, &h, sizeof(h), NULL, 0), ==, 0);
    td_free(td);
    vc_close(c);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/vus/proto/socket-mode", test_socket_mode);
    g_test_add_func("/vus/proto/version", test_version);
    g_test_add_func("/vus/proto/version-sample-client",
                    test_version_sample_client);
    g_test_add_func("/vus/proto/version-features", test_version_features);
    g_test_add_func("/vus/proto/twin-socket", test_twin_socket);
    g_test_add_func("/vus/proto/framing", test_framing);
    g_test_add_func("/vus/proto/device-info", test_device_info);
    g_test_add_func("/vus/proto/region-info", test_region_info);
    g_test_add_func("/vus/proto/config-space", test_config_space);
    g_test_add_func("/vus/proto/region-rw", test_region_rw);
    g_test_add_func("/vus/proto/irqs", test_irqs);
    g_test_add_func("/vus/proto/reconnect", test_reconnect);
    g_test_add_func("/vus/proto/stop-stalled", test_stop_stalled);
    return g_test_run();
}
