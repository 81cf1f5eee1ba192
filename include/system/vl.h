/*
 * The command line (system/vl.c), split from main() so tests can parse
 * argument vectors without starting a machine.
 */
#ifndef SYSTEM_VL_H
#define SYSTEM_VL_H

#include "qemu/error.h"

typedef struct VmigConfig VmigConfig;

/* Parse and check argv.  NULL with *exit_ok set: help was printed. */
VmigConfig *vl_parse_args(int argc, char **argv, bool *exit_ok, Error **errp);
void vl_config_free(VmigConfig *cfg);
void vl_print_trace_events(void);
/* The whole program: returns the exit status. */
int vl_main(int argc, char **argv);

#endif
