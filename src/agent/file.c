/*
 * The agent's file source: services listed in a JSON file, for hosts without
 * Docker and for tests. Change detection is stat() then a byte comparison.
 */
#include "agent/file.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "payload.h"
#include "xalloc.h"
#include "banned.h"

/* A services file larger than this is refused. */
#define FILE_MAX_BYTES ((size_t)16 << 20)

struct file_source {
	struct source src; /* first: a struct source * is a file_source * */
	char *path;
	struct stat st; /* as of the last look */
	int have_st;
	struct buf bytes; /* as of the last load */
	int loaded;
	struct buf skipped; /* complaints already logged, one per line */
};

static void file_free(struct source *src)
{
	struct file_source *fs = (struct file_source *)src;

	if (!fs)
		return;
	free(fs->path);
	buf_release(&fs->bytes);
	buf_release(&fs->skipped);
	free(fs);
}

static int file_same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	       a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static int file_changed(struct source *src)
{
	struct file_source *fs = (struct file_source *)src;
	struct buf now = BUF_INIT, err = BUF_INIT;
	struct stat st;
	int changed = 0;
	enum status rs;

	if (stat(fs->path, &st)) {
		changed = fs->have_st;
		fs->have_st = 0;
		goto out;
	}
	if (fs->have_st && file_same_stat(&st, &fs->st))
		goto out;
	fs->st = st;
	fs->have_st = 1;
	if (!fs->loaded) {
		changed = 1;
		goto out;
	}
	/* Touched or rewritten: only a change of bytes counts. */
	buf_init(&now, FILE_MAX_BYTES);
	rs = buf_read_file(&now, fs->path, &err);
	changed = rs != ST_OK || now.len != fs->bytes.len ||
		  memcmp(now.buf, fs->bytes.buf, now.len);
out:
	buf_release(&now);
	buf_release(&err);
	return changed;
}

/* A string member, or NULL when absent or null; -1 for another type. */
static int file_get_string(json_t *obj, const char *key, const char **out,
			   struct buf *err)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		buf_setf(err, "'%s' must be a string", key);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

/* A string or integer member as text (an integer formatted into `tmp`),
 * NULL when absent or null; -1 for another type. */
static int file_get_text(json_t *obj, const char *key, struct buf *tmp,
			 const char **out, struct buf *err)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v))
		return file_get_string(obj, key, out, err) ? -1 : 0;
	buf_reset(tmp);
	(void)buf_addf(tmp, "%lld", (long long)json_integer_value(v));
	*out = tmp->buf;
	return 0;
}

/* The candidate's backend options (balance, healthCheck, ...) of `entry`. */
static int file_parse_options(json_t *entry, struct service *svc,
			      struct buf *err)
{
	struct buf t[6] = {BUF_INIT, BUF_INIT, BUF_INIT,
			   BUF_INIT, BUF_INIT, BUF_INIT};
	struct payload_options_text o = {0};
	json_t *hc = json_object_get(entry, "healthCheck");
	size_t i;
	int ret = -1;

	if (hc && !json_is_null(hc) && !json_is_object(hc)) {
		buf_setf(err, "'healthCheck' must be an object");
		goto out;
	}
	if (file_get_string(entry, "balance", &o.balance, err) ||
	    file_get_string(entry, "cookieMode", &o.cookie_mode, err) ||
	    file_get_text(entry, "maxconn", &t[0], &o.maxconn, err) ||
	    file_get_string(entry, "timeoutServer", &o.timeout_server, err) ||
	    file_get_string(entry, "timeoutTunnel", &o.timeout_tunnel, err))
		goto out;
	if (json_is_object(hc) &&
	    (file_get_string(hc, "path", &o.check_path, err) ||
	     file_get_text(hc, "expectStatus", &t[1], &o.check_status, err) ||
	     file_get_string(hc, "interval", &o.check_interval, err) ||
	     file_get_text(hc, "rise", &t[2], &o.check_rise, err) ||
	     file_get_text(hc, "fall", &t[3], &o.check_fall, err)))
		goto out;
	if (json_is_object(hc) && (!o.check_path || !*o.check_path)) {
		buf_setf(err, "'healthCheck' needs a 'path'");
		goto out;
	}
	ret = payload_check_options_text(svc, &o, err);
out:
	for (i = 0; i < ARRAY_SIZE(t); i++)
		buf_release(&t[i]);
	return ret;
}

static int file_parse_service(json_t *entry, struct service *svc,
			      struct buf *skipped, struct buf *err)
{
	const char *name, *mode, *predicate, *cookie, *port_s = NULL;
	struct buf reason = BUF_INIT, q = BUF_INIT, port_text = BUF_INIT;
	json_t *port, *containers, *c;
	size_t i;
	int ret = -1;

	if (!json_is_object(entry)) {
		buf_setf(err, "an entry is not an object");
		goto out;
	}
	if (file_get_string(entry, "serviceName", &name, err) ||
	    file_get_string(entry, "configMode", &mode, err) ||
	    file_get_string(entry, "predicate", &predicate, err) ||
	    file_get_string(entry, "cookie", &cookie, err))
		goto out;
	port = json_object_get(entry, "port");
	if (json_is_integer(port)) {
		buf_addf(&port_text, "%lld",
			 (long long)json_integer_value(port));
		port_s = port_text.buf;
	} else if (json_is_string(port)) {
		port_s = json_string_value(port);
	} else if (port) {
		buf_setf(err, "'port' must be a number or a numeric string");
		goto out;
	}
	if (payload_check_service_text(svc, name, port_s, mode, predicate,
				       cookie, err) ||
	    file_parse_options(entry, svc, err))
		goto out;

	containers = json_object_get(entry, "containers");
	if (containers && !json_is_array(containers)) {
		buf_setf(err, "'containers' must be an array");
		goto out;
	}
	json_array_foreach(containers, i, c)
	{
		const char *id = NULL, *ip = NULL, *weight_s = NULL;
		int weight = WEIGHT_UNSET;

		buf_reset(&reason);
		if (!json_is_object(c))
			buf_setf(&reason, "not an object");
		else if (!file_get_string(c, "id", &id, &reason) &&
			 !file_get_string(c, "ip", &ip, &reason))
			(void)file_get_text(c, "weight", &port_text, &weight_s,
					    &reason);
		if (!reason.len &&
		    !payload_check_weight_text(weight_s, &weight, &reason) &&
		    !payload_check_container_text(svc, id, ip, &reason)) {
			service_find_container(svc, id)->weight = weight;
			continue;
		}
		buf_addf(skipped, "service=%s container=%zu ",
			 log_quote(&q, svc->name), i);
		buf_addf(skipped, "reason=%s\n", log_quote(&q, reason.buf));
	}
	ret = 0;
out:
	buf_release(&reason);
	buf_release(&q);
	buf_release(&port_text);
	return ret;
}

enum status file_parse_services(const char *json, size_t len,
				struct service_list *out, struct buf *skipped,
				struct buf *err)
{
	struct buf reason = BUF_INIT, q = BUF_INIT;
	json_error_t jerr;
	json_t *root, *entry;
	enum status st = ST_INVALID;
	size_t i;

	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		buf_setf(err, "not valid JSON at line %d: %s", jerr.line,
			 jerr.text);
		goto out;
	}
	if (!json_is_array(root)) {
		buf_setf(err, "the document must be an array of services");
		goto out;
	}
	json_array_foreach(root, i, entry)
	{
		struct service svc;

		memset(&svc, 0, sizeof(svc));
		buf_reset(&reason);
		if (file_parse_service(entry, &svc, skipped, &reason)) {
			const char *name = json_string_value(
				json_object_get(entry, "serviceName"));

			buf_addf(skipped, "entry=%zu service=%s ", i,
				 log_quote(&q, name ? name : ""));
			buf_addf(skipped, "reason=%s\n",
				 log_quote(&q, reason.buf));
			service_release(&svc);
			continue;
		}
		if (service_list_find(out, svc.name)) {
			buf_addf(skipped,
				 "entry=%zu service=%s reason=\"listed "
				 "twice\"\n",
				 i, log_quote(&q, svc.name));
			service_release(&svc);
			continue;
		}
		*service_list_append(out) = svc;
		service_list_sort(out);
	}
	st = ST_OK;
out:
	json_decref(root);
	buf_release(&reason);
	buf_release(&q);
	return st;
}

/* 1 when `line` (with its newline) is one of the lines of `lines`. */
static int file_has_line(const char *lines, const char *line, size_t len)
{
	const char *p = lines;

	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t n = eol ? (size_t)(eol - p + 1) : strlen(p);

		if (n == len && !memcmp(p, line, len))
			return 1;
		p += n;
	}
	return 0;
}

/* Log the complaints in `now` that were not logged for the previous load. */
static void file_log_skipped(struct file_source *fs, const char *now)
{
	const char *p = now;
	struct buf q = BUF_INIT;

	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p + 1) : strlen(p);

		if (!file_has_line(fs->skipped.buf, p, len))
			log_event("level=warn event=skip source=file path=%s "
				  "%.*s",
				  log_quote(&q, fs->path),
				  (int)(eol ? len - 1 : len), p);
		p += len;
	}
	buf_reset(&fs->skipped);
	buf_addstr(&fs->skipped, now);
	buf_release(&q);
}

static enum status file_load(struct source *src, struct service_list *out,
			     struct buf *err)
{
	struct file_source *fs = (struct file_source *)src;
	struct buf bytes = BUF_INIT, skipped = BUF_INIT;
	struct stat st;
	enum status rs;

	buf_init(&bytes, FILE_MAX_BYTES);
	/* stat first: a change landing during the read is seen next time. */
	if (!stat(fs->path, &st)) {
		fs->st = st;
		fs->have_st = 1;
	}
	rs = buf_read_file(&bytes, fs->path, err);
	if (rs == ST_NOT_FOUND)
		buf_setf(err, "'%s' does not exist", fs->path);
	if (rs != ST_OK)
		goto out;
	buf_reset(&fs->bytes);
	(void)buf_add(&fs->bytes, bytes.buf, bytes.len);
	fs->loaded = 1;
	rs = file_parse_services(bytes.buf, bytes.len, out, &skipped, err);
	if (rs != ST_OK)
		service_list_release(out);
	file_log_skipped(fs, skipped.buf);
out:
	buf_release(&bytes);
	buf_release(&skipped);
	return rs;
}

static void file_resync(struct source *src)
{
	struct file_source *fs = (struct file_source *)src;

	/* Read the file again next time, and log its complaints again. */
	fs->have_st = 0;
	fs->loaded = 0;
	buf_reset(&fs->skipped);
}

static const struct source_ops file_ops = {
	.name = "file",
	.load = file_load,
	.changed = file_changed,
	.resync = file_resync,
	.free = file_free,
};

enum status file_source_new(const char *arg, const struct source_options *opts,
			    struct source **out, struct buf *err)
{
	struct file_source *fs;
	enum status st = ST_INVALID;

	(void)opts;
	*out = NULL;
	if (!arg || !*arg) {
		buf_setf(err, "no path after 'file:'");
		goto out;
	}
	fs = xcalloc(1, sizeof(*fs));
	fs->src.ops = &file_ops;
	fs->path = xstrdup(arg);
	buf_init(&fs->bytes, FILE_MAX_BYTES);
	buf_init(&fs->skipped, 0);
	*out = &fs->src;
	st = ST_OK;
out:
	return st;
}
