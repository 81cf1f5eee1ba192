/*
 * The raw test client (see vus-client.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vus-client.h"

VusClient *vc_connect(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    struct timeval tv = { .tv_sec = VC_TIMEOUT_SEC };
    VusClient *c = g_new0(VusClient, 1);

    g_assert_cmpuint(strlen(path), <, sizeof(addr.sun_path));
    strcpy(addr.sun_path, path);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(c->fd, >=, 0);
    for (int tries = 0;; tries++) {
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
            break;
        }
        g_assert_cmpint(tries, <, 500);
        g_usleep(10 * 1000);
    }
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    c->next_id = 1;
    return c;
}

void vc_close(VusClient *c)
{
    if (c) {
        close(c->fd);
        g_free(c);
    }
}

int vc_send_raw(VusClient *c, const void *buf, size_t len, const int *fds,
                size_t nfds)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 32)];
    } control;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    size_t done = 0;

    g_assert_cmpuint(nfds, <=, 32);
    if (nfds) {
        struct cmsghdr *cm;

        memset(&control, 0, sizeof(control));
        mh.msg_control = control.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    while (done < len) {
        ssize_t n;

        iov.iov_base = (uint8_t *)buf + done;
        iov.iov_len = len - done;
        n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        mh.msg_control = NULL;
        mh.msg_controllen = 0;
        done += n;
    }
    return 0;
}

uint16_t vc_send(VusClient *c, uint16_t cmd, uint32_t flags,
                 const void *payload, size_t len, const int *fds, size_t nfds)
{
    struct vfio_user_header hdr = {
        .msg_id = c->next_id++,
        .cmd = cmd,
        .msg_size = sizeof(hdr) + len,
        .flags = flags,
    };
    g_autofree uint8_t *buf = g_malloc(sizeof(hdr) + len);

    memcpy(buf, &hdr, sizeof(hdr));
    if (len) {
        memcpy(buf + sizeof(hdr), payload, len);
    }
    g_assert_cmpint(vc_send_raw(c, buf, sizeof(hdr) + len, fds, nfds), ==, 0);
    return hdr.msg_id;
}

static int recv_exact(int fd, void *buf, size_t len, VcMsg *m)
{
    size_t done = 0;

    while (done < len) {
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(sizeof(int) * VFIO_USER_MAX_MAX_FDS)];
        } control;
        struct iovec iov = { (uint8_t *)buf + done, len - done };
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = control.buf,
            .msg_controllen = sizeof(control.buf),
        };
        ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN ? -ETIMEDOUT : -errno;
        }
        if (n == 0) {
            return -ECONNRESET;
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
             cm = CMSG_NXTHDR(&mh, cm)) {
            size_t nr = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

            for (size_t i = 0; i < nr; i++) {
                int fd_in;

                memcpy(&fd_in, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                g_assert_cmpuint(m->nfds, <, VFIO_USER_MAX_MAX_FDS);
                m->fds[m->nfds++] = fd_in;
            }
        }
        done += n;
    }
    return 0;
}

static int recv_on(int fd, VcMsg *m)
{
    int ret;

    memset(m, 0, sizeof(*m));
    ret = recv_exact(fd, &m->hdr, sizeof(m->hdr), m);
    if (ret < 0) {
        return ret;
    }
    g_assert_cmpuint(m->hdr.msg_size, >=, sizeof(m->hdr));
    m->len = m->hdr.msg_size - sizeof(m->hdr);
    m->payload = g_malloc0(m->len + 1);
    return recv_exact(fd, m->payload, m->len, m);
}

int vc_recv(VusClient *c, VcMsg *m)
{
    return recv_on(c->fd, m);
}

void vc_msg_free(VcMsg *m)
{
    for (size_t i = 0; i < m->nfds; i++) {
        close(m->fds[i]);
    }
    m->nfds = 0;
    g_free(m->payload);
    m->payload = NULL;
}

int vc_call(VusClient *c, uint16_t cmd, const void *payload, size_t len,
            const int *fds, size_t nfds, VcMsg *reply)
{
    uint16_t id = vc_send(c, cmd, VFIO_USER_F_TYPE_COMMAND, payload, len,
                          fds, nfds);
    VcMsg m;
    int ret;

    g_assert_cmpint(vc_recv(c, &m), ==, 0);
    g_assert_cmpuint(m.hdr.msg_id, ==, id);
    g_assert_cmpuint(m.hdr.cmd, ==, cmd);
    g_assert_cmpuint(m.hdr.flags & VFIO_USER_F_TYPE_MASK, ==,
                     VFIO_USER_F_TYPE_REPLY);
    if (m.hdr.flags & VFIO_USER_F_ERROR) {
        g_assert_cmpuint(m.len, ==, 0);
        g_assert_cmpuint(m.hdr.error_no, !=, 0);
        ret = -(int)m.hdr.error_no;
        vc_msg_free(&m);
        return ret;
    }
    if (reply) {
        *reply = m;
    } else {
        vc_msg_free(&m);
    }
    return 0;
}

int vc_version(VusClient *c, const char *json, VcMsg *reply)
{
    size_t jlen = json ? strlen(json) + 1 : 0;
    g_autofree uint8_t *buf = g_malloc0(4 + jlen);
    struct vfio_user_version v = { .major = VFIO_USER_MAJOR,
                                   .minor = VFIO_USER_MINOR };

    memcpy(buf, &v, 4);
    if (json) {
        memcpy(buf + 4, json, jlen);
    }
    return vc_call(c, VFIO_USER_VERSION, buf, 4 + jlen, NULL, 0, reply);
}

VusClient *vc_open(const char *path)
{
    VusClient *c = vc_connect(path);

    g_assert_cmpint(vc_version(c, "{\"capabilities\":{\"max_msg_fds\":8}}",
                               NULL), ==, 0);
    return c;
}

int vc_feature(VusClient *c, uint32_t flags, const void *data, size_t len,
               VcMsg *reply)
{
    g_autofree uint8_t *buf = g_malloc0(8 + len);
    uint32_t argsz = 8 + len;

    memcpy(buf, &argsz, 4);
    memcpy(buf + 4, &flags, 4);
    if (len) {
        memcpy(buf + 8, data, len);
    }
    return vc_call(c, VFIO_USER_DEVICE_FEATURE, buf, 8 + len, NULL, 0, reply);
}

int vc_set_state(VusClient *c, uint32_t state)
{
    struct vfio_device_feature_mig_state st = { .device_state = state,
                                                .data_fd = -1 };
    VcMsg r;
    int ret = vc_feature(c, VFIO_DEVICE_FEATURE_SET |
                         VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
                         &st, sizeof(st), &r);

    if (ret == 0) {
        g_assert_cmpuint(r.len, ==, 8 + sizeof(st));
        memcpy(&st, r.payload + 8, sizeof(st));
        g_assert_cmpuint(st.device_state, ==, state);
        vc_msg_free(&r);
    }
    return ret;
}

int vc_get_state(VusClient *c, uint32_t *state)
{
    struct vfio_device_feature_mig_state st;
    VcMsg r;
    int ret = vc_feature(c, VFIO_DEVICE_FEATURE_GET |
                         VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, NULL, 0, &r);

    if (ret == 0) {
        g_assert_cmpuint(r.len, ==, 8 + sizeof(st));
        memcpy(&st, r.payload + 8, sizeof(st));
        *state = st.device_state;
        vc_msg_free(&r);
    }
    return ret;
}

ssize_t vc_mig_read(VusClient *c, void *buf, uint32_t size)
{
    struct vfio_user_mig_data req = { .argsz = sizeof(req), .size = size };
    VcMsg r;
    int ret = vc_call(c, VFIO_USER_MIG_DATA_READ, &req, sizeof(req), NULL, 0,
                      &r);

    if (ret < 0) {
        return ret;
    }
    g_assert_cmpuint(r.len, >=, sizeof(req));
    memcpy(&req, r.payload, sizeof(req));
    g_assert_cmpuint(req.size, <=, size);
    g_assert_cmpuint(r.len, ==, sizeof(req) + req.size);
    g_assert_cmpuint(req.argsz, ==, sizeof(req) + req.size);
    memcpy(buf, r.payload + sizeof(req), req.size);
    vc_msg_free(&r);
    return req.size;
}

int vc_mig_write(VusClient *c, const void *buf, uint32_t size)
{
    g_autofree uint8_t *p = g_malloc(8 + size);
    struct vfio_user_mig_data req = { .argsz = 8 + size, .size = size };

    memcpy(p, &req, 8);
    memcpy(p + 8, buf, size);
    return vc_call(c, VFIO_USER_MIG_DATA_WRITE, p, 8 + size, NULL, 0, NULL);
}

int vc_dma_map(VusClient *c, uint64_t iova, uint64_t size, uint64_t offset,
               uint32_t flags, int fd)
{
    struct vfio_user_dma_map m = {
        .argsz = sizeof(m), .flags = flags, .offset = offset,
        .addr = iova, .size = size,
    };

    return vc_call(c, VFIO_USER_DMA_MAP, &m, sizeof(m), fd >= 0 ? &fd : NULL,
                   fd >= 0 ? 1 : 0, NULL);
}

int vc_dma_unmap(VusClient *c, uint64_t iova, uint64_t size, uint32_t flags)
{
    struct vfio_user_dma_unmap u = {
        .argsz = sizeof(u), .flags = flags, .addr = iova, .size = size,
    };

    return vc_call(c, VFIO_USER_DMA_UNMAP, &u, sizeof(u), NULL, 0, NULL);
}

int vc_region_read(VusClient *c, uint32_t region, uint64_t offset,
                   void *buf, uint32_t count)
{
    struct vfio_user_region_access a = {
        .offset = offset, .region = region, .count = count,
    };
    VcMsg r;
    int ret = vc_call(c, VFIO_USER_REGION_READ, &a, sizeof(a), NULL, 0, &r);

    if (ret == 0) {
        g_assert_cmpuint(r.len, ==, sizeof(a) + count);
        memcpy(buf, r.payload + sizeof(a), count);
        vc_msg_free(&r);
    }
    return ret;
}

int vc_region_write(VusClient *c, uint32_t region, uint64_t offset,
                    const void *buf, uint32_t count)
{
    g_autofree uint8_t *p = g_malloc(sizeof(struct vfio_user_region_access) +
                                     count);
    struct vfio_user_region_access a = {
        .offset = offset, .region = region, .count = count,
    };

    memcpy(p, &a, sizeof(a));
    memcpy(p + sizeof(a), buf, count);
    return vc_call(c, VFIO_USER_REGION_WRITE, p, sizeof(a) + count, NULL, 0,
                   NULL);
}

int vc_serve_dma(int fd, uint8_t *mem, uint64_t base, uint64_t size)
{
    struct vfio_user_dma_access acc;
    struct vfio_user_header hdr;
    VcMsg m;
    int ret = recv_on(fd, &m);
    VusClient tmp = { .fd = fd };

    if (ret < 0) {
        return ret;
    }
    g_assert_cmpuint(m.hdr.flags & VFIO_USER_F_TYPE_MASK, ==,
                     VFIO_USER_F_TYPE_COMMAND);
    g_assert_cmpuint(m.len, >=, sizeof(acc));
    memcpy(&acc, m.payload, sizeof(acc));
    g_assert_cmpuint(acc.addr, >=, base);
    g_assert_cmpuint(acc.addr + acc.count, <=, base + size);
    hdr = (struct vfio_user_header) {
        .msg_id = m.hdr.msg_id, .cmd = m.hdr.cmd,
        .flags = VFIO_USER_F_TYPE_REPLY,
    };
    if (m.hdr.cmd == VFIO_USER_DMA_WRITE) {
        g_assert_cmpuint(m.len, ==, sizeof(acc) + acc.count);
        memcpy(mem + (acc.addr - base), m.payload + sizeof(acc), acc.count);
        hdr.msg_size = sizeof(hdr) + sizeof(acc);
        g_autofree uint8_t *out = g_malloc(hdr.msg_size);
        memcpy(out, &hdr, sizeof(hdr));
        memcpy(out + sizeof(hdr), &acc, sizeof(acc));
        g_assert_cmpint(vc_send_raw(&tmp, out, hdr.msg_size, NULL, 0), ==, 0);
    } else {
        g_assert_cmpuint(m.hdr.cmd, ==, VFIO_USER_DMA_READ);
        g_assert_cmpuint(m.len, ==, sizeof(acc));
        hdr.msg_size = sizeof(hdr) + sizeof(acc) + acc.count;
        g_autofree uint8_t *out = g_malloc(hdr.msg_size);
        memcpy(out, &hdr, sizeof(hdr));
        memcpy(out + sizeof(hdr), &acc, sizeof(acc));
        memcpy(out + sizeof(hdr) + sizeof(acc), mem + (acc.addr - base),
               acc.count);
        g_assert_cmpint(vc_send_raw(&tmp, out, hdr.msg_size, NULL, 0), ==, 0);
    }
    ret = m.hdr.cmd;
    vc_msg_free(&m);
    return ret;
}

char *vc_tmp_socket_path(char **dir)
{
    GError *err = NULL;

    *dir = g_dir_make_tmp("vus-test-XXXXXX", &err);
    g_assert_no_error(err);
    return g_build_filename(*dir, "dev.sock", NULL);
}
