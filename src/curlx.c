/* Shared libcurl plumbing: global init and the write-into-buffer callback. */
#include "curlx.h"

#include <curl/curl.h>
#include <pthread.h>

#include "buf.h"
#include "xalloc.h"
#include "banned.h"

static pthread_once_t curlx_once = PTHREAD_ONCE_INIT;

static void curlx_init_once(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		BUG("curl_global_init failed");
}

void curlx_global_init(void)
{
	pthread_once(&curlx_once, curlx_init_once);
}

size_t curlx_write_buf(char *data, size_t size, size_t nmemb, void *buf)
{
	if (buf_add(buf, data, size * nmemb))
		return 0;
	return size * nmemb;
}
