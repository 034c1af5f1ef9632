/* Tests for src/runtime/http/http_resp.c and the response half of http_req.c,
 * over a real in-process server: the status line carries the right reason
 * phrase for every status a service may set (and a class phrase for the
 * others), a response takes at most 8 extra headers (the 9th is refused,
 * the answer still goes out), a handler that sets no response answers 500
 * JSON, and every answer has Date, X-Request-Id and a cache policy
 * (R: E1, A8, A10). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "http_fixture.h"

/* GET /s/{code}: answers with that status (and no body for 1xx/204/304) */
static void h_status(hale_req *r, void *arg) {
    (void)arg;
    size_t n;
    const char *p = hale_req_param(r, "code", &n);
    char code[8] = "";
    memcpy(code, p, n < 7 ? n : 7);
    int st = atoi(code);
    assert_false(hale_resp_is_set(r));
    if (st == 204 || st == 304) hale_resp_static(r, st, NULL, "", 0);
    else hale_resp_send(r, st, "text/plain", "x\n", 2);
    assert_true(hale_resp_is_set(r));
}

static int header_results[10];

static void h_headers(hale_req *r, void *arg) {
    (void)arg;
    hale_resp_send(r, 200, "text/plain", "h\n", 2);
    for (int i = 0; i < 10; i++) {
        char name[16];
        snprintf(name, sizeof name, "X-H%d", i);
        header_results[i] = hale_resp_header(r, name, "v");
    }
}

/* GET /echo/{rest}: the request's own view of itself, '|'-separated:
 * method, raw path (no query), raw query, route template, peer address,
 * request id */
static void h_echo(hale_req *r, void *arg) {
    (void)arg;
    size_t n;
    const char *path = hale_req_path(r, &n);
    char out[512];
    int k = snprintf(out, sizeof out, "%s|%.*s|%s|%s|%s|%s", hale_req_method(r), (int)n, path,
                     hale_req_query(r), hale_req_route(r), hale_req_remote(r), hale_req_id(r));
    hale_resp_send(r, 200, "text/plain", out, (size_t)k);
}

static void h_nothing(hale_req *r, void *arg) {
    (void)r;
    (void)arg;
}

/* R: E1, A8, A10 */
static void test_status_lines_and_headers(void **st) {
    (void)st;
    hale_router *rt = hale_router_new();
    char err[128];
    hale_route routes[] = {
        {.method = "GET", .tmpl = "/s/{code}", .fn = h_status},
        {.method = "GET", .tmpl = "/headers", .fn = h_headers},
        {.method = "GET", .tmpl = "/nothing", .fn = h_nothing},
        {.method = "GET", .tmpl = "/echo/{rest}", .fn = h_echo},
    };
    for (size_t i = 0; i < 4; i++) assert_int_equal(hale_router_add(rt, &routes[i], err, sizeof err), 0);
    hale_http_hooks hooks = {0};
    hale_http_server *s = fx_start(rt, &hooks);
    unsigned port = hale_http_port(s);
    fx_resp *resp = malloc(sizeof *resp);
    static const struct { int code; const char *line; } cases[] = {
        {200, "HTTP/1.1 200 OK\r\n"}, {201, "HTTP/1.1 201 Created\r\n"},
        {202, "HTTP/1.1 202 Accepted\r\n"}, {204, "HTTP/1.1 204 No Content\r\n"},
        {206, "HTTP/1.1 206 Partial Content\r\n"}, {301, "HTTP/1.1 301 Moved Permanently\r\n"},
        {302, "HTTP/1.1 302 Found\r\n"}, {304, "HTTP/1.1 304 Not Modified\r\n"},
        {400, "HTTP/1.1 400 Bad Request\r\n"}, {401, "HTTP/1.1 401 Unauthorized\r\n"},
        {403, "HTTP/1.1 403 Forbidden\r\n"}, {404, "HTTP/1.1 404 Not Found\r\n"},
        {409, "HTTP/1.1 409 Conflict\r\n"}, {412, "HTTP/1.1 412 Precondition Failed\r\n"},
        {415, "HTTP/1.1 415 Unsupported Media Type\r\n"},
        {422, "HTTP/1.1 422 Unprocessable Content\r\n"},
        {428, "HTTP/1.1 428 Precondition Required\r\n"},
        {429, "HTTP/1.1 429 Too Many Requests\r\n"},
        {500, "HTTP/1.1 500 Internal Server Error\r\n"}, {502, "HTTP/1.1 502 Bad Gateway\r\n"},
        {503, "HTTP/1.1 503 Service Unavailable\r\n"}, {504, "HTTP/1.1 504 Gateway Timeout\r\n"},
        {507, "HTTP/1.1 507 Insufficient Storage\r\n"},
        {299, "HTTP/1.1 299 OK\r\n"}, {399, "HTTP/1.1 399 Redirect\r\n"},
        {499, "HTTP/1.1 499 Client Error\r\n"}, {599, "HTTP/1.1 599 Server Error\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char t[32];
        snprintf(t, sizeof t, "/s/%d", cases[i].code);
        assert_int_equal(fx_req(port, "GET", t, NULL, NULL, resp), cases[i].code);
        if (strncmp(resp->raw, cases[i].line, strlen(cases[i].line)) != 0)
            fail_msg("status %d: got %.60s", cases[i].code, resp->raw);
        assert_non_null(fx_header(resp, "Date"));
        assert_non_null(fx_header(resp, "X-Request-Id"));
        assert_string_equal(fx_header(resp, "Cache-Control"), "no-store");
    }
    assert_int_equal(fx_req(port, "GET", "/headers", NULL, NULL, resp), 200);
    for (int i = 0; i < 8; i++) assert_int_equal(header_results[i], 0);
    assert_int_equal(header_results[8], -1);
    assert_int_equal(header_results[9], -1);
    assert_string_equal(fx_header(resp, "X-H7"), "v");
    assert_null(fx_header(resp, "X-H8"));
    assert_string_equal(resp->body, "h\n");
    assert_int_equal(fx_req(port, "GET", "/nothing", NULL, NULL, resp), 500);
    assert_true(fx_body_has(resp, "\"error\":"));
    assert_string_equal(fx_header(resp, "Content-Type"), "application/json");
    /* the request accessors: the path stays raw (percent-encoded) and
     * stops before the query */
    char want[1024];
    assert_int_equal(fx_req(port, "GET", "/echo/a%2Fb?x=1&y=%20", NULL, NULL, resp), 200);
    snprintf(want, sizeof want, "GET|/echo/a%%2Fb|x=1&y=%%20|/echo/{rest}|127.0.0.1|%s",
             fx_header(resp, "X-Request-Id")); /* the id the answer carries */
    assert_string_equal(resp->body, want);
    assert_int_equal(fx_req(port, "GET", "/echo/plain", NULL, NULL, resp), 200);
    snprintf(want, sizeof want, "GET|/echo/plain||/echo/{rest}|127.0.0.1|%s",
             fx_header(resp, "X-Request-Id"));
    assert_string_equal(resp->body, want);
    free(resp);
    hale_http_stop(s);
    hale_router_free(rt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_lines_and_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
