/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The stream loader's fuzz target (fuzz-migration-stream.c), for what
 * feeds it: byte 0 of an input and the outcome of the last one.
 */
#ifndef TESTS_FUZZ_MIGRATION_STREAM_H
#define TESTS_FUZZ_MIGRATION_STREAM_H

/* Byte 0 of an input: how the destination is set up. */
#define FUZZ_OPT_RETURN_PATH    0x01    /* capabilities, as QMP sets them */
#define FUZZ_OPT_SWITCHOVER_ACK 0x02
#define FUZZ_OPT_MULTIFD        0x04
#define FUZZ_OPT_MAPPED_RAM     0x08
#define FUZZ_OPT_SOCKET         0x10    /* "fd:" a socket, else "file:" */
#define FUZZ_OPT_DEVICE         0x20    /* a VFIO device with id "dev0" */

/*
 * How the last input's load ended: "completed" or "failed", or NULL
 * when the input was refused before a load (a capability combination
 * or an address that vmig would not take).
 */
const char *fuzz_migration_last_status(void);

#endif
