/*
 * VERSION: the first message of every connection.  The client offers
 * its version and capabilities; the server answers with the lowest
 * common minor version and its own capabilities, and from then on both
 * use the negotiated limits.  Unknown capability keys are ignored; known
 * keys with a value of the wrong type or range are refused (EINVAL).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "private.h"

/* The smallest max_data_xfer_size a client may ask for. */
#define VUS_MIN_XFER 512

typedef struct ClientCaps {
    uint64_t max_fds;
    uint64_t max_xfer;
    uint64_t mig_pgsize;
    int twin_fd_index;          /* -1: no twin socket offered */
} ClientCaps;

static int parse_client_caps(VusCtx *ctx, const VusMsg *msg,
                             const char *json, size_t len, ClientCaps *caps)
{
    const VusJson *c, *v;
    const char *err = NULL;
    VusJson *root;
    int ret = -EINVAL;

    root = vus_json_parse(json, len, &err);
    if (!root) {
        vus_warn(ctx, "VERSION: capabilities are not valid JSON: %s", err);
        return -EINVAL;
    }
    if (root->type != VUS_JSON_OBJECT) {
        vus_warn(ctx, "VERSION: capabilities JSON is not an object");
        goto out;
    }
    c = vus_json_get(root, "capabilities");
    if (!c) {
        ret = 0;
        goto out;
    }
    if (c->type != VUS_JSON_OBJECT) {
        vus_warn(ctx, "VERSION: \"capabilities\" is not an object");
        goto out;
    }

    v = vus_json_get(c, VFIO_USER_CAP_MAX_MSG_FDS);
    if (v) {
        if (!vus_json_get_u64(v, &caps->max_fds)) {
            vus_warn(ctx, "VERSION: max_msg_fds is not a non-negative "
                     "integer");
            goto out;
        }
        /* More than we could ever send is the same as our maximum. */
        caps->max_fds = MIN(caps->max_fds, VFIO_USER_MAX_MAX_FDS);
    }
    v = vus_json_get(c, VFIO_USER_CAP_MAX_DATA_XFER_SIZE);
    if (v) {
        if (!vus_json_get_u64(v, &caps->max_xfer) ||
            caps->max_xfer < VUS_MIN_XFER) {
            vus_warn(ctx, "VERSION: max_data_xfer_size is not an integer "
                     ">= %u", VUS_MIN_XFER);
            goto out;
        }
    }
    v = vus_json_get(c, VFIO_USER_CAP_MIGRATION);
    if (v) {
        const VusJson *pg;

        if (v->type != VUS_JSON_OBJECT) {
            vus_warn(ctx, "VERSION: \"migration\" is not an object");
            goto out;
        }
        pg = vus_json_get(v, VFIO_USER_CAP_MIGRATION_PGSIZE);
        if (pg && (!vus_json_get_u64(pg, &caps->mig_pgsize) ||
                   caps->mig_pgsize < 512 ||
                   (caps->mig_pgsize & (caps->mig_pgsize - 1)))) {
            vus_warn(ctx, "VERSION: migration.pgsize is not a power of two "
                     ">= 512");
            goto out;
        }
    }
    v = vus_json_get(c, VFIO_USER_CAP_TWIN_SOCKET);
    if (v) {
        const VusJson *sup, *idx;
        uint64_t index;

        if (v->type != VUS_JSON_OBJECT) {
            vus_warn(ctx, "VERSION: \"twin_socket\" is not an object");
            goto out;
        }
        sup = vus_json_get(v, "supported");
        idx = vus_json_get(v, "fd_index");
        if (sup && sup->type != VUS_JSON_BOOL) {
            vus_warn(ctx, "VERSION: twin_socket.supported is not a boolean");
            goto out;
        }
        if (sup && sup->boolean) {
            if (!idx || !vus_json_get_u64(idx, &index) ||
                index >= msg->nfds) {
                vus_warn(ctx, "VERSION: twin_socket.fd_index is missing or "
                         "does not name one of the %zu fds sent", msg->nfds);
                goto out;
            }
            caps->twin_fd_index = index;
        }
    }
    ret = 0;
out:
    vus_json_free(root);
    return ret;
}

static int build_server_caps(VusCtx *ctx, VusConn *conn, char *buf,
                             size_t size)
{
    char mig[256] = "";
    int n;

    if (ctx->migratable) {
        n = snprintf(mig, sizeof(mig),
                     ",\"%s\":{\"%s\":%u%s%s}", VFIO_USER_CAP_MIGRATION,
                     VFIO_USER_CAP_MIGRATION_PGSIZE, VUS_PAGE_SIZE,
                     (ctx->mig.flags & VFIO_MIGRATION_PRE_COPY) ?
                     ",\"" VFIO_USER_CAP_X_PRECOPY_INFO "\":true" : "",
                     ctx->mig.data_size ?
                     ",\"" VFIO_USER_CAP_X_MIG_DATA_SIZE "\":true" : "");
        if (n < 0 || (size_t)n >= sizeof(mig)) {
            return -EOVERFLOW;
        }
    }
    n = snprintf(buf, size,
                 "{\"capabilities\":{\"%s\":%u,\"%s\":%u,\"%s\":%u,"
                 "\"%s\":%u,\"%s\":true,\"%s\":{\"supported\":true}%s}}",
                 VFIO_USER_CAP_MAX_MSG_FDS, VUS_SERVER_MAX_FDS,
                 VFIO_USER_CAP_MAX_DATA_XFER_SIZE, conn->max_xfer,
                 VFIO_USER_CAP_PGSIZES, VUS_PAGE_SIZE,
                 VFIO_USER_CAP_MAX_DMA_MAPS, ctx->limits.max_dma_maps,
                 VFIO_USER_CAP_WRITE_MULTIPLE, VFIO_USER_CAP_TWIN_SOCKET,
                 mig);
    if (n < 0 || (size_t)n >= size) {
        return -EOVERFLOW;
    }
    return n + 1;       /* the NUL travels too */
}

int vus_handle_version(VusCtx *ctx, VusConn *conn, VusMsg *msg)
{
    struct vfio_user_version ver;
    ClientCaps caps = {
        .max_fds = VFIO_USER_DEF_MAX_FDS,
        .max_xfer = VFIO_USER_DEF_MAX_XFER,
        .mig_pgsize = VFIO_USER_DEF_PGSIZE,
        .twin_fd_index = -1,
    };
    char json[768];
    int twin_fd = -1;
    int len, ret;

    if (conn->versioned) {
        vus_warn(ctx, "VERSION: sent twice");
        return -EINVAL;
    }
    if (msg->len < sizeof(ver)) {
        vus_warn(ctx, "VERSION: payload of %zu bytes is shorter than %zu",
                 msg->len, sizeof(ver));
        return -EINVAL;
    }
    memcpy(&ver, msg->payload, sizeof(ver));
    if (ver.major != VFIO_USER_MAJOR) {
        vus_warn(ctx, "VERSION: major version %u, this server speaks %u",
                 ver.major, VFIO_USER_MAJOR);
        return -ENOTSUP;
    }
    if (msg->len > sizeof(ver)) {
        const char *text = (const char *)msg->payload + sizeof(ver);
        size_t text_len = msg->len - sizeof(ver);
        const char *nul = memchr(text, '\0', text_len);

        if (!nul || (size_t)(nul - text) != text_len - 1) {
            vus_warn(ctx, "VERSION: capabilities are not one NUL-terminated "
                     "string filling the payload");
            return -EINVAL;
        }
        /* An empty string is the same as no capabilities. */
        if (nul != text) {
            ret = parse_client_caps(ctx, msg, text, nul - text, &caps);
            if (ret < 0) {
                return ret;
            }
        }
    }
    if (msg->nfds > (caps.twin_fd_index >= 0 ? 1u : 0u)) {
        vus_warn(ctx, "VERSION: fds sent that twin_socket does not name");
        return -EINVAL;
    }
    if (caps.twin_fd_index >= 0) {
        struct stat st;

        twin_fd = msg->fds[caps.twin_fd_index];
        if (fstat(twin_fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
            vus_warn(ctx, "VERSION: the twin_socket fd is not a socket");
            return -EINVAL;
        }
    }

    conn->client_max_fds = caps.max_fds;
    conn->max_xfer = MIN((uint64_t)ctx->max_xfer, caps.max_xfer);
    ctx->client_log_pgsize = caps.mig_pgsize;
    len = build_server_caps(ctx, conn, json, sizeof(json));
    if (len < 0) {
        return len;
    }
    ver.minor = MIN(ver.minor, VFIO_USER_MINOR);
    ret = vus_reply(ctx, conn, msg, &ver, sizeof(ver), json, len, NULL, 0);
    if (ret < 0) {
        return ret;
    }
    if (twin_fd >= 0) {
        conn->twin_fd = twin_fd;
        msg->fds[caps.twin_fd_index] = -1;
    }
    conn->versioned = true;
    atomic_store(&ctx->conn_max_xfer, conn->max_xfer);
    vus_info(ctx, "VERSION %u.%u: max_msg_fds %u, max_data_xfer_size %u%s",
             ver.major, ver.minor, conn->client_max_fds, conn->max_xfer,
             conn->twin_fd >= 0 ? ", twin socket" : "");
    return 0;
}
