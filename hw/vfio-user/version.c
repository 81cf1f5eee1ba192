/*
 * vfio-user VERSION capabilities: the JSON the client proposes and the
 * checks on what the server answers.
 *
 * Liberal in what it accepts: a server may leave out anything we
 * proposed (the protocol's defaults hold, and an extension it does not
 * echo is not used), and keys we never proposed are ignored whatever
 * their form, unknown ones and twin_socket alike (we set no twin socket
 * up; an fd that came with it is closed by the transport).  Strict where
 * it matters: the limits we size messages by, and the features we
 * proposed, must be well-formed; numbers are range-checked before
 * anything is sized from them.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "hw/vfio-user/proxy.h"

#include <json-glib/json-glib.h>

char *vfio_user_caps_build(const VFIOUserConnectOptions *opts)
{
    uint64_t max_xfer = opts && opts->max_data_xfer_size ?
                        MIN(opts->max_data_xfer_size, VFIO_USER_MAX_MAX_XFER) :
                        VFIO_USER_DEF_MAX_XFER;
    bool extensions = !(opts && opts->no_extensions);
    GString *s = g_string_new(NULL);

    g_string_append_printf(s, "{\"capabilities\":{"
                           "\"" VFIO_USER_CAP_MAX_MSG_FDS "\":%d,"
                           "\"" VFIO_USER_CAP_MAX_DATA_XFER_SIZE "\":%" PRIu64
                           ",\"" VFIO_USER_CAP_WRITE_MULTIPLE "\":true"
                           ",\"" VFIO_USER_CAP_MIGRATION "\":{"
                           "\"" VFIO_USER_CAP_MIGRATION_PGSIZE "\":%d",
                           VFIO_USER_CLIENT_MAX_FDS, max_xfer,
                           VFIO_USER_CLIENT_MIGR_PGSIZE);
    if (extensions) {
        g_string_append(s, ",\"" VFIO_USER_CAP_X_PRECOPY_INFO "\":true"
                        ",\"" VFIO_USER_CAP_X_MIG_DATA_SIZE "\":true");
    }
    g_string_append(s, "}}}");
    return g_string_free(s, false);
}

/* A non-negative integer member within [min, max], or the default. */
static bool caps_get_uint(JsonObject *obj, const char *key, uint64_t min,
                          uint64_t max, uint64_t *val, Error **errp)
{
    JsonNode *node = json_object_get_member(obj, key);
    gint64 v;

    if (!node) {
        return true;
    }
    if (!JSON_NODE_HOLDS_VALUE(node) ||
        json_node_get_value_type(node) != G_TYPE_INT64) {
        error_setg(errp, "capability '%s' is not an integer", key);
        return false;
    }
    v = json_node_get_int(node);
    if (v < 0 || (uint64_t)v < min || (uint64_t)v > max) {
        error_setg(errp, "capability '%s' = %" G_GINT64_FORMAT " is out of "
                   "range [%" PRIu64 ", %" PRIu64 "]", key, v, min, max);
        return false;
    }
    *val = v;
    return true;
}

static bool caps_get_bool(JsonObject *obj, const char *key, bool *val,
                          Error **errp)
{
    JsonNode *node = json_object_get_member(obj, key);

    if (!node) {
        return true;
    }
    if (!JSON_NODE_HOLDS_VALUE(node) ||
        json_node_get_value_type(node) != G_TYPE_BOOLEAN) {
        error_setg(errp, "capability '%s' is not a boolean", key);
        return false;
    }
    *val = json_node_get_boolean(node);
    return true;
}

static bool caps_get_object(JsonObject *obj, const char *key,
                            JsonObject **val, Error **errp)
{
    JsonNode *node = json_object_get_member(obj, key);

    *val = NULL;
    if (!node) {
        return true;
    }
    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        error_setg(errp, "capability '%s' is not an object", key);
        return false;
    }
    *val = json_node_get_object(node);
    return true;
}

bool vfio_user_caps_parse(const char *json, bool offered_extensions,
                          VFIOUserPeerCaps *caps, Error **errp)
{
    g_autoptr(JsonParser) parser = NULL;
    g_autoptr(GError) gerr = NULL;
    JsonNode *root;
    JsonObject *top, *c, *mig;
    uint64_t fds = VFIO_USER_DEF_MAX_FDS;
    uint64_t xfer = VFIO_USER_DEF_MAX_XFER;
    uint64_t pgsizes = VFIO_USER_DEF_PGSIZE;
    uint64_t maps = VFIO_USER_DEF_MAX_DMA_MAPS;
    uint64_t mig_pgsize = VFIO_USER_DEF_PGSIZE;
    bool write_multiple = false;
    bool precopy_info = false, mig_data_size = false;

    g_free(caps->json);
    caps->json = g_strdup(json ? json : "");
    if (json && *json) {
        parser = json_parser_new();
        if (!json_parser_load_from_data(parser, json, -1, &gerr)) {
            /* The parser's message may quote the server's bytes. */
            g_autofree char *why = qemu_escape_str(gerr->message);

            error_setg(errp, "VERSION capabilities are not JSON: %s", why);
            return false;
        }
        root = json_parser_get_root(parser);
        if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
            error_setg(errp, "VERSION capabilities are not a JSON object");
            return false;
        }
        top = json_node_get_object(root);
        if (!caps_get_object(top, "capabilities", &c, errp)) {
            return false;
        }
    } else {
        c = NULL;
    }

    if (c) {
        /*
         * max_msg_fds is how many the server takes per message: more than
         * we would ever send is clamped, not refused.
         */
        if (!caps_get_uint(c, VFIO_USER_CAP_MAX_MSG_FDS, 0, UINT32_MAX, &fds,
                           errp) ||
            !caps_get_uint(c, VFIO_USER_CAP_MAX_DATA_XFER_SIZE, 512,
                           UINT32_MAX, &xfer, errp) ||
            !caps_get_uint(c, VFIO_USER_CAP_PGSIZES, 0, UINT64_MAX >> 1,
                           &pgsizes, errp) ||
            !caps_get_uint(c, VFIO_USER_CAP_MAX_DMA_MAPS, 0, UINT32_MAX,
                           &maps, errp) ||
            !caps_get_bool(c, VFIO_USER_CAP_WRITE_MULTIPLE, &write_multiple,
                           errp) ||
            !caps_get_object(c, VFIO_USER_CAP_MIGRATION, &mig, errp)) {
            return false;
        }
        if (mig) {
            if (!caps_get_uint(mig, VFIO_USER_CAP_MIGRATION_PGSIZE, 1,
                               1ULL << 40, &mig_pgsize, errp)) {
                return false;
            }
            /* Extensions we did not propose are none of our business. */
            if (offered_extensions &&
                (!caps_get_bool(mig, VFIO_USER_CAP_X_PRECOPY_INFO,
                                &precopy_info, errp) ||
                 !caps_get_bool(mig, VFIO_USER_CAP_X_MIG_DATA_SIZE,
                                &mig_data_size, errp))) {
                return false;
            }
            if (mig_pgsize & (mig_pgsize - 1)) {
                error_setg(errp, "capability 'migration.pgsize' = %" PRIu64
                           " is not a power of two", mig_pgsize);
                return false;
            }
        }
    } else {
        mig = NULL;
    }

    caps->max_msg_fds = MIN(fds, VFIO_USER_MAX_MAX_FDS);
    caps->max_data_xfer_size = MIN(xfer, VFIO_USER_MAX_MAX_XFER);
    caps->pgsizes = pgsizes;
    caps->max_dma_maps = maps;
    caps->migration = mig != NULL;
    caps->migration_pgsize = mig_pgsize;
    caps->write_multiple = write_multiple;
    /* An extension counts only when both sides offered it. */
    caps->precopy_info = precopy_info;
    caps->mig_data_size = mig_data_size;
    return true;
}
