/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The stream loader's fuzz target (fuzz-migration-stream.c), for what
 * feeds it: byte 0 of an input.  The outcome of the last one is
 * fuzz_last_result() (fuzz-common.h): "ok" when the load completed.
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

#endif
