/*
 * The embedded store: one SQLite database in WAL mode. A call is one
 * transaction; writers take the lock up front (BEGIN IMMEDIATE) and wait for
 * each other through the busy timeout, so concurrent calls never fail.
 *
 * Two faults of the file underneath are caught here rather than trusted to
 * SQLite. The database file removed or replaced while open: SQLite would go
 * on writing into the unlinked inode and every write would be lost on
 * restart, so each transaction and each ping compares the file at the path
 * with the one opened (a stat): calls get ST_UNAVAILABLE and /healthz says
 * unavailable until the same file is back or the server restarts (see
 * sqlite_identity). And the -shm file made unwritable (chattr +i): SQLite
 * maps it, and the first store to a page written back since then raises
 * SIGBUS; see sqlite_on_sigbus.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../clock.h"
#include "../payload.h"
#include "../xalloc.h"
#include "../banned.h"

#define SQLITE_SCHEMA_VERSION 3
#define SQLITE_BUSY_MS	      10000
/* A ping or probe waits this long for a lock, then calls the store busy, not
 * broken: /healthz must answer fast while another process writes. */
#define SQLITE_PING_BUSY_MS 20
/* Frames in the WAL before a commit checkpoints it (SQLite's default). */
#define SQLITE_CHECKPOINT_FRAMES 1000
/* How long after doc_generation() a read call may go by its check: the
 * next step of the same call, not a handle back from the pool. */
#define SQLITE_RECHECK_US 1000
/* How long a read trusts the database file's identity as this handle last
 * saw it pass: a stat of the path, a path walk on every small unchanged
 * call (31 us of server CPU per call with it on this timer, 34 without, in
 * make bench's nginx rounds). A write looks every time, and once more
 * before it commits; the -shm check is made before every statement that
 * may store into it (sqlite_shm_ready). */
#define SQLITE_READ_ID_US 100000
/* SQLite's wal-index header: 48 bytes, the first 12 words of the -shm
 * file, written twice over (see sqlite_header_read). */
#define SQLITE_HDR_WORDS     12
#define SQLITE_HDR_VERSION   3007000
#define SQLITE_WALINDEX_PAGE 32768
/* Less free space than this on the database's file system counts as full. */
#define SQLITE_MIN_FREE ((unsigned long long)64 << 10)

static const char sqlite_schema[] =
	"CREATE TABLE IF NOT EXISTS tables ("
	"  name TEXT PRIMARY KEY,"
	"  version INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS services ("
	"  tbl TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  port INTEGER NOT NULL,"
	"  mode TEXT NOT NULL,"
	"  predicate TEXT NOT NULL,"
	"  cookie TEXT,"
	"  containers TEXT NOT NULL," /* "id ip\n" lines, sorted by id */
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL,"
	"  PRIMARY KEY (tbl, name)"
	") WITHOUT ROWID;";

/*
 * Schema changes after version 1, in order: sqlite_migrations[v - 1] takes a
 * database from version v to v + 1 (a new file gets sqlite_schema, version
 * 1, and then every one of them).
 */
static const char *const sqlite_migrations[] = {
	/* 1 -> 2: documents (settings, tokens) and their kinds' generations. */
	"CREATE TABLE IF NOT EXISTS docs ("
	"  kind TEXT NOT NULL,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  version INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL,"
	"  PRIMARY KEY (kind, key)"
	") WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS doc_generations ("
	"  kind TEXT PRIMARY KEY,"
	"  generation INTEGER NOT NULL"
	") WITHOUT ROWID;",
	/* 2 -> 3: the service's options, payload_options_json()'s canonical
	 * JSON; NULL when every option is at its default. */
	"ALTER TABLE services ADD COLUMN options TEXT;",
};
_Static_assert(ARRAY_SIZE(sqlite_migrations) == SQLITE_SCHEMA_VERSION - 1,
	       "one migration per schema version");

enum sqlite_stmt {
	SQL_BEGIN_READ,
	SQL_BEGIN_WRITE,
	SQL_COMMIT,
	SQL_ROLLBACK,
	SQL_VERSION,
	SQL_BUMP,
	SQL_LOAD,
	SQL_PUT,
	SQL_REMOVE,
	SQL_DATA_VERSION,
	SQL_GENERATION,
	SQL_NR,
};

static const char *const sqlite_sql[SQL_NR] = {
	[SQL_BEGIN_READ] = "BEGIN",
	[SQL_BEGIN_WRITE] = "BEGIN IMMEDIATE",
	[SQL_COMMIT] = "COMMIT",
	[SQL_ROLLBACK] = "ROLLBACK",
	[SQL_VERSION] = "SELECT version FROM tables WHERE name = ?1",
	[SQL_BUMP] = "INSERT INTO tables (name, version) VALUES (?1, 1) "
		     "ON CONFLICT (name) DO UPDATE SET version = version + 1",
	[SQL_LOAD] = "SELECT name, port, mode, predicate, cookie, containers, "
		     "created_at, updated_at, options FROM services "
		     "WHERE tbl = ?1 ORDER BY name",
	[SQL_PUT] = "INSERT OR REPLACE INTO services (tbl, name, port, mode, "
		    "predicate, "
		    "cookie, containers, created_at, updated_at, options) "
		    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	[SQL_REMOVE] = "DELETE FROM services WHERE tbl = ?1 AND name = ?2",
	[SQL_DATA_VERSION] = "PRAGMA data_version",
	[SQL_GENERATION] =
		"SELECT generation FROM doc_generations WHERE kind = ?1",
};

struct sqlite_store {
	struct store base;
	sqlite3 *db;
	sqlite3_stmt *stmt[SQL_NR];
	char *path;  /* the database file, for the free-space check */
	char *shm;   /* its -shm file */
	int have_id; /* dev/ino of the file opened (not for ":memory:") */
	dev_t dev;
	ino_t ino;
	char *table; /* of the open call, NULL outside one */
	int wrote;   /* the open call put or removed something (and bumped the
			version) */
	int nowait;  /* fail with ST_BUSY instead of waiting (sqlite_nowait) */
	/* A read call begun without a transaction yet (sqlite_begin): the
	 * version it gave, when it gave one, is checked when it loads. */
	int lazy, lazy_told;
	uint64_t lazy_version;
	/*
	 * What this handle last read, valid while PRAGMA data_version stays at
	 * `data_version` (see sqlite_fresh): one table's version and one
	 * kind's document generation; NULL names when unknown.
	 */
	int64_t data_version;
	/* A read's check left the -shm for its first statement
	 * (sqlite_shm_ready). */
	int shm_unchecked;
	/* The last call was doc_generation(), which checked the file and the
	 * data version at checked_us: a read call begun right after it (the
	 * registry's order) need not check again. */
	int just_checked;
	uint64_t checked_us;
	/* When this handle last found the file at its path, in a check that
	 * passed (0: a check failed since, or none ran). */
	uint64_t file_ok_us;
	char *memo_table, *memo_kind;
	uint64_t memo_version, memo_gen;
	/* SQLite's mapping of the wal-index (sqlite_header_map) and the
	 * header seen just before data_version was last read; hdr_tried: once
	 * asked for, so a connection without one stays with the pragma. */
	const volatile uint32_t *hdr_map;
	int hdr_tried, hdr_valid;
	uint32_t hdr[SQLITE_HDR_WORDS];
	unsigned long header_hits; /* checks it answered: for the tests */
	struct buf scratch;
	struct buf options; /* scratch for the options column */
};

static enum status sqlite_fail(struct sqlite_store *s, const char *what,
			       struct buf *err)
{
	/* Full disk, read-only file, I/O errors, locks: all make the store
	 * unavailable to the caller, who may retry later; a lock met without
	 * waiting is only busy. */
	buf_setf(err, "sqlite: %s: %s", what, sqlite3_errmsg(s->db));
	if (s->nowait && (sqlite3_errcode(s->db) & 0xff) == SQLITE_BUSY)
		return ST_BUSY;
	return ST_UNAVAILABLE;
}

/* Run a statement that returns no rows. */
static enum status sqlite_exec(struct sqlite_store *s, enum sqlite_stmt which,
			       struct buf *err)
{
	sqlite3_stmt *stmt = s->stmt[which];
	int rc = sqlite3_step(stmt);

	sqlite3_reset(stmt);
	if (rc != SQLITE_DONE)
		return sqlite_fail(s, sqlite_sql[which], err);
	return ST_OK;
}

/*
 * SIGBUS from a store into the mapped -shm file. SQLite's wal-index lives in
 * that shared mapping; once the file is immutable, the kernel refuses to make
 * a written-back page writable again and the store faults. Returning would
 * fault forever, and a longjmp out of SQLite would leave it half-way through
 * a lock or an index update. So the handler replaces the one page by a
 * private copy with the same bytes (the page stays readable; zeros when the
 * file was truncated under the mapping), lets the store
 * complete, and marks the process: its view of the wal-index may now differ
 * from other processes', so from then on it never touches a database again
 * (every call ST_UNAVAILABLE, /healthz unavailable, until a restart), never
 * checkpoints (sqlite_wal_hook) and closes without the checkpoint on close;
 * a transaction that saw the fault is reported failed even if its commit
 * reached the WAL. A SIGBUS anywhere else gets the previous disposition.
 * Before that safety net, each transaction and ping checks that the -shm
 * file is writable (access(2) honours the immutable flag, also for root),
 * which turns the usual case into a clean, recoverable ST_UNAVAILABLE.
 */
static volatile sig_atomic_t sqlite_shm_broken;
static struct sigaction sqlite_old_sigbus;
static size_t sqlite_page_size;
static pthread_mutex_t sqlite_sigbus_lock = PTHREAD_MUTEX_INITIALIZER;

/* Whether `addr` lies in a mapping of a file named "*-shm", from
 * /proc/self/maps, with async-signal-safe calls only. */
static int sqlite_addr_in_shm(uintptr_t addr)
{
	char chunk[1024], line[512];
	size_t len = 0;
	ssize_t n, i;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC), found = 0;

	if (fd < 0)
		return 0;
	while (!found && (n = read(fd, chunk, sizeof(chunk))) > 0) {
		for (i = 0; i < n && !found; i++) {
			uintptr_t lo = 0, hi = 0;
			const char *p = line;

			if (chunk[i] != '\n') {
				if (len < sizeof(line) - 1)
					line[len++] = chunk[i];
				continue;
			}
			line[len] = '\0';
			for (; *p && *p != '-'; p++)
				lo = lo * 16 +
				     (uintptr_t)(*p <= '9' ? *p - '0'
							   : (*p | 32) - 'a' +
								     10);
			for (p += *p == '-'; *p && *p != ' '; p++)
				hi = hi * 16 +
				     (uintptr_t)(*p <= '9' ? *p - '0'
							   : (*p | 32) - 'a' +
								     10);
			found = addr >= lo && addr < hi && len > 4 &&
				!memcmp(line + len - 4, "-shm", 4);
			len = 0;
		}
	}
	close(fd);
	return found;
}

static void sqlite_on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	uintptr_t addr = (uintptr_t)si->si_addr;
	char *page = (char *)(addr & ~(uintptr_t)(sqlite_page_size - 1));
	void *copy;

	(void)ctx;
	if (sqlite_addr_in_shm(addr)) {
		/* The copy is made aside and moved over the page in one step,
		 * so no other thread sees the page missing or zeroed, and no
		 * page-sized buffer goes on a thread's stack. */
		copy = mmap(NULL, sqlite_page_size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (copy != MAP_FAILED) {
			/* Read through the kernel: a page past the end of a
			 * truncated file cannot be read either, and a memcpy
			 * would fault again in here. It stays zeros. */
			struct iovec to = {copy, sqlite_page_size};
			struct iovec from = {page, sqlite_page_size};

			(void)process_vm_readv(getpid(), &to, 1, &from, 1, 0);
			if (mremap(copy, sqlite_page_size, sqlite_page_size,
				   MREMAP_MAYMOVE | MREMAP_FIXED,
				   page) != MAP_FAILED) {
				sqlite_shm_broken = 1;
				return;
			}
			munmap(copy, sqlite_page_size);
		}
	}
	/* Not ours: the store faults again under the previous disposition. */
	(void)sig;
	sigaction(SIGBUS, &sqlite_old_sigbus, NULL);
}

/* Install the handler unless it is in place: at every open, so that one
 * installed later by someone else (a test harness) does not leave SQLite's
 * stores unguarded; theirs is kept as the previous disposition. */
static void sqlite_sigbus_install(void)
{
	struct sigaction sa, cur;

	pthread_mutex_lock(&sqlite_sigbus_lock);
	if (!sqlite_page_size)
		sqlite_page_size = (size_t)sysconf(_SC_PAGESIZE);
	if (!sigaction(SIGBUS, NULL, &cur) &&
	    (!(cur.sa_flags & SA_SIGINFO) ||
	     cur.sa_sigaction != sqlite_on_sigbus)) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = sqlite_on_sigbus;
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGBUS, &sa, &sqlite_old_sigbus);
	}
	pthread_mutex_unlock(&sqlite_sigbus_lock);
}

/* Checkpoint as SQLite's default hook does, but never from a process whose
 * view of the wal-index may be wrong. */
static int sqlite_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)arg;
	if (!sqlite_shm_broken && frames >= SQLITE_CHECKPOINT_FRAMES)
		(void)sqlite3_wal_checkpoint(db, name);
	return SQLITE_OK;
}

/*
 * The identity (dev, ino) of every database file this process has opened,
 * by path: a later open of the path never creates the file, and refuses a
 * different one. So a removed database is not silently replaced by an empty
 * one (which would answer with configs missing every stored service), and
 * no cache filled from the old file is trusted against another file whose
 * table versions mean something else. Moving the file back makes it usable
 * again; a restored copy or a new file is a new inode and needs a restart.
 */
struct sqlite_known {
	char *path;
	dev_t dev;
	ino_t ino;
};

static pthread_mutex_t sqlite_known_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sqlite_known *sqlite_known;
static size_t sqlite_nr_known, sqlite_alloc_known;

/* The identity recorded for `path`, or NULL (sqlite_known_lock held). */
static struct sqlite_known *sqlite_known_find(const char *path)
{
	size_t i;

	for (i = 0; i < sqlite_nr_known; i++)
		if (!strcmp(sqlite_known[i].path, path))
			return &sqlite_known[i];
	return NULL;
}

/* Whether this process opened `path` before. */
static int sqlite_known_path(const char *path)
{
	int known;

	pthread_mutex_lock(&sqlite_known_lock);
	known = sqlite_known_find(path) != NULL;
	pthread_mutex_unlock(&sqlite_known_lock);
	return known;
}

/* Record the file now at the path on the first open; on later ones, -1 when
 * it is another file than the first. */
static int sqlite_identity(struct sqlite_store *s)
{
	struct sqlite_known *k;
	struct stat sb;
	int ret = 0;

	if (stat(s->path, &sb))
		return 0; /* ":memory:" or a URI: nothing to compare */
	pthread_mutex_lock(&sqlite_known_lock);
	k = sqlite_known_find(s->path);
	if (!k) {
		ALLOC_GROW(sqlite_known, sqlite_nr_known + 1,
			   sqlite_alloc_known);
		k = &sqlite_known[sqlite_nr_known++];
		k->path = xstrdup(s->path);
		k->dev = sb.st_dev;
		k->ino = sb.st_ino;
	}
	if (k->dev != sb.st_dev || k->ino != sb.st_ino)
		ret = -1;
	pthread_mutex_unlock(&sqlite_known_lock);
	s->have_id = 1;
	s->dev = k->dev;
	s->ino = k->ino;
	return ret;
}

/* Whether the -shm file exists and takes no writes (errno says why); any
 * other trouble with the path is left for SQLite to report. */
static int sqlite_shm_unwritable(const struct sqlite_store *s)
{
	return access(s->shm, W_OK) &&
	       (errno == EPERM || errno == EACCES || errno == EROFS);
}

/* ST_UNAVAILABLE when the -shm file takes no writes: SQLite's next store
 * into its mapping would fault (see sqlite_on_sigbus). */
static enum status sqlite_shm_check(struct sqlite_store *s, struct buf *err)
{
	s->shm_unchecked = 0;
	if (!sqlite_shm_unwritable(s))
		return ST_OK;
	buf_setf(err,
		 "sqlite: the database's shared-memory file is not writable "
		 "(%s)",
		 strerror(errno));
	s->file_ok_us = 0;
	return ST_UNAVAILABLE;
}

/* Before a read's first statement. Even a read stores into the -shm (its
 * read mark), but a read call that the wal-index header answers runs none,
 * so sqlite_check_file_read leaves the -shm check to here: one system call
 * fewer on every unchanged call. */
static enum status sqlite_shm_ready(struct sqlite_store *s, struct buf *err)
{
	return s->shm_unchecked ? sqlite_shm_check(s, err) : ST_OK;
}

/*
 * Whether the file under this handle can still be used: it is the one at
 * the path (not removed or replaced), its -shm file takes writes, and no
 * SIGBUS hit a -shm mapping. No path in the messages: /healthz shows them.
 */
static enum status sqlite_check_file_as(struct sqlite_store *s, int read,
					struct buf *err)
{
	const uint64_t now = clock_now_us();
	/* A read answers from what the file held until the last passed look
	 * at most SQLITE_READ_ID_US ago; it stores nothing. */
	const int trusted = read && s->file_ok_us &&
			    now - s->file_ok_us < SQLITE_READ_ID_US;
	struct stat sb;

	if (sqlite_shm_broken) {
		buf_setf(err, "sqlite: the database's shared-memory file "
			      "became unwritable while in use; restart the "
			      "server");
		goto fail;
	}
	if (!trusted && s->have_id &&
	    (stat(s->path, &sb) || sb.st_dev != s->dev ||
	     sb.st_ino != s->ino)) {
		buf_setf(err, "sqlite: the database file was removed or "
			      "replaced since the server opened it");
		goto fail;
	}
	if (read)
		s->shm_unchecked = 1;
	else if (sqlite_shm_check(s, err) != ST_OK)
		return ST_UNAVAILABLE;
	if (!trusted)
		s->file_ok_us = now;
	return ST_OK;
fail:
	s->file_ok_us = 0;
	return ST_UNAVAILABLE;
}

static enum status sqlite_check_file(struct sqlite_store *s, struct buf *err)
{
	return sqlite_check_file_as(s, 0, err);
}

/* The check before a read (see SQLITE_READ_ID_US). */
static enum status sqlite_check_file_read(struct sqlite_store *s,
					  struct buf *err)
{
	return sqlite_check_file_as(s, 1, err);
}

/* This handle wrote, or PRAGMA data_version moved: nothing read holds. */
static void sqlite_memo_forget(struct sqlite_store *s)
{
	free(s->memo_table);
	free(s->memo_kind);
	s->memo_table = s->memo_kind = NULL;
}

unsigned long store_sqlite_header_hits(const struct store *st)
{
	return st->be == &store_sqlite
		       ? ((const struct sqlite_store *)st)->header_hits
		       : 0;
}

/*
 * SQLite's own mapping of the wal-index's first page, once this connection
 * has the -shm file open (after its first read). Not a mapping of our own:
 * closing any descriptor of the file would drop every POSIX lock the
 * process holds on it, SQLite's among them, and another process would then
 * take the file for unused and truncate it under our mappings. SQLite's
 * stays mapped as long as the connection.
 */
static void sqlite_header_map(struct sqlite_store *s)
{
	sqlite3_file *f = NULL;
	void volatile *p = NULL;

	if (s->hdr_tried)
		return;
	s->hdr_tried = 1;
	if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_FILE_POINTER,
				 &f) != SQLITE_OK ||
	    !f || !f->pMethods || f->pMethods->iVersion < 2 ||
	    !f->pMethods->xShmMap)
		return;
	if (f->pMethods->xShmMap(f, 0, SQLITE_WALINDEX_PAGE, 0, &p) ==
		    SQLITE_OK &&
	    p)
		s->hdr_map = (const volatile uint32_t *)p;
}

/*
 * The wal-index header as every SQLite since 3.7.0 shares it with other
 * processes (https://www.sqlite.org/walformat.html): version 3007000 in
 * the first word, isInit at byte 12, the commit's change counter, frame
 * count and checksums in the rest. A commit writes the second copy, then
 * the first; a reader takes the first, then the second, and trusts them
 * only when they match. -1 when they do not, or the layout is not that one.
 */
static int sqlite_header_read(const struct sqlite_store *s, uint32_t *out)
{
	uint32_t second[SQLITE_HDR_WORDS];
	size_t i;

	for (i = 0; i < SQLITE_HDR_WORDS; i++)
		out[i] = s->hdr_map[i];
	atomic_thread_fence(memory_order_acquire);
	for (i = 0; i < SQLITE_HDR_WORDS; i++)
		second[i] = s->hdr_map[SQLITE_HDR_WORDS + i];
	if (memcmp(out, second, sizeof(second)) ||
	    out[0] != SQLITE_HDR_VERSION ||
	    ((const unsigned char *)out)[12] != 1)
		return -1;
	return 0;
}

/*
 * The cheap index check: PRAGMA data_version changes when another
 * connection, of this process or another, committed to the file (a handle's
 * own commits forget the memo themselves). While it stays put, what the
 * memo holds is still what the file holds: one small read, where a table
 * call used to take a read transaction and a document read another. A
 * value read after this check may be newer than it, never older, so the
 * memo only ever errs towards reading again.
 */
static enum status sqlite_fresh(struct sqlite_store *s, struct buf *err)
{
	sqlite3_stmt *stmt = s->stmt[SQL_DATA_VERSION];
	uint32_t hdr[SQLITE_HDR_WORDS];
	int have_hdr = s->hdr_map && !sqlite_header_read(s, hdr);
	enum status ret = ST_OK;

	/* Every commit, of any process, rewrites the header: while it is
	 * the one seen before the pragma last ran, the pragma would give
	 * what it gave then. That spares the read lock's two fcntl calls
	 * and a statement, most of an unchanged call's store cost. */
	if (have_hdr && s->hdr_valid && !memcmp(hdr, s->hdr, sizeof(hdr))) {
		s->header_hits++;
		return ST_OK;
	}
	s->hdr_valid = 0;
	ret = sqlite_shm_ready(s, err);
	if (ret != ST_OK)
		return ret;
	if (sqlite3_step(stmt) == SQLITE_ROW) {
		int64_t dv = sqlite3_column_int64(stmt, 0);

		if (dv != s->data_version) {
			sqlite_memo_forget(s);
			s->data_version = dv;
		}
		if (have_hdr) {
			memcpy(s->hdr, hdr, sizeof(hdr));
			s->hdr_valid = 1;
		}
	} else {
		ret = sqlite_fail(s, "reading the data version", err);
	}
	sqlite3_reset(stmt);
	sqlite_header_map(s);
	return ret;
}

static void sqlite_close(struct store *st)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	size_t i;

	if (s->table)
		st->be->rollback(st);
	/* The last connection to close checkpoints, writing the -shm: not
	 * into a mapping that faults, nor from a view that may be wrong. */
	if (s->db && (sqlite_shm_broken || sqlite_shm_unwritable(s)))
		sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1,
				  NULL);
	for (i = 0; i < SQL_NR; i++)
		sqlite3_finalize(s->stmt[i]);
	sqlite3_close(s->db);
	sqlite_memo_forget(s);
	buf_release(&s->scratch);
	buf_release(&s->options);
	free(s->path);
	free(s->shm);
	free(s);
}

/* PRAGMA user_version, with the statement finished before returning. */
static enum status sqlite_schema_version(struct sqlite_store *s, int *version,
					 struct buf *err)
{
	sqlite3_stmt *stmt = NULL;
	enum status ret = ST_OK;

	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &stmt, NULL) !=
		    SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_ROW)
		ret = sqlite_fail(s, "reading the schema version", err);
	else
		*version = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	if (ret == ST_OK && *version > SQLITE_SCHEMA_VERSION) {
		buf_setf(err,
			 "sqlite: schema version %d is newer than this "
			 "program's %d",
			 *version, SQLITE_SCHEMA_VERSION);
		ret = ST_UNAVAILABLE;
	}
	return ret;
}

/*
 * Switch a new file to WAL. That takes an exclusive lock, and while another
 * process is switching or creating the same file SQLite may answer
 * SQLITE_BUSY at once, without its busy handler: retry, with jittered
 * backoff, for as long as the busy timeout.
 */
static enum status sqlite_enable_wal(struct sqlite_store *s, struct buf *err)
{
	uint64_t deadline = clock_now_ms() + SQLITE_BUSY_MS;
	struct backoff bo;
	int rc, inited = 0;

	for (;;) {
		rc = sqlite3_exec(s->db, "PRAGMA journal_mode = WAL", NULL,
				  NULL, NULL);
		if ((rc & 0xff) != SQLITE_BUSY || clock_now_ms() >= deadline)
			break;
		if (!inited++)
			backoff_init(&bo, 1, 50);
		clock_sleep_ms(backoff_next_ms(&bo));
	}
	if (rc != SQLITE_OK)
		return sqlite_fail(s, "enabling WAL", err);
	return ST_OK;
}

static enum status sqlite_setup(struct sqlite_store *s, struct buf *err)
{
	enum status ret = ST_UNAVAILABLE;
	int version = 0;
	size_t i;

	sqlite3_busy_timeout(s->db, SQLITE_BUSY_MS);
	sqlite3_extended_result_codes(s->db, 1);
	/* WAL: readers never block the writer. NORMAL: a committed call
	 * survives a crash of the process; only power loss may undo the last.
	 * A small page cache: the registry caches whole tables itself. */
	ret = sqlite_enable_wal(s, err);
	if (ret != ST_OK)
		goto out;
	ret = ST_UNAVAILABLE;
	if (sqlite3_exec(s->db,
			 "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = "
			 "OFF; PRAGMA cache_size = -512;",
			 NULL, NULL, NULL) != SQLITE_OK) {
		sqlite_fail(s, "setting up", err);
		goto out;
	}
	/*
	 * Processes may start together on a new file: read the schema version
	 * with no statement left open, then create inside BEGIN IMMEDIATE
	 * (which waits through the busy timeout) after reading it again, as
	 * another process may have created it meanwhile. A read transaction
	 * held across BEGIN IMMEDIATE could not be upgraded once the other
	 * process committed ("database is locked", with no wait).
	 */
	ret = sqlite_schema_version(s, &version, err);
	if (ret == ST_OK && version < SQLITE_SCHEMA_VERSION) {
		if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
		    SQLITE_OK) {
			ret = sqlite_fail(s, "creating the schema", err);
			goto out;
		}
		ret = sqlite_schema_version(s, &version, err);
		if (ret == ST_OK && version < SQLITE_SCHEMA_VERSION) {
			struct buf sql = BUF_INIT;
			int v;

			if (!version)
				(void)buf_addstr(&sql, sqlite_schema);
			for (v = version ? version : 1;
			     v < SQLITE_SCHEMA_VERSION; v++)
				(void)buf_addstr(&sql,
						 sqlite_migrations[v - 1]);
			(void)buf_addf(&sql, " PRAGMA user_version = %d;",
				       SQLITE_SCHEMA_VERSION);
			if (sqlite3_exec(s->db, sql.buf, NULL, NULL, NULL) !=
			    SQLITE_OK)
				ret = sqlite_fail(s, "creating the schema",
						  err);
			buf_release(&sql);
		}
		if (ret == ST_OK && sqlite3_exec(s->db, "COMMIT", NULL, NULL,
						 NULL) != SQLITE_OK)
			ret = sqlite_fail(s, "creating the schema", err);
		if (!sqlite3_get_autocommit(s->db))
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	if (ret != ST_OK)
		goto out;
	ret = ST_UNAVAILABLE;
	for (i = 0; i < SQL_NR; i++) {
		if (sqlite3_prepare_v3(s->db, sqlite_sql[i], -1,
				       SQLITE_PREPARE_PERSISTENT, &s->stmt[i],
				       NULL) != SQLITE_OK) {
			sqlite_fail(s, sqlite_sql[i], err);
			goto out;
		}
	}
	sqlite3_wal_hook(s->db, sqlite_wal_hook, NULL);
	ret = ST_OK;
out:
	return ret;
}

static enum status sqlite_open(const char *arg, struct store **out,
			       struct buf *err)
{
	struct buf shm = BUF_INIT;
	struct sqlite_store *s;
	enum status ret;
	int known;

	*out = NULL;
	if (!*arg) {
		buf_setf(err, "sqlite needs a path: sqlite:PATH");
		return ST_USAGE;
	}
	sqlite_sigbus_install();
	s = xcalloc(1, sizeof(*s));
	s->base.be = &store_sqlite;
	s->path = xstrdup(arg);
	(void)buf_addf(&shm, "%s-shm", arg);
	s->shm = buf_detach(&shm, NULL);
	buf_init(&s->scratch, 0);
	buf_init(&s->options, 0);
	/* Only the first open in a process creates the file (sqlite_identity).
	 */
	known = sqlite_known_path(arg);
	if (known && access(arg, F_OK) && errno == ENOENT) {
		buf_setf(err, "sqlite: the database file was removed since the "
			      "server opened it");
		ret = ST_UNAVAILABLE;
		goto fail;
	}
	/* Before the first read: even a read stores into the -shm. */
	if (sqlite_shm_broken || sqlite_shm_unwritable(s)) {
		ret = sqlite_check_file(s, err);
		goto fail;
	}
	if (sqlite3_open_v2(arg, &s->db,
			    SQLITE_OPEN_READWRITE |
				    (known ? 0 : SQLITE_OPEN_CREATE) |
				    SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		buf_setf(err, "sqlite: cannot open '%s': %s", arg,
			 s->db ? sqlite3_errmsg(s->db) : "out of memory");
		ret = ST_UNAVAILABLE;
		goto fail;
	}
	ret = sqlite_setup(s, err);
	if (ret != ST_OK)
		goto fail;
	if (sqlite_identity(s)) {
		buf_setf(err,
			 "sqlite: the database file was replaced since the "
			 "server opened it; restart to use the new one");
		ret = ST_UNAVAILABLE;
		goto fail;
	}
	ret = sqlite_check_file(s, err);
	if (ret != ST_OK)
		goto fail;
	*out = &s->base;
	return ST_OK;
fail:
	sqlite_close(&s->base);
	return ret;
}

static enum status sqlite_begin(struct store *st, const char *table, int write,
				struct buf *err)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	enum status ret;

	if (s->table)
		BUG("sqlite: begin inside a call on '%s'", s->table);
	/* A read starts its transaction only when it loads: an unchanged
	 * call needs no more than the version, which the memo may hold, as
	 * of the check just made (the registry reads the settings generation
	 * first) or of one made now. */
	if (write || !s->just_checked ||
	    clock_now_us() - s->checked_us > SQLITE_RECHECK_US) {
		ret = write ? sqlite_check_file(s, err)
			    : sqlite_check_file_read(s, err);
		if (ret == ST_OK)
			ret = write ? sqlite_exec(s, SQL_BEGIN_WRITE, err)
				    : sqlite_fresh(s, err);
		s->just_checked = 0;
		if (ret != ST_OK)
			return ret;
	}
	s->just_checked = 0;
	s->table = xstrdup(table);
	s->wrote = 0;
	s->lazy = !write;
	return ST_OK;
}

static void sqlite_end(struct sqlite_store *s)
{
	free(s->table);
	s->table = NULL;
	s->wrote = 0;
	s->lazy = s->lazy_told = 0;
}

/* The table version as the open transaction (or, outside one, the file)
 * has it. */
static enum status sqlite_read_version(struct sqlite_store *s,
				       uint64_t *version, struct buf *err)
{
	sqlite3_stmt *stmt = s->stmt[SQL_VERSION];
	enum status ret = sqlite_shm_ready(s, err);
	int rc;

	if (ret != ST_OK)
		return ret;
	sqlite3_bind_text(stmt, 1, s->table, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*version = (uint64_t)sqlite3_column_int64(stmt, 0);
	else if (rc == SQLITE_DONE)
		*version = 0;
	else
		ret = sqlite_fail(s, "reading the table version", err);
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	return ret;
}

static enum status sqlite_version(struct store *st, uint64_t *version,
				  struct buf *err)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	enum status ret;

	if (!s->lazy)
		return sqlite_read_version(s, version, err);
	if (s->memo_table && !strcmp(s->memo_table, s->table)) {
		*version = s->memo_version;
	} else {
		ret = sqlite_read_version(s, version, err);
		if (ret != ST_OK)
			return ret;
		free(s->memo_table);
		s->memo_table = xstrdup(s->table);
		s->memo_version = *version;
	}
	s->lazy_told = 1;
	s->lazy_version = *version;
	return ST_OK;
}

/* The read transaction of a lazy call, at the version it told (else
 * ST_CONFLICT: the caller's snapshot moved, as the contract allows). */
static enum status sqlite_begin_lazy(struct sqlite_store *s, struct buf *err)
{
	uint64_t now;
	enum status ret = sqlite_shm_ready(s, err);

	if (ret == ST_OK)
		ret = sqlite_exec(s, SQL_BEGIN_READ, err);
	s->lazy = 0;
	if (ret != ST_OK || !s->lazy_told)
		return ret;
	ret = sqlite_read_version(s, &now, err);
	if (ret == ST_OK && now != s->lazy_version) {
		buf_setf(err, "sqlite: table '%s' changed during the call",
			 s->table);
		ret = ST_CONFLICT;
	}
	return ret;
}

static enum status sqlite_load(struct store *st, struct service_list *out,
			       struct buf *err)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	sqlite3_stmt *stmt = s->stmt[SQL_LOAD];
	enum status ret = s->lazy ? sqlite_begin_lazy(s, err) : ST_OK;
	int rc;

	if (ret != ST_OK)
		return ret;
	sqlite3_bind_text(stmt, 1, s->table, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct service *svc = service_list_append(out);
		const char *mode = (const char *)sqlite3_column_text(stmt, 2);
		const char *predicate =
			(const char *)sqlite3_column_text(stmt, 3);
		const char *containers =
			(const char *)sqlite3_column_text(stmt, 5);
		const char *options =
			(const char *)sqlite3_column_text(stmt, 8);
		struct buf why = BUF_INIT;

		svc->name = xstrdup((const char *)sqlite3_column_text(stmt, 0));
		svc->port = (unsigned)sqlite3_column_int(stmt, 1);
		svc->predicate = xstrdup(predicate ? predicate : "");
		if (sqlite3_column_type(stmt, 4) != SQLITE_NULL)
			svc->cookie = xstrdup(
				(const char *)sqlite3_column_text(stmt, 4));
		svc->created_at = sqlite3_column_int64(stmt, 6);
		svc->updated_at = sqlite3_column_int64(stmt, 7);
		if (!mode || config_mode_parse(mode, &svc->mode) ||
		    !predicate || !containers ||
		    store_containers_parse(svc, containers) ||
		    (options && payload_parse_options(svc, options, &why))) {
			buf_setf(err,
				 "sqlite: damaged row for service '%s' in "
				 "table '%s'%s%s",
				 svc->name, s->table, why.len ? ": " : "",
				 why.buf);
			buf_release(&why);
			ret = ST_UNAVAILABLE;
			break;
		}
		buf_release(&why);
	}
	if (ret == ST_OK && rc != SQLITE_DONE)
		ret = sqlite_fail(s, "loading services", err);
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	return ret;
}

/* The first write of a call bumps the table version, inside the transaction. */
static enum status sqlite_bump(struct sqlite_store *s, struct buf *err)
{
	sqlite3_stmt *bump = s->stmt[SQL_BUMP];
	enum status ret;

	if (s->wrote)
		return ST_OK;
	sqlite3_bind_text(bump, 1, s->table, -1, SQLITE_STATIC);
	ret = sqlite_exec(s, SQL_BUMP, err);
	sqlite3_clear_bindings(bump);
	s->wrote = ret == ST_OK;
	return ret;
}

static enum status sqlite_put(struct store *st, struct service *svc,
			      struct buf *err)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	sqlite3_stmt *stmt = s->stmt[SQL_PUT];

	buf_reset(&s->scratch);
	store_containers_text(svc, &s->scratch);
	sqlite3_bind_text(stmt, 1, s->table, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, svc->name, -1, SQLITE_STATIC);
	sqlite3_bind_int(stmt, 3, (int)svc->port);
	sqlite3_bind_text(stmt, 4, config_mode_name(svc->mode), -1,
			  SQLITE_STATIC);
	sqlite3_bind_text(stmt, 5, svc->predicate, -1, SQLITE_STATIC);
	if (svc->cookie)
		sqlite3_bind_text(stmt, 6, svc->cookie, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(stmt, 6);
	sqlite3_bind_text(stmt, 7, s->scratch.buf, (int)s->scratch.len,
			  SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 8, svc->created_at);
	sqlite3_bind_int64(stmt, 9, svc->updated_at);
	buf_reset(&s->options);
	if (payload_options_json(svc, &s->options)) {
		sqlite3_clear_bindings(stmt);
		buf_setf(err, "sqlite: the options of '%s' are too large",
			 svc->name);
		return ST_TOO_LARGE;
	}
	if (s->options.len)
		sqlite3_bind_text(stmt, 10, s->options.buf, (int)s->options.len,
				  SQLITE_STATIC);
	else
		sqlite3_bind_null(stmt, 10);
	if (sqlite_bump(s, err) != ST_OK ||
	    sqlite_exec(s, SQL_PUT, err) != ST_OK) {
		sqlite3_clear_bindings(stmt);
		return ST_UNAVAILABLE;
	}
	sqlite3_clear_bindings(stmt);
	svc->version++;
	return ST_OK;
}

static enum status sqlite_remove(struct store *st, const struct service *svc,
				 struct buf *err)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	sqlite3_stmt *stmt = s->stmt[SQL_REMOVE];
	enum status ret;

	sqlite3_bind_text(stmt, 1, s->table, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, svc->name, -1, SQLITE_STATIC);
	ret = sqlite_bump(s, err);
	if (ret == ST_OK)
		ret = sqlite_exec(s, SQL_REMOVE, err);
	sqlite3_clear_bindings(stmt);
	return ret;
}

static void sqlite_rollback(struct store *st)
{
	struct sqlite_store *s = (struct sqlite_store *)st;

	if (!sqlite3_get_autocommit(s->db)) {
		sqlite3_step(s->stmt[SQL_ROLLBACK]);
		sqlite3_reset(s->stmt[SQL_ROLLBACK]);
	}
	sqlite_end(s);
}

/* A write is checked against the file once more under the lock, just before
 * it commits: an acknowledged write never goes into a removed file. */
static enum status sqlite_commit(struct store *st, struct buf *err)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	enum status ret = s->wrote ? sqlite_check_file(s, err) : ST_OK;

	if (s->lazy) {
		sqlite_end(s); /* a read that never began a transaction */
		return ST_OK;
	}
	if (s->wrote)
		sqlite_memo_forget(s);
	if (ret == ST_OK)
		ret = sqlite_exec(s, SQL_COMMIT, err);
	/* A fault in the -shm during the commit: it may not be visible. */
	if (ret == ST_OK && s->wrote && sqlite_shm_broken)
		ret = sqlite_check_file(s, err);
	if (ret != ST_OK)
		sqlite_rollback(st);
	else
		sqlite_end(s);
	return ret;
}

/* Whether the file `path` has fewer than SQLITE_MIN_FREE bytes to grow under
 * `limit`. */
static int sqlite_near_limit(const char *path, unsigned long long limit)
{
	struct stat sb;

	if (stat(path, &sb))
		return 0;
	return (unsigned long long)sb.st_size + SQLITE_MIN_FREE > limit;
}

/*
 * A full file system, or the process's file size limit reached by the
 * database or its WAL, fails writes long before a read notices.
 */
static enum status sqlite_check_space(struct sqlite_store *s, struct buf *err)
{
	struct statvfs vfs;
	struct rlimit rl;
	struct buf wal = BUF_INIT;
	enum status ret = ST_OK;

	if (statvfs(s->path, &vfs))
		return ST_OK; /* ":memory:" or a URI: nothing to measure */
	/* root may use the blocks reserved for it, others may not */
	if ((unsigned long long)(geteuid() ? vfs.f_bavail : vfs.f_bfree) *
		    vfs.f_frsize <
	    SQLITE_MIN_FREE) {
		/* No path here: /healthz shows this to any client. */
		buf_setf(err, "sqlite: the database's file system is full");
		return ST_UNAVAILABLE;
	}
	if (getrlimit(RLIMIT_FSIZE, &rl) || rl.rlim_cur == RLIM_INFINITY)
		return ST_OK;
	(void)buf_addf(&wal, "%s-wal", s->path);
	if (sqlite_near_limit(s->path, rl.rlim_cur) ||
	    sqlite_near_limit(wal.buf, rl.rlim_cur)) {
		buf_setf(err,
			 "sqlite: the database is at the process's file size "
			 "limit "
			 "(%llu bytes)",
			 (unsigned long long)rl.rlim_cur);
		ret = ST_UNAVAILABLE;
	}
	buf_release(&wal);
	return ret;
}

/*
 * A read (in WAL it never waits for a writer) with a short busy timeout: a
 * lock held elsewhere (recovery, a truncating checkpoint) is contention,
 * not a fault.
 */
static enum status sqlite_ping(struct store *st, struct buf *err)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	enum status ret = sqlite_check_file(s, err);
	int rc;

	if (ret != ST_OK)
		return ret;
	sqlite3_busy_timeout(s->db, SQLITE_PING_BUSY_MS);
	rc = sqlite3_exec(s->db, "SELECT version FROM tables LIMIT 1", NULL,
			  NULL, NULL);
	sqlite3_busy_timeout(s->db, SQLITE_BUSY_MS);
	if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
		ret = sqlite_fail(s, "ping", err);
	else if (sqlite3_db_readonly(s->db, "main") == 1) {
		buf_setf(err, "sqlite: the database is read-only");
		ret = ST_UNAVAILABLE;
	} else {
		ret = sqlite_check_space(s, err);
	}
	return ret;
}

/*
 * Bump the version of the table "" (no real table has so short a name): one
 * committed write that touches no data, so a fault shows as it would for a
 * call.
 */
static enum status sqlite_probe(struct store *st, struct buf *err)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	enum status ret = sqlite_ping(st, err);
	int rc;

	if (ret != ST_OK)
		return ret;
	if (s->table)
		BUG("sqlite: probe inside a call on '%s'", s->table);
	sqlite3_busy_timeout(s->db, SQLITE_PING_BUSY_MS);
	rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	sqlite3_busy_timeout(s->db, SQLITE_BUSY_MS);
	if ((rc & 0xff) == SQLITE_BUSY)
		return ST_OK;
	if (rc != SQLITE_OK)
		return sqlite_fail(s, "probe", err);
	if (sqlite3_exec(s->db,
			 "INSERT INTO tables (name, version) VALUES ('', 1) "
			 "ON CONFLICT (name) DO UPDATE SET version = version + "
			 "1; COMMIT",
			 NULL, NULL, NULL) != SQLITE_OK) {
		ret = sqlite_fail(s, "probe write", err);
		if (!sqlite3_get_autocommit(s->db))
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	return ret;
}

/* ---- documents --------------------------------------------------------- */

/*
 * Documents other than the generation (read on every call, kept prepared)
 * are rare next to table calls, so their statements are prepared per call
 * rather than kept.
 */
static enum status sqlite_doc_prepare(struct sqlite_store *s, const char *sql,
				      sqlite3_stmt **stmt, struct buf *err)
{
	enum status ret;

	if (s->table)
		BUG("sqlite: document call inside a call on '%s'", s->table);
	*stmt = NULL;
	/* Documents touch the -shm like table calls: the same checks first. */
	ret = sqlite_check_file(s, err);
	if (ret != ST_OK)
		return ret;
	if (sqlite3_prepare_v2(s->db, sql, -1, stmt, NULL) != SQLITE_OK) {
		*stmt = NULL;
		return sqlite_fail(s, sql, err);
	}
	return ST_OK;
}

static void sqlite_doc_from_row(sqlite3_stmt *stmt, struct store_doc *doc)
{
	doc->key = xstrdup((const char *)sqlite3_column_text(stmt, 0));
	doc->value = xstrdup((const char *)sqlite3_column_text(stmt, 1));
	doc->version = (uint64_t)sqlite3_column_int64(stmt, 2);
	doc->updated_at = sqlite3_column_int64(stmt, 3);
}

static enum status sqlite_doc_get(struct store *st, const char *kind,
				  const char *key, struct store_doc *out,
				  struct buf *err)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	sqlite3_stmt *stmt = NULL;
	enum status ret;
	int rc;

	memset(out, 0, sizeof(*out));
	ret = sqlite_doc_prepare(s,
				 "SELECT key, value, version, updated_at FROM "
				 "docs WHERE kind = ?1 AND key = ?2",
				 &stmt, err);
	if (ret != ST_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		sqlite_doc_from_row(stmt, out);
	else if (rc == SQLITE_DONE)
		ret = ST_NOT_FOUND;
	else
		ret = sqlite_fail(s, "reading a document", err);
out:
	sqlite3_finalize(stmt);
	return ret;
}

/* Run one statement with `kind` and `key` bound as ?1 and ?2; no rows. */
static enum status sqlite_doc_step(struct sqlite_store *s, const char *sql,
				   const char *kind, const char *key,
				   struct buf *err)
{
	sqlite3_stmt *stmt = NULL;
	enum status ret = sqlite_doc_prepare(s, sql, &stmt, err);

	if (ret != ST_OK)
		return ret;
	sqlite3_bind_text(stmt, 1, kind, -1, SQLITE_STATIC);
	if (key)
		sqlite3_bind_text(stmt, 2, key, -1, SQLITE_STATIC);
	if (sqlite3_step(stmt) != SQLITE_DONE)
		ret = sqlite_fail(s, "writing a document", err);
	sqlite3_finalize(stmt);
	return ret;
}

/* The generation of `kind` as this transaction sees it (0: none yet). */
static enum status sqlite_doc_read_generation(struct sqlite_store *s,
					      const char *kind, uint64_t *gen,
					      struct buf *err)
{
	sqlite3_stmt *stmt = s->stmt[SQL_GENERATION];
	enum status ret = sqlite_shm_ready(s, err);
	int rc;

	*gen = 0;
	if (ret != ST_OK)
		return ret;
	sqlite3_bind_text(stmt, 1, kind, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*gen = (uint64_t)sqlite3_column_int64(stmt, 0);
	else if (rc != SQLITE_DONE)
		ret = sqlite_fail(s, "reading a document generation", err);
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	return ret;
}

static enum status sqlite_doc_begin_write(struct sqlite_store *s,
					  struct buf *err)
{
	enum status ret;

	if (s->table)
		BUG("sqlite: document call inside a call on '%s'", s->table);
	ret = sqlite_check_file(s, err);
	if (ret != ST_OK)
		return ret;
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK)
		return sqlite_fail(s, "BEGIN IMMEDIATE", err);
	return ST_OK;
}

/* Commit on ST_OK, else roll back; the result of the whole transaction. */
static enum status sqlite_doc_end_write(struct sqlite_store *s, enum status ret,
					struct buf *err)
{
	sqlite_memo_forget(s);
	if (ret == ST_OK &&
	    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		ret = sqlite_fail(s, "COMMIT", err);
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

/* Bump the kind's generation inside the open transaction; the new one out. */
static enum status sqlite_doc_bump(struct sqlite_store *s, const char *kind,
				   uint64_t *gen, struct buf *err)
{
	enum status ret = sqlite_doc_step(
		s,
		"INSERT INTO doc_generations (kind, generation) VALUES (?1, 1) "
		"ON CONFLICT (kind) DO UPDATE SET generation = generation + 1",
		kind, NULL, err);

	if (ret == ST_OK)
		ret = sqlite_doc_read_generation(s, kind, gen, err);
	return ret;
}

static enum status sqlite_doc_put(struct store *st, const char *kind,
				  const char *key, const char *value,
				  uint64_t expect, uint64_t *version,
				  struct buf *err)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	sqlite3_stmt *stmt = NULL;
	struct store_doc cur;
	uint64_t gen = 0;
	enum status ret;

	memset(&cur, 0, sizeof(cur));
	ret = sqlite_doc_begin_write(s, err);
	if (ret != ST_OK)
		return ret;
	if (expect != STORE_DOC_ANY) {
		ret = sqlite_doc_get(st, kind, key, &cur, err);
		if (ret == ST_NOT_FOUND)
			ret = ST_OK;
		if (ret == ST_OK && cur.version != expect) {
			buf_setf(err,
				 "sqlite: document '%s/%s' is at version "
				 "%llu, not %llu",
				 kind, key, (unsigned long long)cur.version,
				 (unsigned long long)expect);
			ret = ST_CONFLICT;
		}
		store_doc_release(&cur);
		if (ret != ST_OK)
			goto out;
	}
	ret = sqlite_doc_bump(s, kind, &gen, err);
	if (ret != ST_OK)
		goto out;
	ret = sqlite_doc_prepare(
		s,
		"INSERT OR REPLACE INTO docs (kind, key, value, version, "
		"updated_at) VALUES (?1, ?2, ?3, ?4, "
		"CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))",
		&stmt, err);
	if (ret != ST_OK)
		goto out;
	sqlite3_bind_text(stmt, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, value, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, (sqlite3_int64)gen);
	if (sqlite3_step(stmt) != SQLITE_DONE)
		ret = sqlite_fail(s, "writing a document", err);
out:
	sqlite3_finalize(stmt);
	ret = sqlite_doc_end_write(s, ret, err);
	if (ret == ST_OK && version)
		*version = gen;
	return ret;
}

static enum status sqlite_doc_delete(struct store *st, const char *kind,
				     const char *key, struct buf *err)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	uint64_t gen;
	enum status ret = sqlite_doc_begin_write(s, err);

	if (ret != ST_OK)
		return ret;
	ret = sqlite_doc_step(s,
			      "DELETE FROM docs WHERE kind = ?1 AND key = ?2",
			      kind, key, err);
	if (ret == ST_OK && !sqlite3_changes(s->db))
		ret = ST_NOT_FOUND;
	if (ret == ST_OK)
		ret = sqlite_doc_bump(s, kind, &gen, err);
	return sqlite_doc_end_write(s, ret, err);
}

static enum status sqlite_doc_list(struct store *st, const char *kind,
				   const char *after, size_t limit,
				   struct store_doc_list *out, struct buf *err)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	sqlite3_stmt *stmt = NULL;
	size_t first = out->nr;
	enum status ret;
	int rc;

	/* CAST AS BLOB: byte order whatever the column's collation. */
	ret = sqlite_doc_prepare(
		s,
		"SELECT key, value, version, updated_at FROM docs "
		"WHERE kind = ?1 AND CAST(key AS BLOB) > CAST(?2 AS BLOB) "
		"ORDER BY CAST(key AS BLOB) LIMIT ?3",
		&stmt, err);
	if (ret != ST_OK)
		return ret;
	sqlite3_bind_text(stmt, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, after ? after : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(
		stmt, 3, limit > INT64_MAX ? INT64_MAX : (sqlite3_int64)limit);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		sqlite_doc_from_row(stmt, store_doc_list_append(out));
	if (rc != SQLITE_DONE) {
		ret = sqlite_fail(s, "listing documents", err);
		while (out->nr > first)
			store_doc_release(&out->items[--out->nr]);
	}
	sqlite3_finalize(stmt);
	return ret;
}

static enum status sqlite_table_list(struct store *st, const char *after,
				     size_t limit, struct store_name_list *out,
				     struct buf *err)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	sqlite3_stmt *stmt = NULL;
	size_t first = out->nr;
	enum status ret;
	int rc;

	/* The probe's table "" is no table; versions start at 1. */
	ret = sqlite_doc_prepare(
		s,
		"SELECT name FROM tables WHERE version > 0 AND name <> '' AND "
		"CAST(name AS BLOB) > CAST(?1 AS BLOB) "
		"ORDER BY CAST(name AS BLOB) LIMIT ?2",
		&stmt, err);
	if (ret != ST_OK)
		return ret;
	sqlite3_bind_text(stmt, 1, after, -1, SQLITE_STATIC);
	sqlite3_bind_int64(
		stmt, 2, limit > INT64_MAX ? INT64_MAX : (sqlite3_int64)limit);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		store_name_list_add(out,
				    (const char *)sqlite3_column_text(stmt, 0),
				    (size_t)sqlite3_column_bytes(stmt, 0));
	if (rc != SQLITE_DONE) {
		ret = sqlite_fail(s, "listing tables", err);
		while (out->nr > first)
			free(out->items[--out->nr]);
	}
	sqlite3_finalize(stmt);
	return ret;
}

/* From the memo while the data version stays (see sqlite_fresh). */
static enum status sqlite_doc_generation(struct store *st, const char *kind,
					 uint64_t *generation, struct buf *err)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	enum status ret;

	if (s->table)
		BUG("sqlite: document call inside a call on '%s'", s->table);
	s->just_checked = 0;
	ret = sqlite_check_file_read(s, err);
	if (ret == ST_OK)
		ret = sqlite_fresh(s, err);
	if (ret != ST_OK)
		return ret;
	if (!s->memo_kind || strcmp(s->memo_kind, kind)) {
		ret = sqlite_doc_read_generation(s, kind, generation, err);
		if (ret != ST_OK)
			return ret;
		free(s->memo_kind);
		s->memo_kind = xstrdup(kind);
		s->memo_gen = *generation;
	}
	*generation = s->memo_gen;
	s->just_checked = 1;
	s->checked_us = clock_now_us();
	return ST_OK;
}

/* No busy handler while on: SQLite then answers SQLITE_BUSY at once. */
static void sqlite_nowait(struct store *st, int on)
{
	struct sqlite_store *s = (struct sqlite_store *)st;

	s->nowait = on;
	sqlite3_busy_timeout(s->db, on ? 0 : SQLITE_BUSY_MS);
}

const struct store_backend store_sqlite = {
	.name = "sqlite",
	.caps = STORE_CAP_VERSION | STORE_CAP_ATOMIC | STORE_CAP_PROBE |
		STORE_CAP_NOWAIT,
	.open = sqlite_open,
	.close = sqlite_close,
	.begin = sqlite_begin,
	.version = sqlite_version,
	.load = sqlite_load,
	.put = sqlite_put,
	.remove = sqlite_remove,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
	.ping = sqlite_ping,
	.probe = sqlite_probe,
	.doc_get = sqlite_doc_get,
	.doc_put = sqlite_doc_put,
	.doc_delete = sqlite_doc_delete,
	.doc_list = sqlite_doc_list,
	.doc_generation = sqlite_doc_generation,
	.nowait = sqlite_nowait,
	.table_list = sqlite_table_list,
};
