/*
 * A buffered, big-endian byte stream over a MigChannel, in one
 * direction.
 *
 * Writers put small fields into an internal buffer and guest RAM by
 * reference (qemu_put_buffer_nocopy).  Everything goes out with writev(),
 * except that on a socket guest RAM goes without a copy at all
 * (mig_channel_writev_ref): the kernel reads the pages when the peer
 * does, so their content may change until then, which is fine for guest
 * RAM whose changes are logged and resent.
 *
 * Readers: qemu_get_buffer() of a large block reads straight into the
 * destination (guest RAM) once the internal buffer is drained.
 *
 * Errors are sticky: after the first, puts are dropped and gets return
 * zeros, and qemu_file_get_error() says what happened.  A QEMUFile is
 * used by one thread at a time.
 */
#ifndef MIGRATION_QEMU_FILE_H
#define MIGRATION_QEMU_FILE_H

#include "qemu/osdep.h"
#include "qemu/error.h"
#include "migration/channel.h"

typedef struct QEMUFile QEMUFile;

/* The file owns @ch from now on and closes it in qemu_fclose(). */
QEMUFile *qemu_file_new_output(MigChannel *ch);
QEMUFile *qemu_file_new_input(MigChannel *ch);
/* Flush (output), close the channel and free.  Returns the file's error. */
int qemu_fclose(QEMUFile *f);
MigChannel *qemu_file_channel(QEMUFile *f);

void qemu_put_byte(QEMUFile *f, uint8_t v);
void qemu_put_be16(QEMUFile *f, uint16_t v);
void qemu_put_be32(QEMUFile *f, uint32_t v);
void qemu_put_be64(QEMUFile *f, uint64_t v);
void qemu_put_buffer(QEMUFile *f, const void *buf, size_t len);
/* Guest RAM only: see above; it must stay mapped until the peer has it. */
void qemu_put_buffer_nocopy(QEMUFile *f, const void *buf, size_t len);
/*
 * A large buffer that is not copied into the file's: it is written at the
 * next qemu_fflush(), which the caller runs before it changes or frees
 * @buf (a device's data that its transport hands out for one call).
 */
void qemu_put_buffer_borrowed(QEMUFile *f, const void *buf, size_t len);
/* u8 length + bytes; @str must be shorter than 256 bytes. */
void qemu_put_counted_string(QEMUFile *f, const char *str);
/* Push everything out.  Returns 0 or the file's error (negative). */
int qemu_fflush(QEMUFile *f);

uint8_t qemu_get_byte(QEMUFile *f);
uint16_t qemu_get_be16(QEMUFile *f);
uint32_t qemu_get_be32(QEMUFile *f);
uint64_t qemu_get_be64(QEMUFile *f);
/* Exactly @len bytes, or an error (truncation is an error). */
bool qemu_get_buffer(QEMUFile *f, void *buf, size_t len);
/*
 * Exactly @len bytes into guest RAM at @host, which maps @fd at
 * @fd_offset (a shared file: memfd, or a file backend with share=on), or
 * fd -1.  With a file, data goes from the channel through a pipe into
 * the file's page cache with splice(): no page fault, no zeroing of
 * fresh pages, no copy through user space.  Falls back to reading into
 * @host where the channel cannot splice.
 */
bool qemu_get_buffer_to_ram(QEMUFile *f, void *host, int fd,
                            uint64_t fd_offset, size_t len);
/*
 * Output: flush, then, if guest RAM went by reference, wait until the
 * peer closed the stream, so that it has read every page (see
 * mig_channel_wait_peer_close()).  false with errp set on error/cancel.
 */
bool qemu_file_wait_peer_done(QEMUFile *f, Error **errp);
/*
 * Guest RAM went by reference on other connections of this migration
 * (multifd), which the peer reads before it closes this stream: make
 * qemu_file_wait_peer_done() wait on a socket.
 */
void qemu_file_note_ref_elsewhere(QEMUFile *f);
/* Whether the last qemu_get_buffer_to_ram() could splice (for tuning). */
bool qemu_file_can_splice(QEMUFile *f);
/* u8 length + bytes into @buf (256 bytes), NUL-terminated; anything but
 * printable ASCII is an error. */
bool qemu_get_counted_string(QEMUFile *f, char buf[256]);
/* Discard @len bytes. */
bool qemu_skip(QEMUFile *f, size_t len);
/* Whether the peer closed the stream cleanly right here (no byte left). */
bool qemu_file_at_eof(QEMUFile *f);

/* 0, or a negative errno-style value once something failed. */
int qemu_file_get_error(QEMUFile *f);
/* The first error's message, or NULL. */
const char *qemu_file_error_message(QEMUFile *f);
/* Copy the first error into errp (false when there is one). */
bool qemu_file_check(QEMUFile *f, Error **errp);
/* Record a failure (the first one wins); takes ownership of @err. */
void qemu_file_set_error(QEMUFile *f, int ret, Error *err);

/*
 * Regular files only (mapped-ram): the file offset of the next byte put
 * or taken, and moving the stream to file offset @pos (output flushes
 * first, input drops what it had buffered).  false with errp set on
 * anything but a regular file, or when the file refuses.
 */
bool qemu_file_tell(QEMUFile *f, uint64_t *pos, Error **errp);
bool qemu_file_seek(QEMUFile *f, uint64_t pos, Error **errp);

/* Bytes put (output) or taken (input) so far. */
uint64_t qemu_file_transferred(QEMUFile *f);
/*
 * Output: count @bytes the migration wrote into the same file outside
 * the stream (mapped-ram pages at their offsets) as transferred.
 */
void qemu_file_account(QEMUFile *f, uint64_t bytes);

#endif
