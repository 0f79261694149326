/* What every libcurl user here shares: one global init, one write callback. */
#ifndef CURLX_H
#define CURLX_H

#include <stddef.h>

/* curl_global_init() once per process, from any thread (pthread_once). */
void curlx_global_init(void);

/*
 * CURLOPT_WRITEFUNCTION that appends to the `struct buf` given as
 * CURLOPT_WRITEDATA; over the buffer's cap it returns 0, so the transfer
 * fails with CURLE_WRITE_ERROR instead of keeping a cut body.
 */
size_t curlx_write_buf(char *data, size_t size, size_t nmemb, void *buf);

#endif
