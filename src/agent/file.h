/*
 * The file source: a JSON array of services in the payload's candidate
 * shape, read again whenever its bytes change.
 */
#ifndef AGENT_FILE_H
#define AGENT_FILE_H

#include "agent/source.h"
#include "buf.h"
#include "service.h"
#include "status.h"

/*
 * A source over the file at `arg` (--source file:PATH); it uses none of the
 * options. The file need not exist yet: changed() says 1 once it does. A
 * missing file gives ST_NOT_FOUND, unreadable bytes ST_UNAVAILABLE, a document
 * that is not an array ST_INVALID, and the caller keeps what it had. changed()
 * is a stat() and, when that moved, a byte comparison: the same bytes rewritten
 * are no change.
 */
source_new_fn file_source_new;

/* Parse services from `len` bytes of JSON; used by the loader and tests. */
enum status file_parse_services(const char *json, size_t len,
				struct service_list *out, struct buf *skipped,
				struct buf *err) WARN_UNUSED;

#endif
