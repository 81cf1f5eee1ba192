/*
 * The main loop: GLib's default context, dispatched with the BQL held.
 */
#include "qemu/osdep.h"
#include "qemu/main-loop.h"

static GMutex bql;
static __thread bool bql_held;
static GPollFunc glib_poll;
static int exit_requested;
static int exit_status;

void bql_lock(void)
{
    assert(!bql_held);
    g_mutex_lock(&bql);
    bql_held = true;
}

void bql_unlock(void)
{
    assert(bql_held);
    bql_held = false;
    g_mutex_unlock(&bql);
}

bool bql_locked(void)
{
    return bql_held;
}

/* Other threads get the BQL only while the main thread sleeps in poll. */
static gint bql_poll(GPollFD *fds, guint nfds, gint timeout)
{
    gint ret;

    bql_unlock();
    ret = glib_poll(fds, nfds, timeout);
    bql_lock();
    return ret;
}

void main_loop_init(void)
{
    glib_poll = g_main_context_get_poll_func(NULL);
    g_main_context_set_poll_func(NULL, bql_poll);
    bql_lock();
}

int main_loop_run(void)
{
    while (!__atomic_load_n(&exit_requested, __ATOMIC_ACQUIRE)) {
        g_main_context_iteration(NULL, TRUE);
    }
    return exit_status;
}

void main_loop_request_exit(int status)
{
    exit_status = status;
    __atomic_store_n(&exit_requested, 1, __ATOMIC_RELEASE);
    g_main_context_wakeup(NULL);
}

bool main_loop_exit_requested(void)
{
    return __atomic_load_n(&exit_requested, __ATOMIC_ACQUIRE);
}

typedef struct MainLoopCall {
    void (*fn)(void *opaque);
    void *opaque;
} MainLoopCall;

static gboolean main_loop_call_cb(gpointer data)
{
    MainLoopCall *call = data;

    call->fn(call->opaque);
    g_free(call);
    return G_SOURCE_REMOVE;
}

void main_loop_call(void (*fn)(void *opaque), void *opaque)
{
    MainLoopCall *call = g_new(MainLoopCall, 1);

    call->fn = fn;
    call->opaque = opaque;
    /* Always deferred: the caller may hold locks the callee takes. */
    g_idle_add(main_loop_call_cb, call);
}
