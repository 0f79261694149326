/* The agent's pieces: show proc parsing, the services file, container
 * inspect parsing, the Docker source against a fake engine, and config apply
 * against a real master-worker HAProxy. */
#include <pthread.h>
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/docker.h"
#include "agent/file.h"
#include "agent/haproxy.h"
#include "agent/source.h"
#include "buf.h"
#include "clock.h"
#include "payload.h"
#include "xalloc.h"

extern char **environ;

static void test_procs_parse(void **state)
{
	const char *text = "#<PID>          <type>          <reloads>       "
			   "<uptime>        <version>      \n"
			   "5294            master          2 [failed: 1]   "
			   "0d00h10m16s     2.6.12\n"
			   "# workers\n"
			   "26688           worker          0               "
			   "0d00h00m02s     2.6.12\n"
			   "# old workers\n"
			   "5295            worker          1               "
			   "0d00h10m16s     2.6.12\n"
			   "# programs\n\n";
	struct haproxy_procs p;

	(void)state;
	assert_int_equal(haproxy_procs_parse(text, &p), 0);
	assert_int_equal(p.master, 5294);
	assert_int_equal(p.reloads, 2);
	assert_int_equal(p.failed, 1);
	assert_int_equal(p.nr_workers, 1);
	assert_int_equal(p.workers[0], 26688);
	haproxy_procs_release(&p);
	assert_int_equal(haproxy_procs_parse("", &p), -1);
	assert_int_equal(haproxy_procs_parse("#<PID> nothing\n# workers\n", &p),
			 -1);
}

static void test_file_parse(void **state)
{
	const char *json =
		"[{\"serviceName\":\"web\",\"port\":\"8080\",\"predicate\":"
		"\"WWW.Example.com\","
		"  "
		"\"cookie\":\"SID\",\"containers\":[{\"id\":\"b\",\"ip\":\"10."
		"0.0.2\"},"
		"  "
		"{\"id\":\"a\",\"ip\":\"10.0.0.1\"},{\"id\":\"bad\",\"ip\":"
		"\"10.0.0\"}]},"
		" {\"serviceName\":\"api\",\"port\":80,\"configMode\":\"path\","
		"\"predicate\":\"/api/v1\","
		"  \"containers\":[{\"id\":\"c\",\"ip\":\"10.0.0.3\"}]},"
		" {\"serviceName\":\"noport\",\"predicate\":\"x.example.com\"},"
		" {\"serviceName\":\"web\",\"port\":1,\"predicate\":\"dup."
		"example.com\"},"
		" {\"serviceName\":\"mode\",\"port\":1,\"configMode\":\"tcp\","
		"\"predicate\":\"m\"},"
		" 42]";
	struct service_list list;
	struct buf skipped = BUF_INIT, err = BUF_INIT;

	(void)state;
	service_list_init(&list);
	assert_int_equal(
		file_parse_services(json, strlen(json), &list, &skipped, &err),
		ST_OK);
	assert_int_equal(list.nr, 2);
	assert_string_equal(list.items[0].name, "api");
	assert_int_equal(list.items[0].mode, CONFIG_MODE_PATH);
	assert_string_equal(list.items[0].predicate, "api/v1");
	assert_string_equal(list.items[1].name, "web");
	assert_string_equal(list.items[1].predicate, "www.example.com");
	assert_int_equal(list.items[1].port, 8080);
	assert_string_equal(list.items[1].cookie, "SID");
	assert_int_equal(list.items[1].nr_containers, 2);
	assert_string_equal(list.items[1].containers[0].id, "a");
	/* One line per skipped thing: the bad container, noport, dup, mode, 42.
	 */
	assert_non_null(strstr(skipped.buf, "container=2"));
	assert_non_null(
		strstr(skipped.buf, "service=\"noport\" reason=\"no port\""));
	assert_non_null(strstr(skipped.buf, "listed twice"));
	assert_non_null(strstr(skipped.buf, "service=\"mode\""));
	assert_non_null(strstr(skipped.buf, "entry=5"));
	service_list_release(&list);

	service_list_init(&list);
	buf_reset(&skipped);
	assert_int_equal(file_parse_services("{}", 2, &list, &skipped, &err),
			 ST_INVALID);
	assert_int_equal(file_parse_services("[", 1, &list, &skipped, &err),
			 ST_INVALID);
	assert_int_equal(list.nr, 0);
	service_list_release(&list);
	buf_release(&skipped);
	buf_release(&err);
}

/* The sources' shared checks, now in payload.c: what each refusal says. */
static void test_service_text(void **state)
{
	static const struct {
		const char *name, *port, *mode, *predicate, *cookie, *want;
	} bad[] = {
		{NULL, "80", NULL, "a.b", NULL, "no service name"},
		{"a b", "80", NULL, "a.b", NULL, "invalid name"},
		{"web", "", NULL, "a.b", NULL, "no port"},
		{"web", "80x", NULL, "a.b", NULL, "invalid port"},
		{"web", "80", "tcp", "a.b", NULL,
		 "invalid config mode \"tcp\""},
		{"web", "80", "path", NULL, NULL, "no predicate"},
		{"web", "80", NULL, "a.b", "a;b", "invalid cookie name"},
	};
	struct service svc;
	struct buf err = BUF_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(&svc, 0, sizeof(svc));
		buf_reset(&err);
		assert_int_equal(payload_check_service_text(
					 &svc, bad[i].name, bad[i].port,
					 bad[i].mode, bad[i].predicate,
					 bad[i].cookie, &err),
				 -1);
		if (!strstr(err.buf, bad[i].want))
			fprintf(stderr, "case %zu: %s\n", i, err.buf);
		assert_non_null(strstr(err.buf, bad[i].want));
		service_release(&svc);
	}

	memset(&svc, 0, sizeof(svc));
	assert_int_equal(payload_check_service_text(&svc, "web", "8080", "",
						    "WWW.Example.com", "",
						    &err),
			 0);
	assert_int_equal(svc.mode, CONFIG_MODE_HOST);
	assert_string_equal(svc.predicate, "www.example.com");
	assert_null(svc.cookie);
	assert_int_equal(payload_check_container_text(&svc, "c1",
						      "::ffff:10.0.0.1", &err),
			 0);
	assert_int_equal(svc.nr_containers, 1);
	buf_reset(&err);
	assert_int_equal(payload_check_container_text(&svc, "c2", NULL, &err),
			 -1);
	assert_string_equal(err.buf, "container 'c2' has no address");
	assert_int_equal(
		payload_check_container_text(&svc, "", "10.0.0.2", &err), -1);
	assert_int_equal(
		payload_check_container_text(&svc, "c/3", "10.0.0.3", &err),
		-1);
	assert_int_equal(svc.nr_containers, 1);
	service_release(&svc);
	buf_release(&err);
}

static void test_docker_parse(void **state)
{
	const char *env =
		"{\"Id\":\"0123456789abcdef0123\",\"Config\":{\"Env\":[\"PATH=/"
		"bin\","
		"\"SERVICE_NAME=web\",\"PORT=8080\",\"PREDICATE=web.example."
		"com\","
		"\"COOKIE=SID\"],\"Labels\":{\"SERVICE_NAME=ignored\":\"x\"}},"
		"\"NetworkSettings\":{\"IPAddress\":\"\",\"Networks\":{"
		"\"zeta\":{\"IPAddress\":\"10.9.0.5\"},\"alpha\":{"
		"\"IPAddress\":\"10.8.0.5\"}}}}";
	const char *labels =
		"{\"Id\":\"feedface\",\"Config\":{\"Env\":null,\"Labels\":{"
		"\"SERVICE_NAME\":\"api\",\"PORT\":\"81\",\"CONFIG_MODE\":"
		"\"path\","
		"\"PREDICATE\":\"api\"}},\"NetworkSettings\":{\"IPAddress\":"
		"\"172.17.0.3\","
		"\"Networks\":{}}}";
	const char *noport =
		"{\"Id\":\"x\",\"Config\":{\"Env\":[\"SERVICE_NAME=web\","
		"\"PREDICATE=a.b\"]},"
		"\"NetworkSettings\":{\"IPAddress\":\"172.17.0.3\"}}";
	struct service svc;
	struct buf err = BUF_INIT;

	(void)state;
	memset(&svc, 0, sizeof(svc));
	assert_int_equal(
		docker_container_parse(env, strlen(env), NULL, &svc, &err), 0);
	assert_string_equal(svc.name, "web");
	assert_int_equal(svc.port, 8080);
	assert_string_equal(svc.cookie, "SID");
	assert_int_equal(svc.nr_containers, 1);
	assert_string_equal(svc.containers[0].id, "0123456789ab");
	assert_string_equal(svc.containers[0].ip,
			    "10.8.0.5"); /* first network by name */
	service_release(&svc);

	assert_int_equal(
		docker_container_parse(env, strlen(env), "zeta", &svc, &err),
		0);
	assert_string_equal(svc.containers[0].ip, "10.9.0.5");
	service_release(&svc);
	assert_int_equal(
		docker_container_parse(env, strlen(env), "nope", &svc, &err),
		-1);
	assert_non_null(strstr(err.buf, "nope"));
	service_release(&svc);

	assert_int_equal(docker_container_parse(labels, strlen(labels), NULL,
						&svc, &err),
			 0);
	assert_string_equal(svc.name, "api");
	assert_int_equal(svc.mode, CONFIG_MODE_PATH);
	assert_string_equal(svc.containers[0].ip, "172.17.0.3");
	service_release(&svc);

	buf_reset(&err);
	assert_int_equal(docker_container_parse(noport, strlen(noport), NULL,
						&svc, &err),
			 -1);
	assert_string_equal(err.buf, "no port");
	service_release(&svc);
	buf_release(&err);
}

/* The service options from env vars and labels, checked as in a payload. */
static void test_docker_options(void **state)
{
	const char *env =
		"{\"Id\":\"0123456789abcdef0123\",\"Config\":{\"Env\":["
		"\"SERVICE_NAME=web\",\"PORT=8080\",\"PREDICATE=web.example."
		"com\","
		"\"COOKIE=SID\",\"COOKIE_MODE=insert\",\"BALANCE=leastconn\","
		"\"HEALTH_CHECK_PATH=/healthz\",\"HEALTH_CHECK_STATUS=204\","
		"\"HEALTH_CHECK_INTERVAL=2s\",\"HEALTH_CHECK_RISE=2\","
		"\"HEALTH_CHECK_FALL=3\",\"MAXCONN=100\",\"TIMEOUT_SERVER=1m\","
		"\"TIMEOUT_TUNNEL=1h\",\"WEIGHT=0\"]},"
		"\"NetworkSettings\":{\"IPAddress\":\"10.8.0.5\"}}";
	const char *labels =
		"{\"Id\":\"feedface\",\"Config\":{\"Labels\":{"
		"\"SERVICE_NAME\":\"api\",\"PORT\":\"81\",\"PREDICATE\":"
		"\"api\","
		"\"BALANCE\":\"source\",\"WEIGHT\":\"256\"}},"
		"\"NetworkSettings\":{\"IPAddress\":\"172.17.0.3\"}}";
	const char *bad[] = {
		"\"BALANCE=random\"",
		"\"WEIGHT=257\"",
		"\"MAXCONN=0\"",
		"\"HEALTH_CHECK_PATH=/a b\"",
		"\"HEALTH_CHECK_INTERVAL=1\"",
		"\"HEALTH_CHECK_STATUS=200\"",
		"\"COOKIE_MODE=insert\"",
		"\"TIMEOUT_TUNNEL=25h\"",
	};
	struct service svc;
	struct buf err = BUF_INIT, doc = BUF_INIT;
	size_t i;

	(void)state;
	memset(&svc, 0, sizeof(svc));
	assert_int_equal(
		docker_container_parse(env, strlen(env), NULL, &svc, &err), 0);
	assert_int_equal(svc.opts.balance, BALANCE_LEASTCONN);
	assert_int_equal(svc.opts.cookie_mode, COOKIE_MODE_INSERT);
	assert_string_equal(svc.opts.check_path, "/healthz");
	assert_int_equal(svc.opts.check_status, 204);
	assert_int_equal(svc.opts.check_inter, 2000);
	assert_int_equal(svc.opts.check_rise, 2);
	assert_int_equal(svc.opts.check_fall, 3);
	assert_int_equal(svc.opts.maxconn, 100);
	assert_int_equal(svc.opts.timeout_server, 60000);
	assert_int_equal(svc.opts.timeout_tunnel, 3600000);
	assert_int_equal(svc.containers[0].weight, 0);
	service_release(&svc);
	assert_int_equal(docker_container_parse(labels, strlen(labels), NULL,
						&svc, &err),
			 0);
	assert_int_equal(svc.opts.balance, BALANCE_SOURCE);
	assert_int_equal(svc.containers[0].weight, 256);
	service_release(&svc);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		buf_reset(&doc);
		(void)buf_addf(
			&doc,
			"{\"Id\":\"x1\",\"Config\":{\"Env\":["
			"\"SERVICE_NAME=web\",\"PORT=80\","
			"\"PREDICATE=w.example\",%s]},"
			"\"NetworkSettings\":{\"IPAddress\":\"10.0.0.1\"}}",
			bad[i]);
		buf_reset(&err);
		if (docker_container_parse(doc.buf, doc.len, NULL, &svc,
					   &err) != -1)
			fail_msg("accepted %s", bad[i]);
		assert_true(err.len > 0);
		service_release(&svc);
	}
	buf_release(&doc);
	buf_release(&err);
}

/* The services file takes the candidate's option fields. */
static void test_file_options(void **state)
{
	const char *json =
		"[{\"serviceName\":\"web\",\"port\":80,\"predicate\":\"w."
		"example\","
		"\"cookie\":\"S\",\"cookieMode\":\"insert\",\"balance\":"
		"\"first\","
		"\"maxconn\":5,\"timeoutServer\":\"30s\",\"timeoutTunnel\":"
		"\"2m\","
		"\"healthCheck\":{\"path\":\"/h\",\"expectStatus\":200,"
		"\"interval\":\"1s\",\"rise\":1,\"fall\":2},"
		"\"containers\":[{\"id\":\"a\",\"ip\":\"10.0.0.1\",\"weight\":"
		"7},"
		"{\"id\":\"b\",\"ip\":\"10.0.0.2\",\"weight\":300},"
		"{\"id\":\"c\",\"ip\":\"10.0.0.3\"}]},"
		"{\"serviceName\":\"bad\",\"port\":80,\"predicate\":\"b."
		"example\","
		"\"balance\":\"nope\"},"
		"{\"serviceName\":\"hc\",\"port\":80,\"predicate\":\"h."
		"example\","
		"\"healthCheck\":{\"expectStatus\":200}}]";
	struct service_list list;
	struct buf skipped = BUF_INIT, err = BUF_INIT;
	const struct service *svc;

	(void)state;
	service_list_init(&list);
	assert_int_equal(
		file_parse_services(json, strlen(json), &list, &skipped, &err),
		ST_OK);
	assert_int_equal(list.nr, 1);
	svc = &list.items[0];
	assert_int_equal(svc->opts.balance, BALANCE_FIRST);
	assert_int_equal(svc->opts.cookie_mode, COOKIE_MODE_INSERT);
	assert_int_equal(svc->opts.maxconn, 5);
	assert_int_equal(svc->opts.timeout_server, 30000);
	assert_int_equal(svc->opts.timeout_tunnel, 120000);
	assert_string_equal(svc->opts.check_path, "/h");
	assert_int_equal(svc->opts.check_fall, 2);
	assert_int_equal(svc->nr_containers, 2);
	assert_int_equal(svc->containers[0].weight, 7);
	assert_int_equal(svc->containers[1].weight, WEIGHT_UNSET);
	assert_non_null(strstr(skipped.buf, "container=1"));
	assert_non_null(strstr(skipped.buf, "invalid balance"));
	assert_non_null(strstr(skipped.buf, "needs a 'path'"));
	service_list_release(&list);
	buf_release(&skipped);
	buf_release(&err);
}

static void write_string(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

/* The file source through its ops: changes are changes of bytes. */
static void test_file_source(void **state)
{
	const char *one = "[{\"serviceName\":\"web\",\"port\":80,"
			  "\"predicate\":\"w.example.com\",\"containers\":"
			  "[{\"id\":\"a\",\"ip\":\"10.0.0.1\"}]}]";
	const char *two = "[{\"serviceName\":\"web\",\"port\":81,"
			  "\"predicate\":\"w.example.com\"}]";
	char dir[] = "/tmp/lr-agent-file-XXXXXX", path[64], tmp[72];
	struct source_options opts = {NULL, NULL, 1000};
	struct source *src = NULL;
	struct service_list list;
	struct buf err = BUF_INIT;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/services.json", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(file_source_new("", &opts, &src, &err), ST_INVALID);
	assert_null(src);
	assert_int_equal(file_source_new(path, &opts, &src, &err), ST_OK);
	assert_string_equal(src->ops->name, "file");

	/* Not there yet: worth a retry, and no change to report. */
	service_list_init(&list);
	assert_int_equal(source_load(src, &list, &err), ST_NOT_FOUND);
	assert_non_null(strstr(err.buf, "does not exist"));
	assert_int_equal(source_changed(src), 0);

	write_string(path, one);
	assert_int_equal(source_changed(src), 1);
	assert_int_equal(source_load(src, &list, &err), ST_OK);
	assert_int_equal(list.nr, 1);
	assert_int_equal(list.items[0].nr_containers, 1);
	service_list_release(&list);
	assert_int_equal(source_changed(src), 0);

	/* The same bytes in a new file: no change. Other bytes: a change. */
	write_string(tmp, one);
	assert_int_equal(rename(tmp, path), 0);
	assert_int_equal(source_changed(src), 0);
	write_string(tmp, two);
	assert_int_equal(rename(tmp, path), 0);
	assert_int_equal(source_changed(src), 1);
	service_list_init(&list);
	assert_int_equal(source_load(src, &list, &err), ST_OK);
	assert_int_equal(list.items[0].port, 81);
	service_list_release(&list);

	/* Not JSON: refused as a whole, and `out` stays empty. */
	write_string(path, "[");
	service_list_init(&list);
	assert_int_equal(source_load(src, &list, &err), ST_INVALID);
	assert_int_equal(list.nr, 0);
	service_list_release(&list);

	/* After a resync the next look reports a change. */
	source_resync(src);
	assert_int_equal(source_changed(src), 1);

	source_free(src);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
	buf_release(&err);
}

/* A scratch folder with a master-worker HAProxy on a free loopback port. */
struct hap {
	char dir[64];
	char cfg[128];
	char sock[128];
	int port;
	pid_t pid;
};

static int free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void config_text(struct buf *out, int port, const char *extra)
{
	buf_reset(out);
	buf_addf(out,
		 "global\n    maxconn 100\n\ndefaults\n    mode http\n"
		 "    timeout connect 1s\n    timeout client 5s\n    timeout "
		 "server 5s\n\n"
		 "frontend http\n    bind 127.0.0.1:%d\n%s",
		 port, extra);
}

static void write_text(const char *path, const struct buf *b)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(b->buf, 1, b->len, f), b->len);
	assert_int_equal(fclose(f), 0);
}

/* An apply's status, with its message when it is not the one expected. */
static void expect_status(enum status got, enum status want,
			  const struct buf *err)
{
	if (got != want)
		fail_msg("status %d, not %d: %s", (int)got, (int)want,
			 err->buf ? err->buf : "");
}

static int hap_setup(void **state)
{
	struct hap *h = xcalloc(1, sizeof(*h));
	struct haproxy_procs p;
	struct buf text = BUF_INIT, err = BUF_INIT;
	posix_spawn_file_actions_t fa;
	char *argv[7], log[160];
	int i;

	snprintf(h->dir, sizeof(h->dir), "/tmp/lr-agent-unit-XXXXXX");
	assert_non_null(mkdtemp(h->dir));
	snprintf(h->cfg, sizeof(h->cfg), "%s/haproxy.cfg", h->dir);
	snprintf(h->sock, sizeof(h->sock), "%s/master.sock", h->dir);
	h->port = free_port();
	config_text(&text, h->port, "");
	write_text(h->cfg, &text);
	argv[0] = (char *)"haproxy";
	argv[1] = (char *)"-W";
	argv[2] = (char *)"-S";
	argv[3] = h->sock;
	argv[4] = (char *)"-f";
	argv[5] = h->cfg;
	argv[6] = NULL;
	/* HAProxy's own messages go to a file in the scratch folder. */
	snprintf(log, sizeof(log), "%s/haproxy.log", h->dir);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, log,
					 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	assert_int_equal(
		posix_spawnp(&h->pid, "haproxy", &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	for (i = 0; i < 200; i++) {
		buf_reset(&err);
		if (haproxy_show_proc(h->sock, 1000, &p, &err) == ST_OK) {
			haproxy_procs_release(&p);
			break;
		}
		usleep(25000);
	}
	assert_true(i < 200);
	buf_release(&text);
	buf_release(&err);
	*state = h;
	return 0;
}

static int hap_teardown(void **state)
{
	struct hap *h = *state;
	char cmd[256];
	int status;

	kill(h->pid, SIGTERM);
	waitpid(h->pid, &status, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", h->dir);
	free(h);
	return 0;
}

static void read_text(const char *path, struct buf *out)
{
	struct buf err = BUF_INIT;

	buf_reset(out);
	assert_int_equal(buf_read_file(out, path, &err), ST_OK);
	buf_release(&err);
}

static void test_apply(void **state)
{
	struct hap *h = *state;
	struct haproxy_options opts = {
		.config = h->cfg,
		.master_socket = h->sock,
		.bin = "haproxy",
		.keep = 2,
		.timeout_ms = 10000,
		.check_timeout_ms = 10000,
		.check_ms_per_mb = 12000,
	};
	struct buf cfg = BUF_INIT, live = BUF_INIT, err = BUF_INIT,
		   path = BUF_INIT;
	struct haproxy_procs before, after;
	enum haproxy_outcome outcome;
	struct stat st1, st2;
	int busy, one = 1;
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	/* The same bytes: nothing happens, not even a write. */
	read_text(h->cfg, &cfg);
	assert_int_equal(stat(h->cfg, &st1), 0);
	expect_status(haproxy_apply(&opts, cfg.buf, cfg.len, &outcome, &err),
		      ST_OK, &err);
	assert_int_equal(outcome, HAPROXY_UNCHANGED);
	assert_int_equal(stat(h->cfg, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);

	/* A new config: written, reloaded, a new worker up, history kept. */
	assert_int_equal(haproxy_show_proc(h->sock, 5000, &before, &err),
			 ST_OK);
	config_text(&cfg, h->port,
		    "    http-request return status 200 content-type "
		    "text/plain string ok\n");
	expect_status(haproxy_apply(&opts, cfg.buf, cfg.len, &outcome, &err),
		      ST_OK, &err);
	assert_int_equal(outcome, HAPROXY_APPLIED);
	assert_int_equal(haproxy_show_proc(h->sock, 5000, &after, &err), ST_OK);
	assert_int_equal(after.reloads, before.reloads + 1);
	assert_int_not_equal(after.workers[0], before.workers[0]);
	haproxy_procs_release(&before);
	haproxy_procs_release(&after);
	read_text(h->cfg, &live);
	assert_string_equal(live.buf, cfg.buf);
	buf_addf(&path, "%s.1", h->cfg);
	read_text(path.buf, &live);
	assert_string_equal(live.buf, cfg.buf);

	/* Refused by -c: the live file keeps the last good config. */
	buf_reset(&err);
	expect_status(
		haproxy_apply(&opts, "global\n    bogus\n", 16, &outcome, &err),
		ST_INVALID, &err);
	assert_int_equal(outcome, HAPROXY_REJECTED);
	if (!strstr(err.buf, "bogus"))
		fprintf(stderr, "err: %s\n", err.buf);
	assert_non_null(strstr(err.buf, "bogus"));
	read_text(h->cfg, &live);
	assert_string_equal(live.buf, cfg.buf);

	/* Accepted by -c, but the port is taken: rolled back and reloaded. */
	busy = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(busy, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(busy, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(busy, 1), 0);
	assert_int_equal(getsockname(busy, (struct sockaddr *)&sa, &len), 0);
	buf_reset(&path);
	buf_addf(&path, "    bind 127.0.0.1:%d\n", ntohs(sa.sin_port));
	read_text(h->cfg, &live);
	config_text(&cfg, h->port, path.buf);
	buf_reset(&err);
	assert_int_not_equal(
		haproxy_apply(&opts, cfg.buf, cfg.len, &outcome, &err), ST_OK);
	assert_int_equal(outcome, HAPROXY_ROLLED_BACK);
	close(busy);
	read_text(h->cfg, &cfg);
	assert_string_equal(cfg.buf, live.buf);

	/* No master to reload: nothing is touched. */
	opts.master_socket = "/nonexistent/master.sock";
	opts.timeout_ms = 2000;
	config_text(&cfg, h->port, "    http-request return status 204\n");
	expect_status(haproxy_apply(&opts, cfg.buf, cfg.len, &outcome, &err),
		      ST_UNAVAILABLE, &err);
	assert_int_equal(outcome, HAPROXY_DEFERRED);
	read_text(h->cfg, &cfg);
	assert_string_equal(cfg.buf, live.buf);

	buf_release(&cfg);
	buf_release(&live);
	buf_release(&err);
	buf_release(&path);
}

/* Whether `dir` holds a file whose name contains `part`. */
static int dir_has(const char *dir, const char *part)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strstr(e->d_name, part))
			found = 1;
	closedir(d);
	return found;
}

/* A config and its maps go live, are refused and are rolled back as one. */
static void test_apply_set(void **state)
{
	struct hap *h = *state;
	struct haproxy_options opts = {
		.config = h->cfg,
		.master_socket = h->sock,
		.bin = "haproxy",
		.timeout_ms = 10000,
		.check_timeout_ms = 10000,
	};
	struct buf cfg = BUF_INIT, live = BUF_INIT, err = BUF_INIT,
		   rule = BUF_INIT, ips = BUF_INIT, hosts = BUF_INIT,
		   maps = BUF_INIT, good = BUF_INIT;
	struct haproxy_file files[2];
	enum haproxy_outcome outcome;
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int busy, one = 1;

	/* map_ip refuses a key that is no address: -c reads the maps. */
	buf_addf(&maps, "%s/maps", h->dir);
	buf_addf(&ips, "%s/ips.map", maps.buf);
	buf_addf(&hosts, "%s/hosts.map", maps.buf);
	buf_addf(&rule, "    http-request set-var(txn.a) src,map_ip(%s)\n",
		 ips.buf);
	config_text(&cfg, h->port, rule.buf);
	files[0] = (struct haproxy_file){ips.buf, "127.0.0.1 x\n", 12};
	files[1] = (struct haproxy_file){hosts.buf, "", 0};
	expect_status(haproxy_apply_set(&opts, cfg.buf, cfg.len, files, 1,
					&outcome, &err),
		      ST_OK, &err);
	assert_int_equal(outcome, HAPROXY_APPLIED);
	read_text(ips.buf, &live);
	assert_string_equal(live.buf, "127.0.0.1 x\n");
	read_text(h->cfg, &live);
	assert_string_equal(live.buf, cfg.buf);
	assert_false(dir_has(maps.buf, ".tmp."));
	assert_false(dir_has(h->dir, ".check."));

	/* The same set: nothing done. A map alone changed: applied. */
	expect_status(haproxy_apply_set(&opts, cfg.buf, cfg.len, files, 1,
					&outcome, &err),
		      ST_OK, &err);
	assert_int_equal(outcome, HAPROXY_UNCHANGED);
	files[0] = (struct haproxy_file){ips.buf, "127.0.0.2 y\n", 12};
	expect_status(haproxy_apply_set(&opts, cfg.buf, cfg.len, files, 1,
					&outcome, &err),
		      ST_OK, &err);
	assert_int_equal(outcome, HAPROXY_APPLIED);
	read_text(ips.buf, &good);
	assert_string_equal(good.buf, "127.0.0.2 y\n");

	/* A map HAProxy refuses: nothing of the set goes live. */
	files[0] = (struct haproxy_file){ips.buf, "not-an-ip x\n", 12};
	buf_reset(&err);
	expect_status(haproxy_apply_set(&opts, cfg.buf, cfg.len, files, 1,
					&outcome, &err),
		      ST_INVALID, &err);
	assert_int_equal(outcome, HAPROXY_REJECTED);
	assert_non_null(strstr(err.buf, "not-an-ip"));
	read_text(ips.buf, &live);
	assert_string_equal(live.buf, good.buf);
	assert_false(dir_has(maps.buf, ".tmp."));

	/* Accepted by -c, but the port is taken: the config, the changed map
	 * and the new one all go back (the new one away). */
	busy = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(busy, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(busy, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(busy, 1), 0);
	assert_int_equal(getsockname(busy, (struct sockaddr *)&sa, &len), 0);
	buf_addf(&rule,
		 "    http-request set-var(txn.b) req.hdr(host),map_str(%s)\n"
		 "    bind 127.0.0.1:%d\n",
		 hosts.buf, ntohs(sa.sin_port));
	read_text(h->cfg, &good);
	config_text(&cfg, h->port, rule.buf);
	files[0] = (struct haproxy_file){ips.buf, "127.0.0.3 z\n", 12};
	files[1] = (struct haproxy_file){hosts.buf, "a.example.com b\n", 16};
	buf_reset(&err);
	assert_int_not_equal(haproxy_apply_set(&opts, cfg.buf, cfg.len, files,
					       2, &outcome, &err),
			     ST_OK);
	close(busy);
	assert_int_equal(outcome, HAPROXY_ROLLED_BACK);
	read_text(h->cfg, &live);
	assert_string_equal(live.buf, good.buf);
	read_text(ips.buf, &live);
	assert_string_equal(live.buf, "127.0.0.2 y\n");
	assert_int_not_equal(access(hosts.buf, F_OK), 0);
	assert_false(dir_has(maps.buf, ".tmp."));

	buf_release(&cfg);
	buf_release(&live);
	buf_release(&err);
	buf_release(&rule);
	buf_release(&ips);
	buf_release(&hosts);
	buf_release(&maps);
	buf_release(&good);
}

/* A local failure leaves HAProxy alone and says so; it is no reload failure. */
static void test_apply_local_error(void **state)
{
	struct hap *h = *state;
	struct haproxy_options opts = {
		.config = h->cfg,
		.master_socket = h->sock,
		.bin = "haproxy",
		.timeout_ms = 5000,
		.check_timeout_ms = 10000,
	};
	struct buf cfg = BUF_INIT, live = BUF_INIT, err = BUF_INIT,
		   path = BUF_INIT;
	struct haproxy_procs before, after;
	enum haproxy_outcome outcome;

	read_text(h->cfg, &live);
	assert_int_equal(haproxy_show_proc(h->sock, 5000, &before, &err),
			 ST_OK);
	config_text(&cfg, h->port, "    http-request return status 204\n");

	/* The folder of the live file is gone: no temp file can be written. */
	buf_addf(&path, "%s/gone/haproxy.cfg", h->dir);
	opts.config = path.buf;
	buf_reset(&err);
	expect_status(haproxy_apply(&opts, cfg.buf, cfg.len, &outcome, &err),
		      ST_UNAVAILABLE, &err);
	assert_int_equal(outcome, HAPROXY_LOCAL_ERROR);
	assert_string_equal(haproxy_outcome_name(outcome), "local_error");
	assert_non_null(strstr(err.buf, "HAProxy not touched"));
	assert_non_null(strstr(err.buf, "gone"));

	/* The live file cannot be read (it is a folder). */
	opts.config = h->dir;
	buf_reset(&err);
	expect_status(haproxy_apply(&opts, cfg.buf, cfg.len, &outcome, &err),
		      ST_UNAVAILABLE, &err);
	assert_int_equal(outcome, HAPROXY_LOCAL_ERROR);
	assert_non_null(strstr(err.buf, "HAProxy not touched"));

	/* Neither reloaded HAProxy nor changed its file. */
	assert_int_equal(haproxy_show_proc(h->sock, 5000, &after, &err), ST_OK);
	assert_int_equal(after.reloads, before.reloads);
	read_text(h->cfg, &cfg);
	assert_string_equal(cfg.buf, live.buf);
	haproxy_procs_release(&before);
	haproxy_procs_release(&after);
	buf_release(&cfg);
	buf_release(&live);
	buf_release(&err);
	buf_release(&path);
}

/* An executable script at `path` that sleeps `seconds`, then succeeds. */
static void write_sleeper(const char *path, const char *seconds)
{
	struct buf text = BUF_INIT;

	buf_addf(&text, "#!/bin/sh\nexec sleep %s\n", seconds);
	write_text(path, &text);
	assert_int_equal(chmod(path, 0755), 0);
	buf_release(&text);
}

/* The `-c` limit grows with the size; running out of it is its own outcome. */
static void test_check_timeout(void **state)
{
	struct hap *h = *state;
	struct haproxy_options opts = {
		.config = h->cfg,
		.master_socket = h->sock,
		.bin = "haproxy",
		.timeout_ms = 5000,
		.check_timeout_ms = 10000,
		.check_ms_per_mb = 12000,
	};
	struct buf cfg = BUF_INIT, live = BUF_INIT, err = BUF_INIT,
		   bin = BUF_INIT, tmp = BUF_INIT;
	struct haproxy_procs before, after;
	enum haproxy_outcome outcome;
	uint64_t t0;

	(void)state;
	/* 10 s, plus 12 s a MB: 30k services (about 6 MB) get 82 s. */
	assert_int_equal(haproxy_check_timeout_ms(&opts, 0), 10000);
	assert_int_equal(haproxy_check_timeout_ms(&opts, 1 << 20), 22000);
	assert_int_equal(haproxy_check_timeout_ms(&opts, 1), 10001);
	assert_true(haproxy_check_timeout_ms(&opts, (size_t)6 << 20) >= 80000);
	assert_true(haproxy_check_timeout_ms(&opts, (size_t)20 << 20) >=
		    240000);
	opts.check_ms_per_mb = 4000000000u;
	assert_int_equal(haproxy_check_timeout_ms(&opts, (size_t)64 << 20),
			 HAPROXY_CHECK_TIMEOUT_MAX_MS);

	/* A `haproxy -c` that takes 1.5 s: a small limit kills it. */
	buf_addf(&bin, "%s/slow-haproxy", h->dir);
	write_sleeper(bin.buf, "1.5");
	opts.bin = bin.buf;
	opts.check_timeout_ms = 300;
	opts.check_ms_per_mb = 0;
	read_text(h->cfg, &live);
	assert_int_equal(haproxy_show_proc(h->sock, 5000, &before, &err),
			 ST_OK);
	config_text(&cfg, h->port, "    http-request return status 204\n");
	t0 = clock_now_ms();
	buf_reset(&err);
	expect_status(haproxy_apply(&opts, cfg.buf, cfg.len, &outcome, &err),
		      ST_INVALID, &err);
	assert_true(clock_now_ms() - t0 < 1400);
	assert_int_equal(outcome, HAPROXY_CHECK_TIMEOUT);
	assert_string_equal(haproxy_outcome_name(outcome), "check_timeout");
	assert_non_null(strstr(err.buf, "took longer than 300 ms"));
	read_text(h->cfg, &tmp);
	assert_string_equal(tmp.buf, live.buf);
	assert_int_equal(haproxy_show_proc(h->sock, 5000, &after, &err), ST_OK);
	assert_int_equal(after.reloads, before.reloads);
	haproxy_procs_release(&before);
	haproxy_procs_release(&after);
	/* No temp file and no .rejected: the config was not refused. */
	buf_reset(&tmp);
	buf_addf(&tmp, "%s/.haproxy.cfg.tmp.%ld", h->dir, (long)getpid());
	assert_int_not_equal(access(tmp.buf, F_OK), 0);
	buf_reset(&tmp);
	buf_addf(&tmp, "%s.rejected", h->cfg);
	assert_int_not_equal(access(tmp.buf, F_OK), 0);

	/* The same check with an allowance for the size passes: a 256 KB
	 * config at 8 s a MB gets 0.3 + 2 s. */
	buf_reset(&cfg);
	config_text(&cfg, h->port, "");
	while (cfg.len < (256u << 10))
		buf_addstr(&cfg,
			   "    # padding, as a large config has lines\n");
	opts.check_ms_per_mb = 8000;
	buf_reset(&err);
	assert_int_equal(haproxy_check_timeout_ms(&opts, cfg.len) >= 2300, 1);
	write_text(tmp.buf, &cfg);
	assert_int_equal(haproxy_check(&opts, tmp.buf, &err), ST_OK);
	unlink(tmp.buf);

	buf_release(&cfg);
	buf_release(&live);
	buf_release(&err);
	buf_release(&bin);
	buf_release(&tmp);
}

/*
 * A fake Docker engine on a unix socket: /containers/json lists the ids in
 * `ids`, /containers/ID/json inspects them (ids starting with 'v' valid, the
 * others without a port), /events is refused so the stream never resyncs.
 */
struct fake_engine {
	char path[128];
	int fd;
	pthread_t thread;
	pthread_mutex_t lock;
	const char *ids[64];
	size_t nr_ids;
	unsigned inspects;
	int stop;
};

static void fake_answer(int fd, int code, const char *body)
{
	struct buf out = BUF_INIT;
	size_t off = 0;

	buf_addf(&out,
		 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
		 code, strlen(body), body);
	while (off < out.len) {
		ssize_t n = write(fd, out.buf + off, out.len - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	buf_release(&out);
}

static void fake_serve(struct fake_engine *e, int fd)
{
	struct buf req = BUF_INIT, body = BUF_INIT;
	char chunk[4096], path[512];
	size_t i;

	while (!strstr(req.buf, "\r\n\r\n")) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n <= 0)
			goto out;
		buf_add(&req, chunk, (size_t)n);
	}
	if (sscanf(req.buf, "GET %511s", path) != 1) {
		fake_answer(fd, 400, "{}");
		goto out;
	}
	pthread_mutex_lock(&e->lock);
	if (!strcmp(path, "/containers/json")) {
		buf_addch(&body, '[');
		for (i = 0; i < e->nr_ids; i++)
			buf_addf(&body,
				 "%s{\"Id\":\"%s\",\"Names\":[\"/%s\"],"
				 "\"Created\":%zu}",
				 i ? "," : "", e->ids[i], e->ids[i], i);
		buf_addch(&body, ']');
	} else if (!strncmp(path, "/containers/", 12)) {
		char *id = path + 12, *slash = strchr(id, '/');

		if (slash)
			*slash = '\0';
		e->inspects++;
		buf_addf(
			&body,
			"{\"Id\":\"%s\",\"Config\":{\"Env\":["
			"\"SERVICE_NAME=s%s\",%s\"PREDICATE=%s.example.com\"]"
			"},\"NetworkSettings\":{\"IPAddress\":\"10.0.0.%zu\"}}",
			id, id, id[0] == 'v' ? "\"PORT=80\"," : "", id,
			strlen(id));
	}
	pthread_mutex_unlock(&e->lock);
	if (body.len)
		fake_answer(fd, 200, body.buf);
	else
		fake_answer(fd, 404, "{\"message\":\"no\"}");
out:
	buf_release(&req);
	buf_release(&body);
}

static void *fake_engine_thread(void *arg)
{
	struct fake_engine *e = arg;

	for (;;) {
		int fd = accept(e->fd, NULL, NULL);

		if (fd < 0)
			continue;
		pthread_mutex_lock(&e->lock);
		if (e->stop) {
			pthread_mutex_unlock(&e->lock);
			close(fd);
			break;
		}
		pthread_mutex_unlock(&e->lock);
		fake_serve(e, fd);
		close(fd);
	}
	return NULL;
}

static void fake_engine_start(struct fake_engine *e, const char *dir)
{
	struct sockaddr_un sa;

	memset(e, 0, sizeof(*e));
	pthread_mutex_init(&e->lock, NULL);
	snprintf(e->path, sizeof(e->path), "%s/engine.sock", dir);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, e->path, strlen(e->path) + 1);
	e->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(e->fd >= 0);
	assert_int_equal(bind(e->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(e->fd, 16), 0);
	assert_int_equal(
		pthread_create(&e->thread, NULL, fake_engine_thread, e), 0);
}

static void fake_engine_stop(struct fake_engine *e)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	pthread_mutex_lock(&e->lock);
	e->stop = 1;
	pthread_mutex_unlock(&e->lock);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, e->path, strlen(e->path) + 1);
	/* Wake the accept() up. */
	(void)connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	pthread_join(e->thread, NULL);
	close(fd);
	close(e->fd);
	pthread_mutex_destroy(&e->lock);
}

static void fake_engine_list(struct fake_engine *e, const char *const *ids,
			     size_t n)
{
	pthread_mutex_lock(&e->lock);
	memcpy(e->ids, ids, n * sizeof(*ids));
	e->nr_ids = n;
	pthread_mutex_unlock(&e->lock);
}

/* What the source remembers about containers follows the running ones. */
static void test_docker_prune(void **state)
{
	static const char *const three[] = {"vaaa", "vbbb", "xbad"};
	static const char *const one[] = {"vbbb"};
	static const char *const back[] = {"vbbb", "xbad"};
	char dir[] = "/tmp/lr-agent-docker-XXXXXX", cmd[128];
	struct source_options opts = {NULL, NULL, 2000};
	struct fake_engine e;
	struct source *src = NULL;
	struct service_list list;
	struct buf err = BUF_INIT;
	unsigned inspects;
	int round;

	(void)state;
	assert_non_null(mkdtemp(dir));
	fake_engine_start(&e, dir);
	assert_int_equal(docker_source_new(e.path, &opts, &src, &err), ST_OK);
	assert_string_equal(src->ops->name, "docker");

	fake_engine_list(&e, three, 3);
	service_list_init(&list);
	assert_int_equal(source_load(src, &list, &err), ST_OK);
	assert_int_equal(list.nr, 2); /* xbad has no port: skipped */
	assert_int_equal(docker_source_nr_seen(src), 3);
	service_list_release(&list);

	/* Containers come and go many times: the lists do not grow. */
	for (round = 0; round < 20; round++) {
		fake_engine_list(&e, round % 2 ? three : one,
				 round % 2 ? 3 : 1);
		service_list_init(&list);
		assert_int_equal(source_load(src, &list, &err), ST_OK);
		assert_int_equal(list.nr, round % 2 ? 2 : 1);
		assert_int_equal(docker_source_nr_seen(src), round % 2 ? 3 : 1);
		service_list_release(&list);
	}

	/* What is still listed is not inspected again. */
	pthread_mutex_lock(&e.lock);
	inspects = e.inspects;
	pthread_mutex_unlock(&e.lock);
	fake_engine_list(&e, back, 2);
	service_list_init(&list);
	assert_int_equal(source_load(src, &list, &err), ST_OK);
	assert_int_equal(list.nr, 1);
	assert_string_equal(list.items[0].name, "svbbb");
	assert_int_equal(docker_source_nr_seen(src), 2);
	service_list_release(&list);
	pthread_mutex_lock(&e.lock);
	assert_int_equal(e.inspects, inspects);
	pthread_mutex_unlock(&e.lock);

	source_free(src);
	fake_engine_stop(&e);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", dir);
	buf_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_procs_parse),
		cmocka_unit_test(test_file_parse),
		cmocka_unit_test(test_service_text),
		cmocka_unit_test(test_docker_parse),
		cmocka_unit_test(test_docker_options),
		cmocka_unit_test(test_file_options),
		cmocka_unit_test(test_file_source),
		cmocka_unit_test(test_docker_prune),
		cmocka_unit_test_setup_teardown(test_apply, hap_setup,
						hap_teardown),
		cmocka_unit_test_setup_teardown(test_apply_set, hap_setup,
						hap_teardown),
		cmocka_unit_test_setup_teardown(test_apply_local_error,
						hap_setup, hap_teardown),
		cmocka_unit_test_setup_teardown(test_check_timeout, hap_setup,
						hap_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
