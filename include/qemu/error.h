/*
 * Error reporting in the QEMU style: a function that can fail takes
 * "Error **errp" as its last argument and returns false / NULL / a
 * negative value when it fails, after setting *errp.
 *
 * errp may be NULL (the caller does not care) or &error_abort (a failure
 * is a bug).  An Error carries a class, which QMP reports as "class".
 */
#ifndef QEMU_ERROR_H
#define QEMU_ERROR_H

#include <stdarg.h>
#include <stdbool.h>

typedef enum ErrorClass {
    ERROR_CLASS_GENERIC_ERROR,
    ERROR_CLASS_COMMAND_NOT_FOUND,
    ERROR_CLASS_DEVICE_NOT_FOUND,
} ErrorClass;

typedef struct Error Error;

/* Passing &error_abort makes any error fatal (abort with the message). */
extern Error *error_abort;
/* Passing &error_fatal prints the message and exits with status 1. */
extern Error *error_fatal;

void error_setg_internal(Error **errp, ErrorClass cls, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
#define error_setg(errp, ...) \
    error_setg_internal(errp, ERROR_CLASS_GENERIC_ERROR, __VA_ARGS__)
#define error_set(errp, cls, ...) error_setg_internal(errp, cls, __VA_ARGS__)
/* As error_setg, with ": strerror(os_errno)" appended. */
void error_setg_errno(Error **errp, int os_errno, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/* Move @local_err into @dst_errp (or free it when dst_errp is NULL). */
void error_propagate(Error **dst_errp, Error *local_err);
/* Prefix the message of *errp, if any: "prefix: message". */
void error_prepend(Error **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Append a hint line shown by error_report_err. */
void error_append_hint(Error **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

const char *error_get_pretty(const Error *err);
ErrorClass error_get_class(const Error *err);
const char *error_class_name(ErrorClass cls);
Error *error_copy(const Error *err);
void error_free(Error *err);
void error_free_or_abort(Error **errp);

/* Print "vmig: message" (and any hint) on stderr, then free @err. */
void error_report_err(Error *err);
/* Print "vmig: message" on stderr (or to the log file, with -D). */
void error_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void warn_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void info_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* Program name used as the prefix of reported messages. */
void error_set_progname(const char *name);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Error, error_free)

#endif
