/*
 * A walker over saved migration streams, for the tests that damage or
 * cut them: it follows the layout of docs/devel/migration.rst (RAM,
 * guest, globalstate and VFIO device sections) and lists every element
 * with its place.
 */
#ifndef MIGRATION_TEST_STREAM_H
#define MIGRATION_TEST_STREAM_H

#include "qemu/osdep.h"

#define MIG_EL_EOF 0x00
#define MIG_EL_START 0x01
#define MIG_EL_PART 0x02
#define MIG_EL_END 0x03
#define MIG_EL_FULL 0x04
#define MIG_EL_COMMAND 0x08

#define MIG_CMD_SWITCHOVER_START 3

/* A section, a command or the EOF marker. */
typedef struct MigStreamElement {
    uint8_t type;               /* MIG_EL_* */
    size_t offset;              /* its type byte */
    size_t end;                 /* one past its footer (or last byte) */
    uint32_t section_id;
    char name[256];             /* the section's id string */
    size_t name_offset;         /* START/FULL: the id string's length byte */
    size_t payload;             /* sections: the payload's first byte */
    size_t footer;              /* sections: the footer's 0x7e */
    uint16_t command;
    size_t first_pages;         /* RAM: the first PAGES record, or 0 */
} MigStreamElement;

typedef struct MigStream {
    const uint8_t *data;
    size_t len;
    size_t config;              /* the configuration section's type byte */
    size_t config_end;          /* the first byte after it */
    GArray *elements;           /* MigStreamElement, in stream order */
} MigStream;

/*
 * Walk @len bytes at @data (kept, not copied): the test fails on a
 * stream the walker does not understand.
 */
MigStream *mig_stream_walk(const uint8_t *data, size_t len);
void mig_stream_free(MigStream *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigStream, mig_stream_free)

static inline MigStreamElement *mig_stream_element(MigStream *s, guint i)
{
    return &g_array_index(s->elements, MigStreamElement, i);
}

/* The first element of @type (and section @name, unless NULL), or NULL. */
MigStreamElement *mig_stream_find(MigStream *s, uint8_t type,
                                  const char *name);

/*
 * What the loader must name when the stream stops right before element
 * @i: the first element at or after @i that a complete stream needs
 * (every START, SWITCHOVER_START, every END and FULL, the EOF marker),
 * in the words of its message ("the START section of 'ram'",
 * "SWITCHOVER_START", "its EOF marker").
 */
char *mig_stream_missing(MigStream *s, guint i);

/*
 * Load @len bytes of a damaged stream and expect the load to fail with
 * @fragment in its message (see mig_expect_load_error).
 */
typedef void MigStreamExpectError(const uint8_t *bytes, size_t len,
                                  const char *fragment, void *opaque);

/*
 * The stream stopped right before element @i must fail to load with a
 * message naming what is missing (mig_stream_missing): the bytes before
 * it alone, and followed by an EOF marker.
 */
void mig_stream_check_cut(MigStream *s, guint i, MigStreamExpectError *expect,
                          void *opaque);
/* A cut inside section @i's payload names the section and the cut. */
void mig_stream_check_cut_inside(MigStream *s, guint i,
                                 MigStreamExpectError *expect, void *opaque);
/*
 * Every way to stop the stream early must fail the load and name what
 * is missing, never complete: mig_stream_check_cut at each element, a
 * cut inside the first section of each handler and kind, and the header
 * without its configuration.
 */
void mig_stream_check_truncations(MigStream *s, MigStreamExpectError *expect,
                                  void *opaque);

/*
 * Whether an error message matches @fragment: a substring, or, when it
 * holds a '*', a glob that one line of @err matches.
 */
bool mig_error_matches(const char *err, const char *fragment);
/* Load @len bytes with @vm_args: vmig must exit 1 with @fragment on stderr. */
void mig_expect_load_error(const uint8_t *bytes, size_t len,
                           const char *vm_args, const char *fragment);
/* The same as a MigStreamExpectError, with @opaque the VM's arguments. */
void mig_expect_load_error_cb(const uint8_t *bytes, size_t len,
                              const char *fragment, void *opaque);

#endif
