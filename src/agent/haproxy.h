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

/* Largest config the agent reads or writes (the live file included). */
#define HAPROXY_CONFIG_MAX ((size_t)64 << 20)
/* `haproxy -c` never gets more than this, whatever the size. */
#define HAPROXY_CHECK_TIMEOUT_MAX_MS (6u * 3600 * 1000)

struct haproxy_options {
	const char *config;	   /* the live file HAProxy was started with */
	const char *master_socket; /* the `-S` socket of the master process */
	const char *bin;	   /* haproxy binary for `-c` */
	unsigned keep;		   /* configs kept as config.1 .. config.N */
	unsigned timeout_ms;	   /* for one master CLI exchange or reload */
	/* `haproxy -c` may take check_timeout_ms plus check_ms_per_mb for
	 * every MB of config: its time grows with the size (8 s for 30k
	 * services, 211 s for 100k on one core). */
	unsigned check_timeout_ms;
	unsigned check_ms_per_mb;
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
	/* `haproxy -c` did not finish within its limit: the live file is
	 * untouched, and the same config would time out again */
	HAPROXY_CHECK_TIMEOUT,
	/* a local step failed (reading the live file, writing or renaming the
	 * temp file, running `haproxy -c`): HAProxy was not touched */
	HAPROXY_LOCAL_ERROR,
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

/* The limit for `haproxy -c` on `len` bytes of config (see the options). */
unsigned haproxy_check_timeout_ms(const struct haproxy_options *opts,
				  size_t len);

/*
 * Run `haproxy -c -f path`, killed after haproxy_check_timeout_ms() for the
 * file's size. ST_INVALID with HAProxy's complaint in `err` when it refuses
 * the file, ST_UNAVAILABLE when it ran out of time, ST_INTERNAL when it
 * could not be run.
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
 * The status is ST_OK for the first two outcomes; ST_INVALID for
 * HAPROXY_REJECTED and HAPROXY_CHECK_TIMEOUT; ST_UNAVAILABLE for
 * HAPROXY_DEFERRED and HAPROXY_LOCAL_ERROR; for a failed reload the
 * reload's status (ST_INVALID or ST_UNAVAILABLE).
 */
enum status haproxy_apply(const struct haproxy_options *opts, const char *cfg,
			  size_t len, enum haproxy_outcome *outcome,
			  struct buf *err) WARN_UNUSED;

/* A file the config names (a map), written with it. */
struct haproxy_file {
	const char *path; /* absolute, as the config names it */
	const char *data;
	size_t len;
};

#define HAPROXY_MAX_FILES 4

/*
 * Make `cfg` and its `files` the live files without a reload, for a set
 * HAProxy already runs (applied through the runtime API): temp files,
 * `haproxy -c` on the set, fsync, rename (the files first, then the
 * config when its bytes changed), history. ST_INVALID when `haproxy -c`
 * refuses it (the config kept as config.rejected) or runs out of time,
 * ST_UNAVAILABLE for a local failure; the live files are untouched then,
 * but for a rename that failed halfway (`err` says which).
 */
enum status haproxy_install(const struct haproxy_options *opts, const char *cfg,
			    size_t len, const struct haproxy_file *files,
			    size_t nr_files, struct buf *err) WARN_UNUSED;

/*
 * haproxy_apply() for a config and the files it names, as one set: nothing
 * is done when all of them hold these bytes; else each is written to a temp
 * file next to it, `haproxy -c` checks the config with the files' paths
 * pointed at the temp files, the files are renamed into place first (the
 * running HAProxy reads them only on a reload), then the config, and on a
 * failed reload all of them are put back as they were (a file that was not
 * there is removed) and reloaded. Outcomes and statuses as for
 * haproxy_apply().
 */
enum status haproxy_apply_set(const struct haproxy_options *opts,
			      const char *cfg, size_t len,
			      const struct haproxy_file *files, size_t nr_files,
			      enum haproxy_outcome *outcome,
			      struct buf *err) WARN_UNUSED;

#endif
