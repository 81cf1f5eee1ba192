/*
 * VERSION: the first message of every connection.  The client proposes
 * its version and capabilities; the server answers with the lowest
 * common minor version and a subset of what was proposed, and from then
 * on both use the negotiated limits.
 *
 * What the reply holds, key by key (docs/interop/vfio-user.rst):
 * - a feature (twin_socket, write_multiple, migration and the extensions
 *   inside it) only when the client proposed it: a client must never
 *   meet a capability it did not ask for;
 * - a limit (max_msg_fds, max_data_xfer_size, pgsizes, max_dma_maps)
 *   when the client proposed that key, or when ours is below the
 *   protocol's default, so that a client assuming the default would
 *   overstep it.
 * Unknown keys are ignored; known keys with a value of the wrong type or
 * range are refused (EINVAL).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "private.h"

/* The smallest max_data_xfer_size a client may ask for. */
#define VUS_MIN_XFER 512

typedef struct ClientCaps {
    /* The values proposed, or the protocol's defaults. */
    uint64_t max_fds;
    uint64_t max_xfer;
    uint64_t mig_pgsize;
    uint64_t max_bitmap;
    /* Which keys were proposed. */
    bool has_max_fds;
    bool has_max_xfer;
    bool has_pgsizes;
    bool has_max_dma_maps;
    bool migration;
    bool has_max_bitmap;
    bool precopy_info;          /* migration.x-precopy-info: true */
    bool mig_data_size;         /* migration.x-mig-data-size: true */
    bool twin_socket;           /* twin_socket.supported: true */
    bool write_multiple;        /* write_multiple: true */
} ClientCaps;

/* A boolean member, false when absent; false + warning when mistyped. */
static bool get_bool(VusCtx *ctx, const VusJson *obj, const char *key,
                     const char *where, bool *val)
{
    const VusJson *v = vus_json_get(obj, key);

    *val = false;
    if (!v) {
        return true;
    }
    if (v->type != VUS_JSON_BOOL) {
        vus_warn(ctx, "VERSION: %s%s is not a boolean", where, key);
        return false;
    }
    *val = v->boolean;
    return true;
}

/* A non-negative integer member; *@has says whether it was there. */
static bool get_u64(VusCtx *ctx, const VusJson *obj, const char *key,
                    const char *where, uint64_t *val, bool *has)
{
    const VusJson *v = vus_json_get(obj, key);

    *has = v != NULL;
    if (v && !vus_json_get_u64(v, val)) {
        vus_warn(ctx, "VERSION: %s%s is not a non-negative integer", where,
                 key);
        return false;
    }
    return true;
}

static bool parse_migration(VusCtx *ctx, const VusJson *mig, ClientCaps *caps)
{
    bool has_pgsize;

    if (mig->type != VUS_JSON_OBJECT) {
        vus_warn(ctx, "VERSION: \"migration\" is not an object");
        return false;
    }
    caps->migration = true;
    if (!get_u64(ctx, mig, VFIO_USER_CAP_MIGRATION_PGSIZE, "migration.",
                 &caps->mig_pgsize, &has_pgsize) ||
        !get_u64(ctx, mig, VFIO_USER_CAP_MIGRATION_MAX_BITMAP, "migration.",
                 &caps->max_bitmap, &caps->has_max_bitmap) ||
        !get_bool(ctx, mig, VFIO_USER_CAP_X_PRECOPY_INFO, "migration.",
                  &caps->precopy_info) ||
        !get_bool(ctx, mig, VFIO_USER_CAP_X_MIG_DATA_SIZE, "migration.",
                  &caps->mig_data_size)) {
        return false;
    }
    if (has_pgsize && (caps->mig_pgsize < 512 ||
                       (caps->mig_pgsize & (caps->mig_pgsize - 1)))) {
        vus_warn(ctx, "VERSION: migration.pgsize is not a power of two "
                 ">= 512");
        return false;
    }
    return true;
}

static int parse_client_caps(VusCtx *ctx, const char *json, size_t len,
                             ClientCaps *caps)
{
    const VusJson *c, *v;
    const char *err = NULL;
    VusJson *root;
    uint64_t ignored;
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

    if (!get_u64(ctx, c, VFIO_USER_CAP_MAX_MSG_FDS, "", &caps->max_fds,
                 &caps->has_max_fds) ||
        !get_u64(ctx, c, VFIO_USER_CAP_MAX_DATA_XFER_SIZE, "",
                 &caps->max_xfer, &caps->has_max_xfer) ||
        !get_u64(ctx, c, VFIO_USER_CAP_PGSIZES, "", &ignored,
                 &caps->has_pgsizes) ||
        !get_u64(ctx, c, VFIO_USER_CAP_MAX_DMA_MAPS, "", &ignored,
                 &caps->has_max_dma_maps) ||
        !get_bool(ctx, c, VFIO_USER_CAP_WRITE_MULTIPLE, "",
                  &caps->write_multiple)) {
        goto out;
    }
    /* More than we could ever send is the same as our maximum. */
    caps->max_fds = MIN(caps->max_fds, VFIO_USER_MAX_MAX_FDS);
    if (caps->max_xfer < VUS_MIN_XFER) {
        vus_warn(ctx, "VERSION: max_data_xfer_size is below %u",
                 VUS_MIN_XFER);
        goto out;
    }
    v = vus_json_get(c, VFIO_USER_CAP_MIGRATION);
    if (v && !parse_migration(ctx, v, caps)) {
        goto out;
    }
    /* fd_index is the server's to give (in its reply): ignored here. */
    v = vus_json_get(c, VFIO_USER_CAP_TWIN_SOCKET);
    if (v) {
        if (v->type != VUS_JSON_OBJECT) {
            vus_warn(ctx, "VERSION: \"twin_socket\" is not an object");
            goto out;
        }
        if (!get_bool(ctx, v, "supported", "twin_socket.",
                      &caps->twin_socket)) {
            goto out;
        }
    }
    ret = 0;
out:
    vus_json_free(root);
    return ret;
}

typedef struct CapsBuf {
    char *buf;
    size_t size;
    size_t len;
    unsigned members;
    bool overflow;
} CapsBuf;

static void caps_vappend(CapsBuf *b, const char *fmt, va_list ap)
{
    int n;

    if (b->overflow) {
        return;
    }
    n = vsnprintf(b->buf + b->len, b->size - b->len, fmt, ap);
    if (n < 0 || (size_t)n >= b->size - b->len) {
        b->overflow = true;
        return;
    }
    b->len += n;
}

static void __attribute__((format(printf, 2, 3)))
caps_append(CapsBuf *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    caps_vappend(b, fmt, ap);
    va_end(ap);
}

/* One member of the capabilities object: a comma before all but one. */
static void __attribute__((format(printf, 2, 3)))
caps_member(CapsBuf *b, const char *fmt, ...)
{
    va_list ap;

    if (b->members++) {
        caps_append(b, ",");
    }
    va_start(ap, fmt);
    caps_vappend(b, fmt, ap);
    va_end(ap);
}

static int build_server_caps(VusCtx *ctx, VusConn *conn,
                             const ClientCaps *caps, bool twin, char *buf,
                             size_t size)
{
    CapsBuf b = { .buf = buf, .size = size };

    caps_append(&b, "{\"capabilities\":{");
    /* max_msg_fds is what we take; a client assuming 1 is safe. */
    if (caps->has_max_fds) {
        caps_member(&b, "\"%s\":%u", VFIO_USER_CAP_MAX_MSG_FDS,
                    VUS_SERVER_MAX_FDS);
    }
    if (caps->has_max_xfer || conn->max_xfer < VFIO_USER_DEF_MAX_XFER) {
        caps_member(&b, "\"%s\":%u", VFIO_USER_CAP_MAX_DATA_XFER_SIZE,
                    conn->max_xfer);
    }
    if (caps->has_pgsizes) {
        caps_member(&b, "\"%s\":%u", VFIO_USER_CAP_PGSIZES,
                    VUS_PAGE_SIZE);
    }
    if (caps->has_max_dma_maps ||
        ctx->limits.max_dma_maps < VFIO_USER_DEF_MAX_DMA_MAPS) {
        caps_member(&b, "\"%s\":%u", VFIO_USER_CAP_MAX_DMA_MAPS,
                    ctx->limits.max_dma_maps);
    }
    if (caps->write_multiple) {
        caps_member(&b, "\"%s\":true", VFIO_USER_CAP_WRITE_MULTIPLE);
    }
    if (twin) {
        /* The client's end travels as the reply's only fd. */
        caps_member(&b, "\"%s\":{\"supported\":true,"
                    "\"fd_index\":0}", VFIO_USER_CAP_TWIN_SOCKET);
    }
    if (caps->migration && ctx->migratable) {
        caps_member(&b, "\"%s\":{\"%s\":%u", VFIO_USER_CAP_MIGRATION,
                    VFIO_USER_CAP_MIGRATION_PGSIZE, VUS_PAGE_SIZE);
        /* Report bitmaps travel in one message. */
        if (caps->has_max_bitmap) {
            caps_append(&b, ",\"%s\":%" PRIu64,
                        VFIO_USER_CAP_MIGRATION_MAX_BITMAP,
                        MIN(caps->max_bitmap, (uint64_t)conn->max_xfer));
        }
        if (caps->precopy_info && ctx->mig.precopy_info) {
            caps_append(&b, ",\"%s\":true", VFIO_USER_CAP_X_PRECOPY_INFO);
        }
        if (caps->mig_data_size && ctx->mig.data_size) {
            caps_append(&b, ",\"%s\":true", VFIO_USER_CAP_X_MIG_DATA_SIZE);
        }
        caps_append(&b, "}");
    }
    caps_append(&b, "}}");
    if (b.overflow) {
        return -EOVERFLOW;
    }
    return b.len + 1;       /* the NUL travels too */
}

int vus_handle_version(VusCtx *ctx, VusConn *conn, VusMsg *msg)
{
    struct vfio_user_version ver;
    ClientCaps caps = {
        .max_fds = VFIO_USER_DEF_MAX_FDS,
        .max_xfer = VFIO_USER_DEF_MAX_XFER,
        .mig_pgsize = VFIO_USER_DEF_PGSIZE,
    };
    char json[768];
    int twin[2] = { -1, -1 };   /* [0] ours, [1] the client's */
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
            ret = parse_client_caps(ctx, text, nul - text, &caps);
            if (ret < 0) {
                return ret;
            }
        }
    }

    conn->client_max_fds = caps.max_fds;
    conn->max_xfer = MIN((uint64_t)ctx->max_xfer, caps.max_xfer);
    conn->write_multiple = caps.write_multiple;
    ctx->client_log_pgsize = caps.mig_pgsize;
    /*
     * Twin-socket mode is ours to set up: a fresh pair, our end kept, the
     * other passed with the reply.  Only for a client that takes fds.
     */
    if (caps.twin_socket && conn->client_max_fds > 0 &&
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, twin) < 0) {
        vus_warn(ctx, "VERSION: no twin socket: socketpair: %s",
                 strerror(errno));
        twin[0] = twin[1] = -1;
    }
    len = build_server_caps(ctx, conn, &caps, twin[0] >= 0, json,
                            sizeof(json));
    if (len < 0) {
        ret = len;
        goto out;
    }
    ver.minor = MIN(ver.minor, VFIO_USER_MINOR);
    ret = vus_reply(ctx, conn, msg, &ver, sizeof(ver), json, len,
                    twin[1] >= 0 ? &twin[1] : NULL, twin[1] >= 0 ? 1 : 0);
    if (ret < 0) {
        goto out;
    }
    conn->twin_fd = twin[0];
    twin[0] = -1;
    conn->versioned = true;
    atomic_store(&ctx->conn_max_xfer, conn->max_xfer);
    vus_info(ctx, "VERSION %u.%u: max_msg_fds %u, max_data_xfer_size %u%s",
             ver.major, ver.minor, conn->client_max_fds, conn->max_xfer,
             conn->twin_fd >= 0 ? ", twin socket" : "");
out:
    if (twin[0] >= 0) {
        close(twin[0]);
    }
    if (twin[1] >= 0) {
        close(twin[1]);
    }
    return ret;
}
