/*
 * The file source: a JSON array of services in the payload's candidate
 * shape, read again whenever its bytes change.
 */
#ifndef AGENT_FILE_H
#define AGENT_FILE_H

#include "buf.h"
#include "service.h"
#include "status.h"

struct file_source;

struct file_source *file_source_new(const char *path);
void file_source_free(struct file_source *fs);

/*
 * 1 when the file's bytes differ from those of the last load (or the file
 * appeared or vanished). A cheap stat() decides whether to read at all.
 */
int file_source_changed(struct file_source *fs);

/*
 * Read and parse the file into `out` (sorted by name). An invalid entry or
 * container is skipped and logged once; the others still count. A missing
 * file, unreadable bytes or a document that is not an array give
 * ST_UNAVAILABLE or ST_INVALID, and the caller keeps what it had.
 */
enum status file_source_load(struct file_source *fs, struct service_list *out,
			     struct buf *err) WARN_UNUSED;

/* Parse services from `len` bytes of JSON; used by the loader and tests. */
enum status file_parse_services(const char *json, size_t len,
				struct service_list *out, struct buf *skipped,
				struct buf *err) WARN_UNUSED;

#endif
