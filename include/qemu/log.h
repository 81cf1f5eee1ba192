/*
 * Where diagnostics go: stderr by default, a file with -D LOGFILE.
 * Thread-safe; every line is written whole.
 */
#ifndef QEMU_LOG_H
#define QEMU_LOG_H

#include "qemu/error.h"

/* Send all later messages to @path (appending); NULL means stderr. */
bool qemu_log_set_file(const char *path, Error **errp);
/* The current log file name, or NULL for stderr. */
const char *qemu_log_get_file(void);
/* Write "prog: [kind: ]msg\n" to the log. */
void qemu_log_report(const char *prog, const char *kind, const char *msg);
/* -msg timestamp=on: reports start with the UTC time, as QEMU's do. */
void qemu_log_set_timestamps(bool on);
/* Write a formatted line to the log with a timestamp (used by tracing). */
void qemu_log(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

#endif
