/*
 * The agent's hands on HAProxy: validated, atomic config replacement and
 * reloads through the master CLI of a master-worker HAProxy, with rollback.
 */
#include "agent/haproxy.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "metrics.h"
#include "xalloc.h"
#include "banned.h"

extern char **environ;

/* Bytes of `haproxy -c` output kept for the error message. */
#define CHECK_OUTPUT_MAX 2048

static const char *const outcome_names[] = {
	[HAPROXY_UNCHANGED] = "unchanged",
	[HAPROXY_APPLIED] = "applied",
	[HAPROXY_REJECTED] = "rejected",
	[HAPROXY_ROLLED_BACK] = "rolled_back",
	[HAPROXY_BROKEN] = "broken",
	[HAPROXY_DEFERRED] = "deferred",
	[HAPROXY_CHECK_TIMEOUT] = "check_timeout",
	[HAPROXY_LOCAL_ERROR] = "local_error",
};

const char *haproxy_outcome_name(enum haproxy_outcome o)
{
	if ((size_t)o >= ARRAY_SIZE(outcome_names))
		BUG("bad outcome %d", (int)o);
	return outcome_names[o];
}

static long long haproxy_now_ms(void)
{
	return (long long)clock_now_ms();
}

static int haproxy_connect(const char *path, long long deadline,
			   struct buf *err)
{
	struct sockaddr_un sa;
	int fd = -1;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		buf_setf(err, "socket path '%s' is too long", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			buf_setf(err, "socket: %s", strerror(errno));
			return -1;
		}
		if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			return fd;
		close(fd);
		/* The master re-executes itself on reload: the socket comes
		 * back. */
		if ((errno != ECONNREFUSED && errno != ENOENT &&
		     errno != EAGAIN) ||
		    haproxy_now_ms() >= deadline) {
			buf_setf(err, "cannot connect to '%s': %s", path,
				 strerror(errno));
			return -1;
		}
		clock_sleep_ms(20);
	}
}

enum status haproxy_master_command(const char *socket, const char *cmd,
				   unsigned timeout_ms, struct buf *out,
				   struct buf *err)
{
	long long deadline = haproxy_now_ms() + timeout_ms;
	uint64_t start = clock_now_us();
	struct buf line = BUF_INIT;
	enum status st = ST_UNAVAILABLE;
	size_t off = 0;
	int fd;

	fd = haproxy_connect(socket, deadline, err);
	if (fd < 0)
		goto out;
	buf_addf(&line, "%s\n", cmd);
	while (off < line.len) {
		ssize_t n =
			send(fd, line.buf + off, line.len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			buf_setf(err, "cannot send to '%s': %s", socket,
				 strerror(errno));
			goto out;
		}
		off += (size_t)n;
	}
	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		long long left = deadline - haproxy_now_ms();
		char chunk[4096];
		ssize_t n;
		int r;

		if (left <= 0) {
			buf_setf(err,
				 "no complete answer from '%s' to '%s' in time",
				 socket, cmd);
			goto out;
		}
		r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		n = recv(fd, chunk, sizeof(chunk), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* The master closes hard when it re-executes on reload.
			 */
			if (errno == ECONNRESET)
				break;
			buf_setf(err, "cannot read from '%s': %s", socket,
				 strerror(errno));
			goto out;
		}
		if (!n)
			break;
		if (buf_add(out, chunk, (size_t)n)) {
			buf_setf(err, "answer from '%s' is too large", socket);
			goto out;
		}
	}
	st = ST_OK;
out:
	if (fd >= 0)
		close(fd);
	buf_release(&line);
	metrics_observe_us(&metrics_agent_runtime_duration, NULL,
			   clock_now_us() - start);
	return st;
}

void haproxy_procs_release(struct haproxy_procs *p)
{
	free(p->workers);
	memset(p, 0, sizeof(*p));
}

int haproxy_procs_parse(const char *text, struct haproxy_procs *out)
{
	enum { SEC_NONE, SEC_WORKERS, SEC_OLD, SEC_OTHER } sec = SEC_NONE;
	const char *p = text;
	size_t alloc = 0;
	int seen_master = 0;

	memset(out, 0, sizeof(*out));
	if (strncmp(text, "#<PID>", 6))
		return -1;
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char line[512], type[32];
		long pid;
		unsigned reloads, failed;

		if (len >= sizeof(line))
			len = sizeof(line) - 1;
		memcpy(line, p, len);
		line[len] = '\0';
		p = eol ? eol + 1 : p + strlen(p);

		if (!strncmp(line, "# workers", 9))
			sec = SEC_WORKERS;
		else if (!strncmp(line, "# old workers", 13))
			sec = SEC_OLD;
		else if (line[0] == '#')
			sec = line[1] == '<' ? SEC_NONE : SEC_OTHER;
		if (line[0] == '#' || !line[0])
			continue;
		if (sscanf(line, "%ld %31s %u", &pid, type, &reloads) != 3)
			continue;
		if (!strcmp(type, "master")) {
			const char *f = strstr(line, "[failed:");

			out->master = (pid_t)pid;
			out->reloads = reloads;
			if (f && sscanf(f, "[failed: %u]", &failed) == 1)
				out->failed = failed;
			seen_master = 1;
		} else if (!strcmp(type, "worker") && sec == SEC_WORKERS) {
			ALLOC_GROW(out->workers, out->nr_workers + 1, alloc);
			out->workers[out->nr_workers++] = (pid_t)pid;
		}
	}
	if (!seen_master) {
		haproxy_procs_release(out);
		return -1;
	}
	return 0;
}

enum status haproxy_show_proc(const char *socket, unsigned timeout_ms,
			      struct haproxy_procs *out, struct buf *err)
{
	long long deadline = haproxy_now_ms() + timeout_ms;
	struct buf text = BUF_INIT;
	enum status st;

	memset(out, 0, sizeof(*out));
	for (;;) {
		long long left = deadline - haproxy_now_ms();

		buf_reset(&text);
		buf_reset(err);
		/* "quit" makes the master close the connection after the
		 * answer. */
		st = haproxy_master_command(socket, "show proc;quit",
					    left > 0 ? (unsigned)left : 1,
					    &text, err);
		/* A master that re-executes can also reset the connection
		 * before it reads the command; "show proc" is safe to repeat.
		 */
		if (st != ST_OK && haproxy_now_ms() < deadline) {
			clock_sleep_ms(20);
			continue;
		}
		if (st != ST_OK)
			goto out;
		if (!haproxy_procs_parse(text.buf, out))
			goto out;
		/* While it re-executes, the master accepts and closes at once.
		 */
		if (text.len || haproxy_now_ms() >= deadline) {
			buf_setf(err, "unexpected answer to 'show proc': ");
			buf_addquoted(err, text.buf,
				      text.len > 200 ? 200 : text.len);
			st = ST_UNAVAILABLE;
			goto out;
		}
		clock_sleep_ms(20);
	}
out:
	buf_release(&text);
	return st;
}

static int haproxy_has_pid(const struct haproxy_procs *p, pid_t pid)
{
	size_t i;

	for (i = 0; i < p->nr_workers; i++)
		if (p->workers[i] == pid)
			return 1;
	return 0;
}

enum status haproxy_reload(const char *socket, unsigned timeout_ms,
			   struct buf *err)
{
	long long deadline = haproxy_now_ms() + timeout_ms;
	struct haproxy_procs before, now;
	struct buf ignored = BUF_INIT;
	enum status st;
	size_t i;

	memset(&now, 0, sizeof(now));
	st = haproxy_show_proc(socket, timeout_ms, &before, err);
	if (st != ST_OK)
		goto out;
	st = haproxy_master_command(socket, "reload", timeout_ms, &ignored,
				    err);
	if (st != ST_OK)
		goto out;
	for (;;) {
		long long left = deadline - haproxy_now_ms();

		haproxy_procs_release(&now);
		if (left <= 0) {
			buf_setf(err, "no new worker after reload within %u ms",
				 timeout_ms);
			st = ST_UNAVAILABLE;
			goto out;
		}
		st = haproxy_show_proc(socket, (unsigned)left, &now, err);
		if (st != ST_OK)
			goto out;
		if (now.master != before.master) {
			buf_setf(err, "the master changed from pid %ld to %ld",
				 (long)before.master, (long)now.master);
			st = ST_UNAVAILABLE;
			goto out;
		}
		if (now.failed > before.failed) {
			buf_setf(err,
				 "the master could not load the new config "
				 "(failed reloads %u -> %u)",
				 before.failed, now.failed);
			st = ST_INVALID;
			goto out;
		}
		if (now.reloads > before.reloads)
			for (i = 0; i < now.nr_workers; i++)
				if (!haproxy_has_pid(&before, now.workers[i]))
					goto out; /* a new worker: done */
		clock_sleep_ms(20);
	}
out:
	haproxy_procs_release(&before);
	haproxy_procs_release(&now);
	buf_release(&ignored);
	return st;
}

/* HAProxy's [ALERT] lines without their prefix, joined by "; ". */
static void haproxy_check_message(const struct buf *output, struct buf *err)
{
	const char *p = output->buf;

	buf_setf(err, "haproxy -c refused the config: ");
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		const char *colon;

		if (!strncmp(p, "[ALERT]", 7)) {
			/* "[ALERT]    (pid) : config : parsing ..." -> "parsing
			 * ..." */
			colon = memmem(p, len, " : ", 3);
			if (colon &&
			    memmem(colon + 3, len - (size_t)(colon + 3 - p),
				   " : ", 3))
				colon = memmem(colon + 3,
					       len - (size_t)(colon + 3 - p),
					       " : ", 3);
			if (colon) {
				len -= (size_t)(colon + 3 - p);
				p = colon + 3;
			}
			buf_add(err, p, len);
			buf_addstr(err, "; ");
		}
		p = eol ? eol + 1 : p + len;
	}
	if (!strncmp(err->buf + err->len - 2, "; ", 2))
		buf_setlen(err, err->len - 2);
	else
		buf_add(err, output->buf, output->len);
}

unsigned haproxy_check_timeout_ms(const struct haproxy_options *opts,
				  size_t len)
{
	unsigned long long ms = opts->check_timeout_ms;

	/* Rounded up: a few bytes over a MB still get their share. */
	ms += ((unsigned long long)len * opts->check_ms_per_mb + (1u << 20) -
	       1) >>
	      20;
	return ms > HAPROXY_CHECK_TIMEOUT_MAX_MS ? HAPROXY_CHECK_TIMEOUT_MAX_MS
						 : (unsigned)ms;
}

enum status haproxy_check(const struct haproxy_options *opts, const char *path,
			  struct buf *err)
{
	struct stat sb;
	unsigned timeout_ms = haproxy_check_timeout_ms(
		opts, stat(path, &sb) ? 0 : (size_t)sb.st_size);
	long long deadline = haproxy_now_ms() + timeout_ms;
	char *argv[] = {(char *)opts->bin, (char *)"-c", (char *)"-f",
			(char *)path, NULL};
	posix_spawn_file_actions_t fa;
	struct buf output = BUF_INIT;
	enum status st = ST_INTERNAL;
	int pipefd[2] = {-1, -1}, status = 0, killed = 0, r;
	pid_t pid = -1;

	if (pipe2(pipefd, O_CLOEXEC)) {
		buf_setf(err, "pipe: %s", strerror(errno));
		return ST_INTERNAL;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	r = posix_spawnp(&pid, opts->bin, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (r) {
		buf_setf(err, "cannot run '%s': %s", opts->bin, strerror(r));
		pid = -1;
		goto out;
	}
	for (;;) {
		struct pollfd pfd = {pipefd[0], POLLIN, 0};
		long long left = deadline - haproxy_now_ms();
		char chunk[1024];
		ssize_t n;

		if (left <= 0) {
			kill(pid, SIGKILL);
			killed = 1;
			break;
		}
		r = poll(&pfd, 1, (int)left);
		if (r <= 0)
			continue;
		n = read(pipefd[0], chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (output.len < CHECK_OUTPUT_MAX)
			(void)buf_add(&output, chunk,
				      (size_t)n < CHECK_OUTPUT_MAX - output.len
					      ? (size_t)n
					      : CHECK_OUTPUT_MAX - output.len);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (killed) {
		buf_setf(err, "'%s -c' took longer than %u ms", opts->bin,
			 timeout_ms);
		st = ST_UNAVAILABLE;
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		st = ST_OK;
	} else {
		haproxy_check_message(&output, err);
		st = ST_INVALID;
	}
out:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	buf_release(&output);
	return st;
}

/* Write `len` bytes to `path` (created or truncated); fsync when asked. */
static int haproxy_write_file(const char *path, const char *data, size_t len,
			      int sync, struct buf *err)
{
	size_t off = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0) {
		buf_setf(err, "cannot create '%s': %s", path, strerror(errno));
		return -1;
	}
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			buf_setf(err, "cannot write '%s': %s", path,
				 strerror(errno));
			close(fd);
			unlink(path);
			return -1;
		}
		off += (size_t)n;
	}
	if (sync && fsync(fd)) {
		buf_setf(err, "cannot fsync '%s': %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	if (close(fd)) {
		buf_setf(err, "cannot close '%s': %s", path, strerror(errno));
		unlink(path);
		return -1;
	}
	return 0;
}

/* The folder part of `path` ("." when there is none). */
static void haproxy_dirname(const char *path, struct buf *out)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		buf_addstr(out, ".");
	else if (slash == path)
		buf_addstr(out, "/");
	else
		buf_add(out, path, (size_t)(slash - path));
}

static void haproxy_sync_dir(const char *path)
{
	struct buf dir = BUF_INIT;
	int fd;

	haproxy_dirname(path, &dir);
	fd = open(dir.buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		/* Best effort: the rename is already visible to HAProxy. */
		(void)fsync(fd);
		close(fd);
	}
	buf_release(&dir);
}

/* Write `data` durably to a temp file next to `live` and rename it over. */
static int haproxy_replace(const char *live, const char *tmp, const char *data,
			   size_t len, struct buf *err)
{
	if (haproxy_write_file(tmp, data, len, 1, err))
		return -1;
	if (rename(tmp, live)) {
		buf_setf(err, "cannot rename '%s' to '%s': %s", tmp, live,
			 strerror(errno));
		unlink(tmp);
		return -1;
	}
	haproxy_sync_dir(live);
	return 0;
}

/* config.N-1 -> config.N, ..., config.1 -> config.2, then `data` as config.1.
 */
static void haproxy_keep_history(const struct haproxy_options *opts,
				 const char *data, size_t len)
{
	struct buf from = BUF_INIT, to = BUF_INIT, err = BUF_INIT;
	unsigned i;

	if (!opts->keep)
		return;
	for (i = opts->keep; i > 1; i--) {
		buf_reset(&from);
		buf_reset(&to);
		buf_addf(&from, "%s.%u", opts->config, i - 1);
		buf_addf(&to, "%s.%u", opts->config, i);
		(void)rename(from.buf, to.buf);
	}
	buf_reset(&to);
	buf_addf(&to, "%s.1", opts->config);
	/* History is for people to read; losing it must not stop a reload. */
	(void)haproxy_write_file(to.buf, data, len, 0, &err);
	buf_release(&from);
	buf_release(&to);
	buf_release(&err);
}

/* A temp name next to `path`, so that rename() is atomic: DIR/.BASE.KIND.PID */
static void haproxy_temp_name(const char *path, const char *kind,
			      struct buf *out)
{
	const char *slash = strrchr(path, '/');

	buf_reset(out);
	haproxy_dirname(path, out);
	buf_addf(out, "/.%s.%s.%ld", slash ? slash + 1 : path, kind,
		 (long)getpid());
}

/*
 * `cfg` with each file's path replaced by its temp name: what `haproxy -c`
 * reads to check the whole set before any of it is live.
 */
static void haproxy_check_text(const char *cfg, size_t len,
			       const struct haproxy_file *files,
			       const struct buf *tmps, size_t nr,
			       struct buf *out)
{
	size_t i = 0, k;

	while (i < len) {
		const char *slash = memchr(cfg + i, '/', len - i);
		size_t at = slash ? (size_t)(slash - cfg) : len;

		buf_add(out, cfg + i, at - i);
		i = at;
		if (i == len)
			break;
		for (k = 0; k < nr; k++) {
			size_t pl = strlen(files[k].path);

			if (pl <= len - i &&
			    !memcmp(cfg + i, files[k].path, pl))
				break;
		}
		if (k < nr) {
			buf_add(out, tmps[k].buf, tmps[k].len);
			i += strlen(files[k].path);
		} else {
			buf_addch(out, '/');
			i++;
		}
	}
}

/* Put back the first `nr` files as they were before (gone if they were). */
static int haproxy_restore_files(const struct haproxy_file *files,
				 const struct buf *old, const int *have_old,
				 const struct buf *tmps, size_t nr,
				 struct buf *err)
{
	size_t i;
	int ret = 0;

	for (i = 0; i < nr; i++) {
		if (!have_old[i]) {
			if (unlink(files[i].path) && errno != ENOENT) {
				buf_setf(err, "cannot remove '%s': %s",
					 files[i].path, strerror(errno));
				ret = -1;
			}
		} else if (haproxy_replace(files[i].path, tmps[i].buf,
					   old[i].buf, old[i].len, err)) {
			ret = -1;
		}
	}
	return ret;
}

enum status haproxy_apply(const struct haproxy_options *opts, const char *cfg,
			  size_t len, enum haproxy_outcome *outcome,
			  struct buf *err)
{
	return haproxy_apply_set(opts, cfg, len, NULL, 0, outcome, err);
}

enum status haproxy_apply_set(const struct haproxy_options *opts,
			      const char *cfg, size_t len,
			      const struct haproxy_file *files, size_t nr_files,
			      enum haproxy_outcome *outcome, struct buf *err)
{
	struct buf live = BUF_INIT, tmp = BUF_INIT, keep = BUF_INIT;
	struct buf err2 = BUF_INIT, check = BUF_INIT, check_path = BUF_INIT;
	struct buf old[HAPROXY_MAX_FILES], tmps[HAPROXY_MAX_FILES];
	int have_old[HAPROXY_MAX_FILES] = {0}, written[HAPROXY_MAX_FILES] = {0};
	struct haproxy_procs procs;
	enum status st;
	int have_live, same;
	size_t i, nr_renamed = 0;

	if (nr_files > HAPROXY_MAX_FILES)
		BUG("%zu files", nr_files);
	for (i = 0; i < HAPROXY_MAX_FILES; i++) {
		buf_init(&old[i], HAPROXY_CONFIG_MAX);
		buf_init(&tmps[i], 0);
	}
	*outcome = HAPROXY_LOCAL_ERROR;
	buf_init(&live, HAPROXY_CONFIG_MAX);
	st = buf_read_file(&live, opts->config, err);
	if (st != ST_OK && st != ST_NOT_FOUND) {
		buf_addstr(err, "; HAProxy not touched");
		st = ST_UNAVAILABLE;
		goto out;
	}
	have_live = st == ST_OK;
	same = have_live && live.len == len && !memcmp(live.buf, cfg, len);
	for (i = 0; i < nr_files; i++) {
		st = buf_read_file(&old[i], files[i].path, err);
		if (st != ST_OK && st != ST_NOT_FOUND) {
			buf_addstr(err, "; HAProxy not touched");
			st = ST_UNAVAILABLE;
			goto out;
		}
		have_old[i] = st == ST_OK;
		same = same && have_old[i] && old[i].len == files[i].len &&
		       !memcmp(old[i].buf, files[i].data, files[i].len);
	}
	if (same) {
		*outcome = HAPROXY_UNCHANGED;
		st = ST_OK;
		goto out;
	}

	haproxy_temp_name(opts->config, "tmp", &tmp);
	if (haproxy_write_file(tmp.buf, cfg, len, 1, err)) {
		buf_addstr(err, "; HAProxy not touched");
		st = ST_UNAVAILABLE;
		goto out;
	}
	for (i = 0; i < nr_files; i++) {
		/* The map folder (one level) on a host that has none yet; a
		 * folder that cannot be made fails the write below. */
		buf_reset(&check_path);
		haproxy_dirname(files[i].path, &check_path);
		(void)mkdir(check_path.buf, 0755);
		haproxy_temp_name(files[i].path, "tmp", &tmps[i]);
		if (haproxy_write_file(tmps[i].buf, files[i].data, files[i].len,
				       1, err)) {
			buf_addstr(err, "; HAProxy not touched");
			unlink(tmp.buf);
			st = ST_UNAVAILABLE;
			goto out;
		}
		written[i] = 1;
	}
	/* The set is checked as it will be: the config naming the new maps. */
	if (nr_files) {
		haproxy_temp_name(opts->config, "check", &check_path);
		buf_init(&check, HAPROXY_CONFIG_MAX + 4096);
		haproxy_check_text(cfg, len, files, tmps, nr_files, &check);
		if (buf_overflowed(&check) ||
		    haproxy_write_file(check_path.buf, check.buf, check.len, 0,
				       err)) {
			if (buf_overflowed(&check))
				buf_setf(err, "the config is too large");
			buf_addstr(err, "; HAProxy not touched");
			unlink(tmp.buf);
			st = ST_UNAVAILABLE;
			goto out;
		}
		st = haproxy_check(opts, check_path.buf, err);
		unlink(check_path.buf);
	} else {
		st = haproxy_check(opts, tmp.buf, err);
	}
	if (st == ST_INVALID) {
		buf_addf(&keep, "%s.rejected", opts->config);
		if (rename(tmp.buf, keep.buf))
			unlink(tmp.buf);
		*outcome = HAPROXY_REJECTED;
		goto out;
	}
	if (st != ST_OK) {
		unlink(tmp.buf);
		if (st == ST_UNAVAILABLE) {
			*outcome = HAPROXY_CHECK_TIMEOUT;
			st = ST_INVALID;
		} else {
			buf_addstr(err, "; HAProxy not touched");
			st = ST_UNAVAILABLE;
		}
		goto out;
	}
	/* Touch the live files only when the master is there to reload. */
	st = haproxy_show_proc(opts->master_socket, opts->timeout_ms, &procs,
			       err);
	haproxy_procs_release(&procs);
	if (st != ST_OK) {
		unlink(tmp.buf);
		*outcome = HAPROXY_DEFERRED;
		goto out;
	}
	/* The maps first: the live config reads them only when reloaded. */
	for (; nr_renamed < nr_files; nr_renamed++) {
		i = nr_renamed;
		if (rename(tmps[i].buf, files[i].path))
			break;
		written[i] = 0;
		haproxy_sync_dir(files[i].path);
	}
	if (nr_renamed < nr_files || rename(tmp.buf, opts->config)) {
		buf_setf(err, "cannot rename '%s' to '%s': %s",
			 nr_renamed < nr_files ? tmps[nr_renamed].buf : tmp.buf,
			 nr_renamed < nr_files ? files[nr_renamed].path
					       : opts->config,
			 strerror(errno));
		unlink(tmp.buf);
		if (haproxy_restore_files(files, old, have_old, tmps,
					  nr_renamed, &err2))
			buf_addf(err, "; putting the maps back failed: %s",
				 err2.buf);
		else
			buf_addstr(err, "; HAProxy not touched");
		st = ST_UNAVAILABLE;
		goto out;
	}
	haproxy_sync_dir(opts->config);

	*outcome = HAPROXY_BROKEN;
	st = haproxy_reload(opts->master_socket, opts->timeout_ms, err);
	if (st == ST_OK) {
		haproxy_keep_history(opts, cfg, len);
		*outcome = HAPROXY_APPLIED;
		goto out;
	}

	buf_addf(&keep, "%s.failed", opts->config);
	(void)haproxy_write_file(keep.buf, cfg, len, 0, &err2);
	/* All of the set goes back together. */
	if (haproxy_restore_files(files, old, have_old, tmps, nr_files,
				  &err2)) {
		buf_addf(err, "; rollback of the maps failed: %s", err2.buf);
		goto out;
	}
	if (!have_live) {
		buf_addstr(err, "; no previous config to roll back to");
		goto out;
	}
	if (haproxy_replace(opts->config, tmp.buf, live.buf, live.len, &err2)) {
		buf_addf(err, "; rollback failed: %s", err2.buf);
		goto out;
	}
	buf_reset(&err2);
	if (haproxy_reload(opts->master_socket, opts->timeout_ms, &err2) !=
	    ST_OK) {
		buf_addf(err, "; reload of the previous config failed too: %s",
			 err2.buf);
		goto out;
	}
	*outcome = HAPROXY_ROLLED_BACK;
out:
	for (i = 0; i < HAPROXY_MAX_FILES; i++) {
		if (written[i])
			unlink(tmps[i].buf);
		buf_release(&old[i]);
		buf_release(&tmps[i]);
	}
	buf_release(&live);
	buf_release(&tmp);
	buf_release(&keep);
	buf_release(&err2);
	buf_release(&check);
	buf_release(&check_path);
	return st;
}

enum status haproxy_install(const struct haproxy_options *opts, const char *cfg,
			    size_t len, const struct haproxy_file *files,
			    size_t nr_files, struct buf *err)
{
	struct buf live = BUF_INIT, tmp = BUF_INIT, keep = BUF_INIT;
	struct buf check = BUF_INIT, check_path = BUF_INIT;
	struct buf tmps[HAPROXY_MAX_FILES];
	int written[HAPROXY_MAX_FILES] = {0}, have_tmp = 0, same;
	enum status st = ST_UNAVAILABLE;
	size_t i;

	if (nr_files > HAPROXY_MAX_FILES)
		BUG("%zu files", nr_files);
	for (i = 0; i < HAPROXY_MAX_FILES; i++)
		buf_init(&tmps[i], 0);
	buf_init(&live, HAPROXY_CONFIG_MAX);
	/* A map-only change leaves the config's bytes (and history) as they
	 * are; a live file that cannot be read is simply replaced. */
	same = buf_read_file(&live, opts->config, err) == ST_OK &&
	       live.len == len && !memcmp(live.buf, cfg, len);
	buf_reset(err);
	haproxy_temp_name(opts->config, "install", &tmp);
	if (haproxy_write_file(tmp.buf, cfg, len, 1, err))
		goto out;
	have_tmp = 1;
	for (i = 0; i < nr_files; i++) {
		haproxy_temp_name(files[i].path, "install", &tmps[i]);
		if (haproxy_write_file(tmps[i].buf, files[i].data, files[i].len,
				       1, err))
			goto out;
		written[i] = 1;
	}
	if (nr_files) {
		haproxy_temp_name(opts->config, "check", &check_path);
		buf_init(&check, HAPROXY_CONFIG_MAX + 4096);
		haproxy_check_text(cfg, len, files, tmps, nr_files, &check);
		if (buf_overflowed(&check)) {
			buf_setf(err, "the config is too large");
			goto out;
		}
		if (haproxy_write_file(check_path.buf, check.buf, check.len, 0,
				       err))
			goto out;
		st = haproxy_check(opts, check_path.buf, err);
		unlink(check_path.buf);
	} else {
		st = haproxy_check(opts, tmp.buf, err);
	}
	if (st != ST_OK) {
		buf_addf(&keep, "%s.rejected", opts->config);
		if (st == ST_INVALID && !rename(tmp.buf, keep.buf))
			have_tmp = 0;
		st = st == ST_INTERNAL ? ST_UNAVAILABLE : ST_INVALID;
		goto out;
	}
	st = ST_UNAVAILABLE;
	/* The maps first, as haproxy_apply_set() does. */
	for (i = 0; i < nr_files; i++) {
		if (rename(tmps[i].buf, files[i].path)) {
			buf_setf(err, "cannot rename '%s' to '%s': %s",
				 tmps[i].buf, files[i].path, strerror(errno));
			goto out;
		}
		written[i] = 0;
		haproxy_sync_dir(files[i].path);
	}
	if (!same) {
		if (rename(tmp.buf, opts->config)) {
			buf_setf(err, "cannot rename '%s' to '%s': %s", tmp.buf,
				 opts->config, strerror(errno));
			goto out;
		}
		have_tmp = 0;
		haproxy_sync_dir(opts->config);
		haproxy_keep_history(opts, cfg, len);
	}
	st = ST_OK;
out:
	if (have_tmp)
		unlink(tmp.buf);
	for (i = 0; i < HAPROXY_MAX_FILES; i++) {
		if (written[i])
			unlink(tmps[i].buf);
		buf_release(&tmps[i]);
	}
	buf_release(&live);
	buf_release(&tmp);
	buf_release(&keep);
	buf_release(&check);
	buf_release(&check_path);
	return st;
}
