/* testhooks: see testhooks.h. Compiled to nothing without HALE_TEST_HOOKS. */
#include "testhooks.h"

#ifdef HALE_TEST_HOOKS

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "http.h"

#define BLOCK_MAX_MS 60000

static void h_block(hale_req *r, void *arg) {
    (void)arg;
    long ms = 1000;
    hale_buf v;
    hale_buf_init(&v);
    int found = hale_query_get(hale_req_query(r), "ms", &v);
    if (found < 0) {
        hale_buf_free(&v);
        hale_resp_error(r, 400, "bad_query", "ms must be a number of milliseconds");
        return;
    }
    if (found == 1) {
        char *end = NULL;
        errno = 0;
        ms = strtol(v.data, &end, 10);
        if (errno || end == v.data || *end || ms < 1 || ms > BLOCK_MAX_MS) {
            hale_buf_free(&v);
            hale_resp_error(r, 400, "bad_query", "ms must be between 1 and 60000");
            return;
        }
    }
    hale_buf_free(&v);
    /* A plain sleep on the worker thread: exactly what a stuck handler does. */
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    char body[48];
    int n = snprintf(body, sizeof body, "{\"blocked_ms\":%ld}\n", ms);
    hale_resp_send(r, 200, "application/json", body, (size_t)n);
}

int hale_testhooks_register(hale_router *r, char *err, size_t errlen) {
    hale_route rt = {.method = "GET", .tmpl = "/debug/block", .fn = h_block, .arg = NULL};
    return hale_router_add(r, &rt, err, errlen);
}

#else
typedef int hale_testhooks_empty_unit; /* ISO C wants a non-empty unit */
#endif
