/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer target for the receiving side of one multifd channel: the
 * hello, the packet headers, the RAM payloads (raw, zlib, zstd, zero
 * pages) and the device state payloads, with a device's reassembly
 * queue behind them.  One input is what a source writes on one channel;
 * it arrives on a socket, read by the real receive thread, while this
 * thread plays the incoming thread and passes each SYNC round as the
 * main stream's "multifd flush" would.
 *
 * Byte 0 sets the destination up (FUZZ_MULTIFD_* below), the rest is
 * the channel.  The machine (256 KiB of RAM, as the stream loader's
 * target) is built once; RAM is cleared before each input, as a fresh
 * destination's is.  tests/fuzz/make-seeds.py records real channels.
 */
#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "system/hostmem.h"
#include "system/ramblock.h"
#include "migration/multifd.h"
#include "fuzz-common.h"

/* Byte 0 */
#define FUZZ_MULTIFD_COMPRESSION 0x03   /* MultiFDCompression; 3 refused */
#define FUZZ_MULTIFD_DEVICE      0x04   /* a consumer for DEVICE_ID */
#define FUZZ_MULTIFD_QUEUE_CAP   0x08   /* its queue holds 64 KiB at most */

/* The id of a VFIO device "dev0"'s state, as hw/vfio registers it. */
#define DEVICE_IDSTR "vfio/dev0"
#define DEVICE_INSTANCE 0
#define QUEUE_CAP (64 * KiB)

static bool device_load(void *opaque, uint8_t **packet, size_t len,
                            Error **errp)
{
    return multifd_state_queue_take_buffer(opaque, packet, len, errp);
}

/* Take what the queue has in order, as the device's load thread would. */
static const char *drain_queue(MultiFDStateQueue *q, unsigned *taken)
{
    MultiFDStatePacket pkt;

    *taken = 0;
    while (multifd_state_queue_take_ready(q, &pkt)) {
        multifd_state_packet_free(&pkt);
        (*taken)++;
    }
    return *taken && !multifd_state_queue_complete(q) ?
           "device state without its config packet" : NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_common_init();
    fuzz_machine_init(false);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    MultiFDStateQueue *queue = NULL;
    MultiFDParams params;
    MigCancel *cancel;
    FuzzPeer *peer;
    Error *err = NULL;
    unsigned rounds = 0, taken = 0;
    const char *incomplete = NULL, *result;
    bool connected;
    int fd;

    fuzz_set_result(NULL);
    if (size < 1 || (data[0] & FUZZ_MULTIFD_COMPRESSION) >=
                    MULTIFD_COMPRESSION__MAX) {
        return -1;
    }
    multifd_params_init(&params);
    params.channels = 1;
    params.compression = data[0] & FUZZ_MULTIFD_COMPRESSION;

    RAMBLOCK_FOREACH(rb) {
        memset(rb->host, 0, rb->size);
    }
    cancel = mig_cancel_new(&error_abort);
    if (!multifd_recv_setup(NULL, &params, cancel, &err)) {
        fuzz_fail("multifd_recv_setup: %s", error_get_pretty(err));
    }
    if (data[0] & FUZZ_MULTIFD_DEVICE) {
        queue = multifd_state_queue_new(DEVICE_IDSTR,
            data[0] & FUZZ_MULTIFD_QUEUE_CAP ? QUEUE_CAP : 0, cancel);
        multifd_device_state_consumer_add(DEVICE_IDSTR, DEVICE_INSTANCE,
                                          device_load, queue, &error_abort);
    }
    /* Every device is set up: the loader would open the gate now. */
    multifd_device_state_gate_open();

    peer = fuzz_peer_start(data + 1, size - 1, &fd);
    connected = multifd_recv_new_channel(
        mig_channel_new_fd(fd, "fuzz-channel", cancel), NULL, 0, &err);
    if (connected) {
        /* Each "multifd flush" of the main stream, until the channel ends. */
        while (multifd_recv_sync_main(NULL)) {
            rounds++;
        }
        multifd_recv_check(&err);
    }
    multifd_recv_shutdown();
    g_byte_array_unref(fuzz_peer_join(peer));

    if (queue) {
        multifd_device_state_consumer_del(DEVICE_IDSTR, DEVICE_INSTANCE);
        incomplete = drain_queue(queue, &taken);
        multifd_state_queue_free(queue);
    }
    mig_cancel_free(cancel);

    result = err ? error_get_pretty(err) : incomplete ? incomplete : "ok";
    fuzz_log("options 0x%02x, %zu bytes, %u sync rounds, %u device packets: "
             "%s", data[0], size - 1, rounds, taken, result);
    fuzz_set_result(result);
    error_free(err);
    return 0;
}
