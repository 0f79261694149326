/*
 * Putting a config in front of a live HAProxy: temp file, `haproxy -c`,
 * rename, reload through the master CLI, roll back when the reload fails.
 */
#ifndef AGENT_HAPROXY_H
#define AGENT_HAPROXY_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "status.h"

struct haproxy_options {
	const char *config;	   /* the live file HAProxy was started with */
	const char *master_socket; /* the `-S` socket of the master process */
	const char *bin;	   /* haproxy binary for `-c` */
	unsigned keep;		   /* configs kept as config.1 .. config.N */
	unsigned timeout_ms;	   /* for one check and for one reload */
};

/* What `show proc` says about the processes of one master. */
struct haproxy_procs {
	pid_t master;
	unsigned reloads; /* reloads the master did */
	unsigned failed;  /* of which failed (2.6 prints "[failed: N]") */
	pid_t *workers;	  /* current workers, not the old ones */
	size_t nr_workers;
};

enum haproxy_outcome {
	HAPROXY_UNCHANGED, /* same bytes as the live file: nothing done */
	HAPROXY_APPLIED,   /* written and reloaded; a new worker is up */
	HAPROXY_REJECTED, /* `haproxy -c` refused it; the live file is untouched
			   */
	HAPROXY_ROLLED_BACK, /* the reload failed; the old config is back */
	HAPROXY_BROKEN,	     /* the reload failed and so did the rollback */
	HAPROXY_DEFERRED, /* the master did not answer: nothing was touched */
};

const char *haproxy_outcome_name(enum haproxy_outcome o);

/*
 * Send one command to the master CLI and append its answer to `out`.
 * Retries the connection for up to `timeout_ms` (the master re-executes
 * itself during a reload and refuses connections meanwhile).
 */
enum status haproxy_master_command(const char *socket, const char *cmd,
				   unsigned timeout_ms, struct buf *out,
				   struct buf *err) WARN_UNUSED;

/* Parse the text of `show proc`; -1 when it does not look like one. */
int haproxy_procs_parse(const char *text, struct haproxy_procs *out);
void haproxy_procs_release(struct haproxy_procs *p);
enum status haproxy_show_proc(const char *socket, unsigned timeout_ms,
			      struct haproxy_procs *out,
			      struct buf *err) WARN_UNUSED;

/*
 * Ask the master to reload and wait until `show proc` lists a worker that
 * was not there before. ST_INVALID when the master counts the reload as
 * failed, ST_UNAVAILABLE when it cannot be reached or no new worker shows
 * up in time.
 */
enum status haproxy_reload(const char *socket, unsigned timeout_ms,
			   struct buf *err) WARN_UNUSED;

/*
 * Run `haproxy -c -f path`. ST_INVALID with HAProxy's complaint in `err`
 * when it refuses the file.
 */
enum status haproxy_check(const struct haproxy_options *opts, const char *path,
			  struct buf *err) WARN_UNUSED;

/*
 * Make `cfg` the live config. Does nothing when the live file already holds
 * these bytes. Otherwise writes a temp file next to the live one, checks it,
 * fsyncs and renames it over the live file, reloads, and on a failed reload
 * puts the previous bytes back and reloads again. A refused config is kept
 * as config.rejected, a config whose reload failed as config.failed, for
 * inspection. `err` says what went wrong for every outcome but the first two.
 */
enum status haproxy_apply(const struct haproxy_options *opts, const char *cfg,
			  size_t len, enum haproxy_outcome *outcome,
			  struct buf *err) WARN_UNUSED;

/* Read a whole file; ST_NOT_FOUND when it does not exist. */
enum status haproxy_read_file(const char *path, struct buf *out,
			      struct buf *err) WARN_UNUSED;

#endif
