/*
 * The main stream: header, configuration, sections, commands.  Private
 * to migration/.
 *
 * Layout (all integers big-endian):
 *   be32 magic "VMIG", be32 version
 *   configuration: u8 0x07, be32 page size, str machine type,
 *       str guest program, be32 vCPUs, be32 capability bits and flags,
 *       u8 migration UUID[16], [u8 VM UUID[16] if MIG_CONFIG_FLAG_VM_UUID]
 *       be32 block count, per block: str id, be64 size, be64 gpa
 *   then any number of
 *     START / FULL: u8 type, be32 section id, str id, be32 instance id,
 *                   be32 version, payload, footer
 *     PART / END:   u8 type, be32 section id, payload, footer
 *     footer:       u8 0x7e, be32 section id
 *   (an iterative handler with save_state also has one FULL, after every
 *   END, under the section id of its START)
 *     COMMAND:      u8 0x08, be16 command, be16 length, payload
 *   u8 0x00 (EOF)
 * where str is u8 length + bytes.
 */
#ifndef MIGRATION_SAVEVM_H
#define MIGRATION_SAVEVM_H

#include "migration/qemu-file.h"
#include "migration/register.h"

#define MIG_STREAM_MAGIC 0x564d4947u        /* "VMIG" */
#define MIG_STREAM_VERSION 1

#define MIG_SECTION_EOF 0x00
#define MIG_SECTION_START 0x01
#define MIG_SECTION_PART 0x02
#define MIG_SECTION_END 0x03
#define MIG_SECTION_FULL 0x04
#define MIG_SECTION_CONFIGURATION 0x07
#define MIG_SECTION_COMMAND 0x08
#define MIG_SECTION_FOOTER 0x7e

typedef enum MigCommand {
    MIG_CMD_INVALID = 0,
    MIG_CMD_OPEN_RETURN_PATH = 1,   /* no payload: reply on the same socket */
    MIG_CMD_PING = 2,               /* be32 value, answered with PONG */
    MIG_CMD_SWITCHOVER_START = 3,   /* no payload: iterative data is all sent */
    /* postcopy-ram (payloads in docs/devel/migration.rst, "Postcopy") */
    MIG_CMD_POSTCOPY_ADVISE = 4,    /* no payload: check userfaultfd now */
    MIG_CMD_POSTCOPY_RAM_DISCARD = 5, /* str block, n x (be64 off, be64 len) */
    MIG_CMD_POSTCOPY_LISTEN = 6,    /* no payload: RAM faults from now on */
    MIG_CMD_POSTCOPY_RUN = 7,       /* no payload, in a package: start the VM */
    MIG_CMD_PACKAGED = 8,           /* be32 length, then that many bytes */
    MIG_CMD__MAX,
} MigCommand;

/* Capability bits that must agree on both sides (configuration). */
#define MIG_CONFIG_CAP_RETURN_PATH (1u << 0)
#define MIG_CONFIG_CAP_SWITCHOVER_ACK (1u << 1)
#define MIG_CONFIG_CAP_MULTIFD (1u << 2)
#define MIG_CONFIG_CAP_MAPPED_RAM (1u << 3)
#define MIG_CONFIG_CAP_POSTCOPY_RAM (1u << 4)
#define MIG_CONFIG_CAP_POSTCOPY_PREEMPT (1u << 5)
#define MIG_CONFIG_CAP_KNOWN 0x3fu

/*
 * postcopy-preempt's channel, source to destination: be32 magic, the
 * migration UUID[16], then pages until the source closes it:
 *   u8 PREEMPT_PAGE, str block, be64 offset, one page of data
 *   u8 PREEMPT_ZERO, str block, be64 offset
 */
#define MIG_PREEMPT_MAGIC 0x564d5050u       /* "VMPP" */
/*
 * Postcopy recovery: a resumed stream starts with be32 magic and the
 * migration UUID[16] of the paused migration, then goes on with PART and
 * END sections of the postcopy handlers and the EOF.
 */
#define MIG_RESUME_MAGIC 0x564d5253u        /* "VMRS" */
#define MIG_PREEMPT_PAGE 1
#define MIG_PREEMPT_ZERO 2
/*
 * Flags in the same word that describe the stream and need not agree:
 * VM_UUID (validate-uuid on the source) says that the source VM's UUID
 * follows the migration UUID.
 */
#define MIG_CONFIG_FLAG_VM_UUID (1u << 16)
#define MIG_CONFIG_FLAGS_KNOWN MIG_CONFIG_FLAG_VM_UUID

/* The capability bits and flags this side sends and expects (savevm.c). */
uint32_t migration_config_caps(void);

/* Largest command payload the destination accepts. */
#define MIG_CMD_MAX_LEN 4096
/* Largest package (MIG_CMD_PACKAGED): the device state at the switch. */
#define MIG_PACKAGE_MAX_LEN (16u << 20)

typedef struct MigrationIncomingState MigrationIncomingState;

/* Source (migration thread unless noted). */
bool qemu_savevm_state_prepare(Error **errp);     /* main thread, BQL */
void qemu_savevm_send_header(QEMUFile *f, uint32_t caps,
                             const uint8_t uuid[16]);
void qemu_savevm_send_command(QEMUFile *f, MigCommand cmd, uint16_t len,
                              const void *data);
int qemu_savevm_state_setup(QEMUFile *f, Error **errp);       /* BQL */
/*
 * 1: every iterator finished its pass, 0: more, negative: failure.  In
 * @postcopy only the handlers whose state goes on after the switch (RAM).
 */
int qemu_savevm_state_iterate(QEMUFile *f, bool postcopy, Error **errp);
uint64_t qemu_savevm_pending_estimate(void);
uint64_t qemu_savevm_pending_exact(void);
/* END and FULL sections, then EOF.  BQL held, VM stopped. */
int qemu_savevm_state_complete(QEMUFile *f, Error **errp);
void qemu_savevm_state_cleanup(void);                          /* BQL */
/*
 * postcopy-ram, at the switch (BQL held, VM stopped): the package of
 * everything but the postcopy handlers' state (SWITCHOVER_START, their
 * END and every FULL section, then POSTCOPY_RUN) as one MIG_CMD_PACKAGED.
 */
int qemu_savevm_send_postcopy_package(QEMUFile *f, Error **errp);
/* The END of every postcopy handler, then EOF, once it has sent all. */
int qemu_savevm_state_complete_postcopy(QEMUFile *f, Error **errp);

/* Destination: the UUID of the stream's configuration (false before). */
bool qemu_loadvm_stream_uuid(uint8_t uuid[16]);
/* Destination: the whole stream.  Incoming thread. */
int qemu_loadvm_state(QEMUFile *f, MigrationIncomingState *mis,
                      Error **errp);

#endif
