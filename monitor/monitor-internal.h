/*
 * QMP internals shared by the files of monitor/ and by its unit tests.
 *
 * The layers, bottom up:
 *   json-splitter.c  cuts a byte stream into top-level JSON texts,
 *                    following the grammar to resynchronize on errors
 *   qmp-dispatch.c   the command table; one JSON text in, one reply out
 *   qmp.c            client connections: I/O, greeting, events, fd passing
 *   qmp-listen.c     -qmp option parsing and listening sockets
 *   fds.c            the getfd / closefd named fd table
 *
 * Everything except event emission and the named fd table runs on the
 * main thread with the BQL held.
 */
#ifndef MONITOR_INTERNAL_H
#define MONITOR_INTERNAL_H

#include "qemu/osdep.h"
#include "monitor/qmp.h"

/* Input beyond this size in one message is refused and skipped. */
#define QMP_MAX_MESSAGE_SIZE (1 * MiB)
/* Deeper nesting is refused (and keeps the JSON parser's recursion sane). */
#define QMP_MAX_NESTING 1024

/* ---- JSON framing ---- */

typedef struct JsonSplitter JsonSplitter;

/*
 * Called once per top-level JSON text found in the stream, with the text
 * (@msg, NUL-terminated, @len bytes without the NUL) and @error NULL; or
 * with @msg NULL and @error saying why input was dropped (too large, too
 * deeply nested, an unterminated string, a token that cannot come where
 * it is, a 0xff parser reset).  Must not free the splitter.
 */
typedef void JsonSplitterFunc(void *opaque, const char *msg, size_t len,
                              const char *error);

JsonSplitter *json_splitter_new(size_t max_size, JsonSplitterFunc *fn,
                                void *opaque);
void json_splitter_feed(JsonSplitter *js, const char *data, size_t len);
/* Bytes of an unfinished message held (0 between messages). */
size_t json_splitter_pending(const JsonSplitter *js);
void json_splitter_free(JsonSplitter *js);

/* ---- Sessions and dispatch ---- */

typedef struct QmpSession QmpSession;

struct QmpSession {
    /* False until qmp_capabilities succeeds. */
    bool negotiated;
    /*
     * Pops the oldest fd the peer passed with SCM_RIGHTS and not yet
     * claimed (the caller owns it), or returns -1.  NULL: the transport
     * cannot pass fds.
     */
    int (*take_fd)(QmpSession *session);
    /* Calls queued by the running command, made once its reply is out. */
    GSList *after_reply;
};

void qmp_session_init(QmpSession *session);
/* Drop any queued after-reply calls without making them. */
void qmp_session_cleanup(QmpSession *session);

/*
 * Handle one framed message and return its reply as text ending with
 * CRLF.  Every message gets exactly one reply.  The caller sends it, then
 * calls qmp_session_run_after_reply().
 */
char *qmp_handle_message(QmpSession *session, const char *text, size_t len);
void qmp_session_run_after_reply(QmpSession *session);

/* The session whose command is running, or NULL outside a command. */
QmpSession *qmp_session_current(void);
/* From a command: call @fn(@opaque) once the reply has been sent. */
void qmp_defer_after_reply(void (*fn)(void *opaque), void *opaque);

/* The error reply (CRLF-terminated) for input that never became a message. */
char *qmp_error_reply_text(ErrorClass cls, const char *desc);
/* One JSON object as a line: compact text plus CRLF. */
char *qmp_object_to_line(JsonObject *obj);

/* {"qemu": {"major", "minor", "micro"}, "package"} (new reference). */
JsonObject *qmp_version_object(void);
/* The greeting line sent to a new client (CRLF-terminated). */
char *qmp_greeting_text(void);

/* Registered command names, sorted (free the array; names are borrowed). */
GPtrArray *qmp_command_names(void);

/* ---- Clients (qmp.c) ---- */

/* Every client, every listener, every named fd. */
void monitor_fds_cleanup(void);
void monitor_listeners_cleanup(void);
/* Connected clients (tests check that a dropped one is gone). */
unsigned monitor_qmp_client_count(void);
/* The local port of the most recent -qmp tcp: listener, or -1 (tests). */
int monitor_listener_tcp_port(void);
/*
 * Attach an accepted connection; @can_pass_fds for AF_UNIX.  A client
 * that has not sent qmp_capabilities after @negotiation_timeout_ms (0:
 * never) is told so and disconnected.  When the client cannot be taken
 * (too many), it gets an error line before the caller closes @fd.
 */
bool monitor_qmp_attach(int fd, bool can_pass_fds, const char *peer,
                        unsigned negotiation_timeout_ms, Error **errp);

/* A connection in general: a socket, or stdin and stdout. */
typedef struct MonitorClientOpts {
    int fd;                     /* read from; owned by the client after */
    int out_fd;                 /* written to: @fd, or another (stdio) */
    bool is_socket;
    bool can_pass_fds;          /* AF_UNIX */
    bool readline;              /* HMP console instead of QMP */
    const char *peer;           /* for messages */
    unsigned negotiation_timeout_ms;
} MonitorClientOpts;
bool monitor_client_attach(const MonitorClientOpts *o, Error **errp);
/* The default of -qmp ...,x-negotiation-timeout=MS. */
#define QMP_NEGOTIATION_TIMEOUT_MS 60000
/* Clients connected at once, over all listeners. */
#define QMP_MAX_CLIENTS 64

#endif
