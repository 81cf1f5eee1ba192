/*
 * Diagnostic output: trace output to stderr or the file named with -D;
 * errors and warnings to stderr, and to that file too.
 */
#include "qemu/osdep.h"
#include "qemu/log.h"

#include <sys/syscall.h>

static GMutex log_lock;
static FILE *log_file;          /* NULL: stderr */
static char *log_file_name;

bool qemu_log_set_file(const char *path, Error **errp)
{
    FILE *f = NULL;

    if (path) {
        f = fopen(path, "a");
        if (!f) {
            error_setg_errno(errp, errno, "cannot open log file '%s'", path);
            return false;
        }
        setvbuf(f, NULL, _IOLBF, 0);
    }
    g_mutex_lock(&log_lock);
    if (log_file) {
        fclose(log_file);
    }
    log_file = f;
    g_free(log_file_name);
    log_file_name = g_strdup(path);
    g_mutex_unlock(&log_lock);
    return true;
}

const char *qemu_log_get_file(void)
{
    return log_file_name;
}

/* -msg timestamp=on: error, warning and info lines start with the time. */
static bool report_timestamps;

void qemu_log_set_timestamps(bool on)
{
    report_timestamps = on;
}

static void report_to(FILE *f, const char *prog, const char *kind,
                      const char *msg)
{
    if (report_timestamps) {
        g_autoptr(GDateTime) now = g_date_time_new_now_utc();
        g_autofree char *stamp = g_date_time_format(now, "%Y-%m-%dT%H:%M:%S");

        /* QEMU's form: 2026-12-06T06:30:02.163456Z */
        fprintf(f, "%s.%06dZ ", stamp, g_date_time_get_microsecond(now));
    }
    if (kind) {
        fprintf(f, "%s: %s: %s\n", prog, kind, msg);
    } else {
        fprintf(f, "%s: %s\n", prog, msg);
    }
    fflush(f);
}

/*
 * Errors and warnings always reach stderr, where whoever started vmig
 * looks; with -D they go into the log as well, among the trace output
 * they explain.
 */
void qemu_log_report(const char *prog, const char *kind, const char *msg)
{
    g_mutex_lock(&log_lock);
    report_to(stderr, prog, kind, msg);
    if (log_file) {
        report_to(log_file, prog, kind, msg);
    }
    g_mutex_unlock(&log_lock);
}

void qemu_log(const char *fmt, ...)
{
    va_list ap;
    char *msg;
    gint64 now = g_get_real_time();

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_mutex_lock(&log_lock);
    FILE *f = log_file ? log_file : stderr;
    fprintf(f, "%" PRId64 ".%06" PRId64 " [%ld] %s\n", now / G_USEC_PER_SEC,
            now % G_USEC_PER_SEC, (long)syscall(SYS_gettid), msg);
    fflush(f);
    g_mutex_unlock(&log_lock);
    g_free(msg);
}
