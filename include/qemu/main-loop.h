/*
 * The main loop and the big lock (BQL).
 *
 * The main thread runs a GLib main loop on the default GMainContext.  It
 * holds the BQL whenever it dispatches, and drops it only while polling,
 * so every main-loop callback (QMP commands, timers, fd handlers) runs
 * with the BQL held.  Other threads (vCPUs, migration) take the BQL to
 * touch global state: run state, the object tree, device registration.
 */
#ifndef QEMU_MAIN_LOOP_H
#define QEMU_MAIN_LOOP_H

#include "qemu/osdep.h"

void bql_lock(void);
void bql_unlock(void);
bool bql_locked(void);

/* Install the BQL-aware poll function; call once from main(). */
void main_loop_init(void);
/* Run until a shutdown is requested; returns the exit status. */
int main_loop_run(void);
/* Ask the main loop to finish (any thread).  @status is main's exit code. */
void main_loop_request_exit(int status);
bool main_loop_exit_requested(void);

/* Run @fn(@opaque) on the main thread, with the BQL held (any thread). */
void main_loop_call(void (*fn)(void *opaque), void *opaque);

#endif
