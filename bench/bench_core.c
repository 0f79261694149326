/*
 * In-process micro-benchmarks of the core, without HTTP: the renderer's
 * throughput, payload parsing, and whole registry calls on a SQLite file.
 * Prints one JSON object per run, for bench/run.py and for profiling.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "payload.h"
#include "registry.h"
#include "render.h"
#include "service.h"
#include "xalloc.h"
#include "banned.h"

static double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The shape bench/run.py posts: every 4th service in path mode, every
 * other one sticky, 5 containers each (see run.py scale_payload). */
static void bench_fill_services(struct service_list *list, unsigned nr,
				unsigned per)
{
	unsigned i, j;

	for (i = 0; i < nr; i++) {
		struct service *svc = service_list_append(list);
		struct buf b = BUF_INIT;

		(void)buf_addf(&b, "svc-%05u", i);
		svc->name = buf_detach(&b, NULL);
		svc->port = 8080;
		svc->mode = i % 4 == 3 ? CONFIG_MODE_PATH : CONFIG_MODE_HOST;
		if (svc->mode == CONFIG_MODE_PATH)
			(void)buf_addf(&b, "api/v%u", i);
		else
			(void)buf_addf(&b, "svc-%05u.example.com", i);
		svc->predicate = buf_detach(&b, NULL);
		if (i % 2)
			svc->cookie = xstrdup("SRVID");
		for (j = 0; j < per; j++) {
			char id[32], ip[32];

			snprintf(id, sizeof(id), "c%05u%02u", i, j);
			snprintf(ip, sizeof(ip), "10.%u.%u.%u",
				 (i * per + j) >> 16 & 255,
				 (i * per + j) >> 8 & 255, (i * per + j) & 255);
			service_put_container(svc, id, ip);
		}
	}
	service_list_sort(list);
}

static int bench_render(unsigned nr)
{
	struct render_options opts = {.frontend_bind = RENDER_DEFAULT_BIND};
	struct service_list list;
	struct buf out = BUF_INIT;
	double start, elapsed;
	size_t bytes = 0, size = 0;
	unsigned rounds = 0;

	service_list_init(&list);
	bench_fill_services(&list, nr, 5);
	start = bench_now();
	do {
		buf_reset(&out);
		render_config(&list, &opts, &out);
		size = out.len;
		bytes += out.len;
		rounds++;
		elapsed = bench_now() - start;
	} while (elapsed < 1.0 || rounds < 3);
	printf("{\"bench\":\"render\",\"services\":%u,\"config_bytes\":%zu,"
	       "\"rounds\":%u,\"ms_per_render\":%.3f,\"mb_per_s\":%.1f}\n",
	       nr, size, rounds, elapsed * 1e3 / rounds,
	       (double)bytes / elapsed / 1e6);
	buf_release(&out);
	service_list_release(&list);
	return 0;
}

static int bench_read_file(const char *path, struct buf *out)
{
	FILE *f = fopen(path, "rb");
	char chunk[65536];
	size_t n;

	if (!f) {
		fprintf(stderr, "bench_core: cannot open '%s'\n", path);
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		(void)buf_add(out, chunk, n);
	fclose(f);
	return 0;
}

static int bench_parse(const char *path)
{
	struct buf json = BUF_INIT, err = BUF_INIT, field = BUF_INIT;
	double start, elapsed;
	unsigned rounds = 0;
	int ret = 1;

	if (bench_read_file(path, &json))
		goto out;
	start = bench_now();
	do {
		struct payload p;

		if (payload_parse(&p, json.buf, json.len, &err, &field) !=
		    ST_OK) {
			fprintf(stderr, "bench_core: %s: %s\n", field.buf,
				err.buf);
			goto out;
		}
		payload_release(&p);
		rounds++;
		elapsed = bench_now() - start;
	} while (elapsed < 1.0 || rounds < 3);
	printf("{\"bench\":\"parse\",\"bytes\":%zu,\"rounds\":%u,\"ms_per_"
	       "parse\":%.3f,"
	       "\"mb_per_s\":%.1f}\n",
	       json.len, rounds, elapsed * 1e3 / rounds,
	       (double)json.len * rounds / elapsed / 1e6);
	ret = 0;
out:
	buf_release(&json);
	buf_release(&err);
	buf_release(&field);
	return ret;
}

/* Whole calls: one `seed`, then `a` and `b` alternately, `rounds` times. */
static int bench_call(const char *store, const char *seed, const char *a,
		      const char *b, unsigned rounds)
{
	struct registry_options opts = {store,
					{.frontend_bind = RENDER_DEFAULT_BIND}};
	struct buf body[3] = {BUF_INIT, BUF_INIT, BUF_INIT};
	struct buf err = BUF_INIT, field = BUF_INIT;
	struct registry *reg = NULL;
	double start, total = 0, worst = 0;
	size_t size = 0;
	unsigned i;
	int ret = 1;

	if (bench_read_file(seed, &body[0]) || bench_read_file(a, &body[1]) ||
	    bench_read_file(b, &body[2]))
		goto out;
	if (registry_new(&opts, &reg, &err) != ST_OK) {
		fprintf(stderr, "bench_core: %s\n", err.buf);
		goto out;
	}
	for (i = 0; i <= rounds; i++) {
		const struct buf *in = i ? &body[1 + i % 2] : &body[0];
		struct registry_result res;
		double took;

		registry_result_init(&res);
		start = bench_now();
		if (registry_call(reg, in->buf, in->len, 0, &res, &err,
				  &field) != ST_OK) {
			fprintf(stderr, "bench_core: call: %s %s\n", field.buf,
				err.buf);
			registry_result_release(&res);
			goto out;
		}
		took = bench_now() - start;
		size = res.config.len;
		registry_result_release(&res);
		if (!i)
			continue;
		total += took;
		if (took > worst)
			worst = took;
	}
	printf("{\"bench\":\"call\",\"rounds\":%u,\"ms_per_call\":%.3f,\"ms_"
	       "worst\":%.3f,"
	       "\"config_bytes\":%zu}\n",
	       rounds, total * 1e3 / rounds, worst * 1e3, size);
	ret = 0;
out:
	registry_free(reg);
	for (i = 0; i < 3; i++)
		buf_release(&body[i]);
	buf_release(&err);
	buf_release(&field);
	return ret;
}

int main(int argc, char **argv)
{
	xalloc_tune_for_server();
	if (argc == 3 && !strcmp(argv[1], "render"))
		return bench_render((unsigned)strtoul(argv[2], NULL, 10));
	if (argc == 3 && !strcmp(argv[1], "parse"))
		return bench_parse(argv[2]);
	if (argc == 7 && !strcmp(argv[1], "call"))
		return bench_call(argv[2], argv[3], argv[4], argv[5],
				  (unsigned)strtoul(argv[6], NULL, 10));
	fprintf(stderr, "usage: bench_core render SERVICES\n"
			"       bench_core parse FILE\n"
			"       bench_core call STORE SEED A B ROUNDS\n");
	return 2;
}
