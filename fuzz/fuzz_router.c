/* libFuzzer target: the router, percent-decoding, query parsing and key
 * validation — everything a request path goes through before a handler.
 * Input: "METHOD PATH?QUERY" (first byte picks the method). R: Y2 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "kv_api.h"
#include "router.h"

static void noop(struct hale_req *r, void *arg) { (void)r; (void)arg; }

static hale_router *router(void) {
    static hale_router *r;
    if (r) return r;
    r = hale_router_new();
    const char *tmpl[] = {"/v1/kv", "/v1/kv/{key}", "/health", "/health/liveness",
                          "/a/{x}/b/{y}", "/"};
    const char *meth[] = {"GET", "PUT", "DELETE"};
    for (size_t i = 0; i < sizeof tmpl / sizeof *tmpl; i++)
        for (size_t j = 0; j < 3; j++) {
            hale_route rt = {.method = meth[j], .tmpl = tmpl[i], .fn = noop};
            if (hale_router_add(r, &rt, NULL, 0) != 0) abort();
        }
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const methods[] = {"GET", "HEAD", "PUT", "DELETE", "POST", "BREW"};
    if (size < 1) return 0;
    const char *method = methods[data[0] % 6];
    char *s = malloc(size);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    size_t n = strlen(s);
    const char *q = memchr(s, '?', n);
    size_t plen = q ? (size_t)(q - s) : n;
    hale_route_match m;
    hale_match_result mr = hale_router_match(router(), method, s, plen, &m);
    hale_buf b;
    hale_buf_init(&b);
    if (mr == HALE_MATCH_OK) {
        for (size_t i = 0; i < m.nparams; i++) {
            if (m.param_ptr[i] < s || m.param_ptr[i] + m.param_len[i] > s + plen) abort();
            if (hale_percent_decode(m.param_ptr[i], m.param_len[i], false, &b) == 0) {
                if (b.len > m.param_len[i]) abort(); /* decoding never grows */
                (void)kv_key_problem(b.data, b.len);
            }
        }
    } else if (mr == HALE_MATCH_METHOD) {
        if (!m.allow[0]) abort();
    }
    if (q) {
        (void)hale_query_get(q + 1, "prefix", &b);
        (void)hale_query_get(q + 1, "limit", &b);
    }
    hale_buf_free(&b);
    free(s);
    return 0;
}
