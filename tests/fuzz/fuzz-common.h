/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * What the decoder fuzz targets of tests/fuzz/ share (fuzz-common.c):
 * a failure report that survives libFuzzer's -close_fd_mask, a peer
 * thread that writes an input into one end of a socketpair, and the
 * outcome of the last input for the replay driver (fuzz-replay.c).
 */
#ifndef TESTS_FUZZ_COMMON_H
#define TESTS_FUZZ_COMMON_H

#include "qemu/osdep.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keep a copy of stderr for fuzz_fail(); from LLVMFuzzerInitialize(). */
void fuzz_common_init(void);
/*
 * The machine of the seeds (make-seeds.py starts its VMs alike): the main
 * loop, 256 KiB of RAM and, with @with_guest, one vCPU that runs the
 * stress program on 16 KiB.  Fails the run on an error.
 */
void fuzz_machine_init(bool with_guest);
/* Print "vmig-fuzz: ..." and abort, so that libFuzzer keeps the input. */
void G_GNUC_PRINTF(1, 2) G_GNUC_NORETURN fuzz_fail(const char *fmt, ...);
/* VMIG_FUZZ_LOG is set: say what became of each input. */
bool fuzz_verbose(void);
void G_GNUC_PRINTF(1, 2) fuzz_log(const char *fmt, ...);

/*
 * The other end of a socketpair, as a peer that sends @data (then shuts
 * its writing side) while it reads and drops whatever comes back, until
 * the code under test closes its end.  *@fd gets the code's end.
 */
typedef struct FuzzPeer FuzzPeer;
FuzzPeer *fuzz_peer_start(const uint8_t *data, size_t size, int *fd);
/*
 * Wait for the peer thread to end (the code's end must be closed); the
 * bytes it read, for the caller to g_byte_array_unref().
 */
GByteArray *fuzz_peer_join(FuzzPeer *peer);

/*
 * The outcome of the last input: "ok" when the decoder took all of it
 * without an error, otherwise the error.  The replay driver requires "ok"
 * of the seeds, which are real traffic: anything else means that the
 * target and the seed maker have drifted apart.
 */
void fuzz_set_result(const char *result);
const char *fuzz_last_result(void);

#endif
