/*
 * Migration state shared by the files of migration/.  Private.
 */
#ifndef MIGRATION_MIGRATION_H
#define MIGRATION_MIGRATION_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "migration/channel.h"
#include "migration/qemu-file.h"
#include "migration/misc.h"
#include "system/ramblock.h"
#include "system/runstate.h"
#include <json-glib/json-glib.h>

typedef enum MigrationStatus {
    MIGRATION_STATUS_NONE,
    MIGRATION_STATUS_SETUP,
    MIGRATION_STATUS_CANCELLING,
    MIGRATION_STATUS_CANCELLED,
    MIGRATION_STATUS_ACTIVE,
    MIGRATION_STATUS_PRE_SWITCHOVER,
    MIGRATION_STATUS_DEVICE,
    MIGRATION_STATUS_COMPLETED,
    MIGRATION_STATUS_FAILED,
    MIGRATION_STATUS_POSTCOPY_ACTIVE,
    MIGRATION_STATUS_POSTCOPY_PAUSED,
    MIGRATION_STATUS_POSTCOPY_RECOVER_SETUP,
    MIGRATION_STATUS_POSTCOPY_RECOVER,
    MIGRATION_STATUS__MAX,
} MigrationStatus;

const char *migration_status_name(MigrationStatus s);
bool migration_status_is_terminal(MigrationStatus s);

/* Return-path messages (destination to source): be16 type, be16 len. */
typedef enum MigRpMessage {
    MIG_RP_MSG_INVALID = 0,
    MIG_RP_MSG_SHUT = 1,            /* be32: 0 loaded fine, else failure */
    MIG_RP_MSG_PONG = 2,            /* be32: the PING's value */
    MIG_RP_MSG_SWITCHOVER_ACK = 3,  /* no payload */
    MIG_RP_MSG_REQ_PAGES = 4,       /* str block, be64 offset, be32 length */
    /*
     * Postcopy recovery: str block, be64 bits; then, beyond the length,
     * the block's received bitmap as be64 words (bit N: page N).
     */
    MIG_RP_MSG_RECV_BITMAP = 5,
    MIG_RP_MSG_RESUME_ACK = 6,      /* no payload: every bitmap is out */
    MIG_RP_MSG__MAX,
} MigRpMessage;
#define MIG_RP_MAX_LEN 256

/* RAM counters for query-migrate; written by the migration thread. */
typedef struct RamStats {
    uint64_t transferred;       /* bytes of RAM sections */
    uint64_t normal_pages;      /* pages sent with data */
    uint64_t zero_pages;        /* pages found zero (sent as a marker or not) */
    uint64_t dirty_sync_count;
    uint64_t dirty_pages_rate;  /* pages/s newly dirtied, last sync period */
    uint64_t remaining;         /* bytes still dirty */
    uint64_t precopy_bytes;     /* bytes sent while the VM ran */
    uint64_t downtime_bytes;    /* bytes sent during the downtime */
    uint64_t postcopy_bytes;    /* bytes sent after a postcopy switch */
    uint64_t postcopy_requests; /* pages the destination asked for */
} RamStats;

extern RamStats ram_stats;

static inline uint32_t ldl_be(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static inline void stl_be(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

/*
 * The source.  Fields by owner:
 *   main thread (BQL): thread, addr, cancel, start_ms; reset only while no
 *     migration runs.
 *   migration thread: to_dst, the window and bandwidth fields, vm_*,
 *     in_downtime, savevm_setup_done, timings until the thread ends.
 *   lock: error, rp_*, continue_requested, downtime_end_ns,
 *     page_requests, the resume_* and pause fields, and the channel
 *     pointers while the migration thread replaces them (migrate-pause
 *     shuts them down); cond signals any change of them, and cancel.
 *   atomics: status, switchover_acked, stream_complete (set with the
 *     BQL), start_postcopy, postcopy_listen_sent, in_postcopy, and the
 *     figures query-migrate reads
 *     while the thread runs (expected_downtime_ms, mbps_x1000,
 *     pages_per_second).
 */
typedef struct MigrationState {
    int status;
    GThread *thread;
    MigrationAddress addr;
    MigCancel *cancel;
    int64_t start_ms;

    QEMUFile *to_dst;
    QEMUFile *from_dst;
    QEMUFile *preempt;              /* postcopy-preempt: the rp thread's */
    uint8_t uuid[16];
    bool multifd_started;
    GThread *rp_thread;
    bool savevm_setup_done;
    bool vm_was_running;
    int prev_runstate;
    bool vm_stopped;
    bool in_downtime;
    bool succeeded;
    int64_t window_start_ms;
    uint64_t window_start_bytes;
    uint64_t window_start_pages;
    uint64_t window_start_data_pages;
    bool window_starved;            /* the sender ran out of data */
    uint64_t bandwidth;             /* bytes/s, switchover estimate */
    bool bandwidth_measured;        /* a busy window has set it */

    GMutex lock;
    GCond cond;
    Error *error;
    bool rp_shut_received;
    uint32_t rp_shut_value;
    uint32_t rp_pong;
    bool rp_exited;
    bool continue_requested;
    int64_t downtime_start_ns;
    int64_t downtime_end_ns;
    GQueue page_requests;           /* PageRequest, from the return path */

    bool start_postcopy;            /* migrate-start-postcopy was asked */
    bool postcopy_listen_sent;      /* page requests may come */
    bool in_postcopy;               /* the package is out: no way back */
    /* postcopy recovery */
    Error *pause_error;             /* why it paused, for error-desc */
    bool resume_requested;
    MigrationAddress resume_addr;   /* migrate resume=true's address */
    GPtrArray *recv_bitmaps;        /* RecvBitmap from the destination */
    bool resume_acked;
    bool pause_requested;           /* migrate-pause cut the link */

    bool switchover_acked;
    bool stream_complete;           /* EOF is out: too late to cancel;
                                       postcopy: preempt errors no longer
                                       matter */
    uint64_t expected_downtime_ms;
    uint64_t mbps_x1000;
    uint64_t pages_per_second;
    int64_t setup_time_ms;
    int64_t total_time_ms;
    int64_t downtime_ms;
} MigrationState;

MigrationState *migrate_get_current(void);
MigrationStatus migration_get_status(MigrationState *s);
void migration_emit_status(MigrationStatus status);
/* Main thread, BQL: start an outgoing migration to @addr. */
bool migration_start(const MigrationAddress *addr, Error **errp);
/* migrate_cancel: false with errp set when it is refused (postcopy). */
bool migration_cancel(Error **errp);
/* migrate-start-postcopy.  Main thread, BQL. */
bool migration_start_postcopy(Error **errp);
/* error-desc while paused or recovering (main thread). */
void migration_query_pause(JsonObject *obj);
/* migrate-pause on the source, and migrate resume=true.  Main, BQL. */
bool migration_pause(Error **errp);
bool migration_resume(const MigrationAddress *addr, Error **errp);
/* The same on the destination: migrate-pause, migrate-recover. */
bool migration_incoming_pause(Error **errp);
bool migration_incoming_recover(const MigrationAddress *addr, Error **errp);
/* Whether the source is past its postcopy switch (any thread). */
bool migration_in_postcopy(void);
bool migration_continue(const char *state, Error **errp);
/*
 * Main thread, BQL: yank's "migration" instance exists while either side
 * has a migration that has not ended; yanking it shuts down every socket
 * of both sides' migrations at once (see mig_cancel_yank()).
 */
bool migration_yank_exists(void);
void migration_yank(void);
/* The running incoming migration's canceller, or NULL (BQL). */
MigCancel *migration_incoming_current_cancel(void);
/*
 * Destination: a stream is being loaded (capabilities are fixed then;
 * while only listening they may still change).
 */
bool migration_incoming_is_loading(void);
/* migration_shutdown() for the incoming side. */
void migration_incoming_shutdown(void);
/* The incoming side's query-migrate members (incoming.c). */
void migration_incoming_query(JsonObject *obj);
bool migration_incoming_start_addr(const MigrationAddress *addr,
                                   bool exit_on_error, Error **errp);

typedef struct MigrationIncomingState MigrationIncomingState;

/* Source: record a failure seen outside the main loop (first one wins). */
void migration_report_error(Error *err);
/* Source: emit MIGRATION_PASS (with the events capability). */
void migration_event_pass(uint64_t pass);

/* Destination, called by the loader on the incoming thread. */
bool migration_incoming_rp_open(MigrationIncomingState *mis, Error **errp);
bool migration_incoming_rp_send(MigrationIncomingState *mis, MigRpMessage type,
                                const void *data, uint16_t len, Error **errp);
void migration_incoming_set_ack_needed(MigrationIncomingState *mis,
                                       unsigned count);
void migration_incoming_approve_switchover(void);
/* Postcopy recovery, destination (incoming thread). */
QEMUFile *migration_incoming_from_src(MigrationIncomingState *mis);
/*
 * The stream broke after RUN (@reason, taken): postcopy-paused, until
 * migrate-recover's listener gets a resume of this migration; then the
 * new stream is from_src and the return path is open on it (true).
 * false when vmig exits meanwhile.
 */
bool migration_incoming_postcopy_pause(MigrationIncomingState *mis,
                                       Error *reason);
/* One block's received bitmap (RECV_BITMAP) on the return path. */
bool migration_incoming_rp_send_bitmap(MigrationIncomingState *mis,
                                       const char *idstr, uint64_t bits,
                                       const unsigned long *map,
                                       Error **errp);
/*
 * A postcopy channel besides the stream broke (@err, reported here):
 * break the stream too, so that the loader pauses.  Any thread.
 */
void migration_incoming_stream_broke(MigrationIncomingState *mis,
                                     const Error *err);
/* The handshake is done: postcopy-active again. */
void migration_incoming_postcopy_resumed(MigrationIncomingState *mis);
/* The listener of the incoming migration (for more channels). */
MigListener *migration_incoming_listener(MigrationIncomingState *mis);
/* postcopy-ram: LISTEN (status postcopy-active), and RUN: start the VM. */
void migration_incoming_postcopy_listen(MigrationIncomingState *mis);
void migration_incoming_postcopy_run(MigrationIncomingState *mis);
/* Fired when the load must stop (a multifd failure, exit). */
MigCancel *migration_incoming_cancel(MigrationIncomingState *mis);
/*
 * The loader's verdict is in (its consumers go away next): multifd
 * failures from now on are caused by the teardown and are not reported.
 */
void migration_incoming_load_ended(MigrationIncomingState *mis);

/* Source, postcopy: whether page requests wait in the queue.  Any thread. */
bool migration_postcopy_has_requests(void);

/*
 * Source, postcopy: the next page request of the destination, already
 * checked (a block, page aligned, inside it).  Migration thread.
 */
bool migration_postcopy_take_request(RAMBlock **rb, uint64_t *offset,
                                     uint64_t *len);

/* Migration thread: every byte sent so far, main stream and multifd. */
uint64_t migration_transferred_bytes(void);

/*
 * auto-converge and dirty-limit (throttle.c).  Migration thread: setup
 * before the first pass; after_sync after each dirty sync while the VM
 * runs, with the pages it found newly dirty; cleanup at the end of the
 * migration, whatever the end, before the VM may run again.
 */
void migration_throttle_setup(void);
void migration_throttle_after_sync(uint64_t newly_dirty_pages);
void migration_throttle_cleanup(void);
/* query-migrate's throttle members, while a throttle is on (main thread). */
void migration_throttle_query(JsonObject *obj);

/*
 * calc-dirty-rate (dirtyrate.c): whether a measurement in mode
 * dirty-bitmap holds the dirty log, which a migration then cannot use
 * (errp says so).  Shutdown ends a measurement.  Main thread, BQL.
 */
bool dirtyrate_holds_dirty_log(Error **errp);
void dirtyrate_shutdown(void);

/* query-migrate's "vfio" member, when a VFIO device takes part (vfio.c). */
void migration_query_vfio(JsonObject *obj);

/* Global state: the source's run state at switchover (global-state.c). */
void global_state_init(void);
void global_state_store(void);
/* Destination, after a load: the source VM's run state when it stopped. */
RunState global_state_source_runstate(void);

/* The guest program's vCPU state as a section (guest-state.c). */
void guest_state_mig_init(void);


#endif
