/*
 * The registry's answer to an agent, checked before anything of it reaches
 * HAProxy's folder.
 */
#include "agent/answer.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "render.h"
#include "xalloc.h"
#include "banned.h"

void answer_init(struct answer *ans)
{
	size_t i;

	buf_init(&ans->config, HAPROXY_CONFIG_MAX);
	for (i = 0; i < HAPROXY_MAX_FILES; i++) {
		buf_init(&ans->paths[i], 0);
		buf_init(&ans->data[i], HAPROXY_CONFIG_MAX);
	}
	ans->nr_files = 0;
	ans->has_index = 0;
	ans->index = 0;
	ans->token[0] = '\0';
}

void answer_release(struct answer *ans)
{
	size_t i;

	buf_release(&ans->config);
	for (i = 0; i < HAPROXY_MAX_FILES; i++) {
		buf_release(&ans->paths[i]);
		buf_release(&ans->data[i]);
	}
}

/* The value of header `name` (lower case, colon included) when `line` is
 * that header: copied into `out` without the spaces around it, or NULL
 * (another header, or a value longer than `size` - 1). */
static const char *answer_value(const char *line, size_t len, const char *name,
				char *out, size_t size)
{
	size_t nlen = strlen(name);

	if (len < nlen || strncasecmp(line, name, nlen))
		return NULL;
	line += nlen;
	len -= nlen;
	while (len && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	while (len && strchr(" \t\r\n", line[len - 1]))
		len--;
	if (len >= size)
		return NULL;
	memcpy(out, line, len);
	out[len] = '\0';
	return out;
}

size_t answer_header(char *line, size_t size, size_t n, void *ctx)
{
	struct answer *ans = ctx;
	size_t len = size * n;
	char text[24], *end;

	if (answer_value(line, len, "x-registry-index:", text, sizeof(text))) {
		ans->index = strtoull(text, &end, 10);
		ans->has_index = end != text && !*end;
	} else if (answer_value(line, len, "x-registry-body-token:", ans->token,
				sizeof(ans->token)) &&
		   strspn(ans->token, "0123456789abcdef") !=
			   2 * REGISTRY_TOKEN_LEN) {
		ans->token[0] = '\0';
	}
	return len;
}

/* The map folder: absolute, of A-Z a-z 0-9 . _ - / and no ".." segment. */
static int answer_check_dir(const char *s)
{
	size_t i, len = strlen(s);

	if (s[0] != '/' || len > 1024 || strstr(s, "/../") ||
	    (len >= 3 && !strcmp(s + len - 3, "/..")))
		return -1;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-/", s[i]))
			return -1;
	return 0;
}

/* A map file: lines of two printable tokens separated by one space. */
static int answer_check_map(const char *s, size_t len)
{
	size_t i, spaces = 0, col = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n') {
			if (spaces != 1 || !col || s[i - 1] == ' ')
				return -1;
			spaces = col = 0;
			continue;
		}
		if (c == ' ') {
			if (!col)
				return -1;
			spaces++;
		} else if (c < 0x21 || c == 0x7f) {
			return -1;
		}
		col++;
	}
	return col ? -1 : 0;
}

/* A config: text ending in a newline, without NUL bytes. */
static int answer_check_config(const char *s, size_t len)
{
	return !len || s[len - 1] != '\n' || memchr(s, '\0', len) ? -1 : 0;
}

/* The JSON answer: "config", and in the map form "files" with "mapDir". */
static int answer_parse_json(const struct buf *body, struct answer *ans,
			     struct buf *err)
{
	static const char *const names[] = {RENDER_HOSTS_MAP, RENDER_PATHS_MAP};
	json_error_t jerr;
	json_t *doc =
		json_loadb(body->buf, body->len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *config, *files, *dir, *v;
	const char *name;
	size_t i;
	int ret = -1;

	if (!doc) {
		buf_setf(err, "its JSON does not parse: %s", jerr.text);
		return -1;
	}
	config = json_object_get(doc, "config");
	files = json_object_get(doc, "files");
	dir = json_object_get(doc, "mapDir");
	if (!json_is_string(config) ||
	    answer_check_config(json_string_value(config),
				json_string_length(config))) {
		buf_setf(err, "its config is not text ending in a newline");
		goto out;
	}
	if (buf_add(&ans->config, json_string_value(config),
		    json_string_length(config))) {
		buf_setf(err, "its config is larger than %zu bytes",
			 ans->config.cap);
		goto out;
	}
	if (!files || (json_is_object(files) && !json_object_size(files))) {
		ret = 0;
		goto out;
	}
	if (!json_is_object(files) || !json_is_string(dir) ||
	    answer_check_dir(json_string_value(dir))) {
		buf_setf(err, "its files or mapDir are not what the registry "
			      "sends");
		goto out;
	}
	json_object_foreach(files, name, v)
	{
		for (i = 0; i < ARRAY_SIZE(names); i++)
			if (!strcmp(name, names[i]))
				break;
		if (i == ARRAY_SIZE(names) || !json_is_string(v) ||
		    answer_check_map(json_string_value(v),
				     json_string_length(v))) {
			buf_setf(err, "its file '%s' is not a map file", name);
			goto out;
		}
		i = ans->nr_files++;
		buf_addf(&ans->paths[i], "%s/%s", json_string_value(dir), name);
		if (buf_add(&ans->data[i], json_string_value(v),
			    json_string_length(v))) {
			buf_setf(err, "its file '%s' is larger than %zu bytes",
				 name, ans->data[i].cap);
			goto out;
		}
	}
	ret = 0;
out:
	json_decref(doc);
	return ret;
}

int answer_parse(const char *content_type, const struct buf *body,
		 struct answer *ans, struct buf *err)
{
	if (content_type && !strncasecmp(content_type, "application/json", 16))
		return answer_parse_json(body, ans, err);
	if (answer_check_config(body->buf, body->len)) {
		buf_setf(err, "%s",
			 body->len ? "its config is not text ending in a "
				     "newline"
				   : "its config is empty");
		return -1;
	}
	if (buf_add(&ans->config, body->buf, body->len)) {
		buf_setf(err, "its config is larger than %zu bytes",
			 ans->config.cap);
		return -1;
	}
	return 0;
}

size_t answer_files(const struct answer *ans,
		    struct haproxy_file files[HAPROXY_MAX_FILES])
{
	size_t i;

	for (i = 0; i < ans->nr_files; i++) {
		files[i].path = ans->paths[i].buf;
		files[i].data = ans->data[i].buf;
		files[i].len = ans->data[i].len;
	}
	return ans->nr_files;
}
