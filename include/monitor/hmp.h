/*
 * HMP, the human monitor (monitor/hmp.c): QEMU's text commands, run
 * through QMP.  Reached by the QMP command human-monitor-command and by
 * the console of -monitor / -mon mode=readline.
 */
#ifndef MONITOR_HMP_H
#define MONITOR_HMP_H

#include "qemu/osdep.h"

typedef struct HmpContext HmpContext;
typedef struct QmpSession QmpSession;

/*
 * Run one command line; returns its output ("\n" line ends, "" for
 * none).  Calls the QMP commands defer until their reply is out go to
 * @owner (NULL: dropped).  *@wait_migration, if given, says that the
 * line started a migration the console should wait for (migrate
 * without -d).
 */
char *hmp_run(const char *line, QmpSession *owner, bool *wait_migration);
/* Whether the migration has ended; *@message gets what to print. */
bool hmp_migration_finished(char **message);
/* @text with every "\n" as "\r\n", as QEMU's monitor sends lines. */
char *hmp_crlf(const char *text);

#endif
