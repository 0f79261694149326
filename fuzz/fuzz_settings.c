/*
 * libFuzzer harness: settings documents. Every accepted document is a fixed
 * point of settings_canonical(), its effective settings render a config that
 * the grammar of check.c accepts value by value, and errors are printable.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "render.h"
#include "settings.h"
#include "xalloc.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_add(struct service_list *l, const char *name,
		     enum config_mode mode, const char *predicate)
{
	struct service *s = service_list_append(l);

	s->name = xstrdup(name);
	s->mode = mode;
	s->predicate = xstrdup(predicate);
	s->port = 8080;
	service_put_container(s, "c1", "10.0.0.1");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf err = BUF_INIT, cfg = BUF_INIT;
	struct service_list l;
	struct settings s;
	char *canon = NULL, *again = NULL;
	size_t i;

	settings_init(&s);
	service_list_init(&l);
	if (settings_canonical((const char *)data, size, &canon, &err) !=
	    ST_OK) {
		for (i = 0; i < err.len; i++)
			if ((unsigned char)err.buf[i] < 0x20)
				check_fail("error has byte 0x%02x: %s",
					   (unsigned char)err.buf[i], err.buf);
		goto out;
	}
	if (settings_canonical(canon, strlen(canon), &again, &err) != ST_OK ||
	    strcmp(canon, again))
		check_fail("canonical form is not a fixed point: %s", canon);
	if (settings_effective(canon, NULL, NULL, &s, &err) != ST_OK)
		goto out; /* a rule across keys */
	fuzz_add(&l, "api", CONFIG_MODE_PATH, "api");
	fuzz_add(&l, "web", CONFIG_MODE_HOST, "www.example.com");
	{
		struct render_options opts = {
			.frontend_bind = RENDER_DEFAULT_BIND, .settings = &s};

		render_config(&l, &opts, &cfg);
	}
	check_config_settings(cfg.buf, cfg.len, &l, RENDER_DEFAULT_BIND, &s);
	{
		struct render_options opts = {.frontend_bind =
						      RENDER_DEFAULT_BIND,
					      .settings = &s,
					      .form = RENDER_FORM_MAP};

		buf_reset(&cfg);
		render_config(&l, &opts, &cfg);
	}
	check_config_form(cfg.buf, cfg.len, &l, RENDER_DEFAULT_BIND, &s,
			  RENDER_FORM_MAP);
out:
	free(canon);
	free(again);
	settings_release(&s);
	service_list_release(&l);
	buf_release(&err);
	buf_release(&cfg);
	return 0;
}
