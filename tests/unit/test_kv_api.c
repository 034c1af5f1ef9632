/* Tests for src/app/api/kv_api.c: the /v1/kv handlers on the real SQLite store
 * behind a real in-process server. Key validation (R: A5), PUT/GET/DELETE
 * with ETags and conditional requests (R: A1, A2, A3, A10), listing with
 * pagination and its query errors (R: A4, A8), 415 and 503 answers (R: A8). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <time.h>

#include "http_fixture.h"
#include "httpdate.h"
#include "kv_api.h"
#include "store_sqlite.h"

typedef struct env {
    char dir[64];
    kv_store *store;
    kv_api api;
    hale_router *r;
    hale_http_server *s;
    unsigned port;
    fx_resp *resp;
} env;

static int setup(void **st) {
    env *e = calloc(1, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/hale-kvapi-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    char path[128], err[256] = "";
    snprintf(path, sizeof path, "%s/kv.db", e->dir);
    e->store = kv_sqlite_open(path, err, sizeof err);
    if (!e->store) fail_msg("kv_sqlite_open: %s", err);
    atomic_store(&e->api.store, e->store);
    e->r = hale_router_new();
    assert_int_equal(kv_api_register(&e->api, e->r, err, sizeof err), 0);
    hale_http_hooks hooks = {0};
    e->s = fx_start(e->r, &hooks);
    e->port = hale_http_port(e->s);
    e->resp = malloc(sizeof *e->resp);
    *st = e;
    return 0;
}

static int teardown(void **st) {
    env *e = *st;
    hale_http_stop(e->s);
    hale_router_free(e->r);
    kv_store_close(e->store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", e->dir);
    int rc = system(cmd);
    (void)rc;
    free(e->resp);
    free(e);
    return 0;
}

static int req(env *e, const char *method, const char *target, const char *headers, const char *body) {
    return fx_req(e->port, method, target, headers, body, e->resp);
}

/* R: A5 - 1..512 bytes of UTF-8 without control characters (C0, DEL, C1) */
static void test_key_problem(void **st) {
    (void)st;
    assert_null(kv_key_problem("a", 1));
    const char *utf8 = "caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x98\x80";
    assert_null(kv_key_problem(utf8, strlen(utf8)));
    assert_string_equal(kv_key_problem("", 0), "the key is empty");
    char big[KV_MAX_KEY_BYTES + 1];
    memset(big, 'k', sizeof big);
    assert_null(kv_key_problem(big, KV_MAX_KEY_BYTES));
    assert_string_equal(kv_key_problem(big, sizeof big), "the key is longer than 512 bytes");
    static const char *const control[] = {"a\nb", "\x7f", "\xc2\x85" /* C1 NEL */};
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(kv_key_problem(control[i], strlen(control[i])),
                            "the key contains a control character");
    static const char *const bad[] = {"\xff", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
                                      "\xf4\x90\x80\x80", "\xc3", "\xc3(", "\xf5\x80\x80\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_string_equal(kv_key_problem(bad[i], strlen(bad[i])), "the key is not valid UTF-8");
}

/* R: A1, A2, A3, A10 - create 201, replace 200, read back with ETag,
 * Content-Type, Last-Modified and no-cache; delete 204 then 404 */
static void test_put_get_delete(void **st) {
    env *e = *st;
    assert_int_equal(req(e, "PUT", "/v1/kv/greeting", "Content-Type: text/plain\r\n", "hello"), 201);
    assert_string_equal(fx_header(e->resp, "ETag"), "\"1\"");
    assert_true(fx_body_has(e->resp, "{\"result\":\"created\"}"));
    assert_string_equal(fx_header(e->resp, "Cache-Control"), "no-store");
    assert_int_equal(req(e, "PUT", "/v1/kv/greeting", "Content-Encoding: identity\r\n", "hello again"), 200);
    assert_true(fx_body_has(e->resp, "{\"result\":\"replaced\"}"));
    char etag[32];
    snprintf(etag, sizeof etag, "%.30s", fx_header(e->resp, "ETag"));
    assert_int_equal(req(e, "GET", "/v1/kv/greeting", NULL, NULL), 200);
    assert_string_equal(e->resp->body, "hello again");
    assert_string_equal(fx_header(e->resp, "ETag"), etag);
    assert_string_equal(fx_header(e->resp, "Content-Type"), "application/octet-stream");
    assert_string_equal(fx_header(e->resp, "Cache-Control"), "no-cache");
    assert_non_null(fx_header(e->resp, "Last-Modified"));
    /* a configured policy for reads */
    e->api.cache_control = "private, max-age=5";
    assert_int_equal(req(e, "HEAD", "/v1/kv/greeting", NULL, NULL), 200);
    assert_string_equal(fx_header(e->resp, "Cache-Control"), "private, max-age=5");
    e->api.cache_control = NULL;
    /* percent-encoded keys are decoded before the store sees them */
    assert_int_equal(req(e, "PUT", "/v1/kv/a%2Fb", NULL, "x"), 201);
    assert_int_equal(req(e, "GET", "/v1/kv/a%2fb", NULL, NULL), 200);
    assert_int_equal(req(e, "DELETE", "/v1/kv/greeting", NULL, NULL), 204);
    assert_int_equal(req(e, "DELETE", "/v1/kv/greeting", NULL, NULL), 404);
    assert_true(fx_body_has(e->resp, "\"error\":\"not_found\""));
    assert_int_equal(req(e, "GET", "/v1/kv/greeting", NULL, NULL), 404);
}

/* R: A5, A8 - bad keys and unsupported bodies are 400/415 JSON errors */
static void test_bad_requests(void **st) {
    env *e = *st;
    /* a malformed escape is refused by the engine before routing */
    assert_int_equal(req(e, "GET", "/v1/kv/%zz", NULL, NULL), 400);
    assert_true(fx_body_has(e->resp, "\"error\":\"bad_target\""));
    static const char *const bad_keys[] = {"/v1/kv/%0a", "/v1/kv/%ff", "/v1/kv/%7F", "/v1/kv/%C2%85"};
    for (size_t i = 0; i < sizeof bad_keys / sizeof *bad_keys; i++) {
        assert_int_equal(req(e, "GET", bad_keys[i], NULL, NULL), 400);
        assert_true(fx_body_has(e->resp, "\"error\":\"invalid_key\""));
    }
    assert_int_equal(req(e, "DELETE", "/v1/kv/%00", NULL, NULL), 400);
    assert_int_equal(req(e, "PUT", "/v1/kv/z", "Content-Encoding: gzip\r\n", "v"), 415);
    assert_true(fx_body_has(e->resp, "\"error\":\"unsupported_media_type\""));
    char h[256] = "Content-Type: ";
    memset(h + 14, 't', 130);
    strcpy(h + 144, "\r\n");
    assert_int_equal(req(e, "PUT", "/v1/kv/z", h, "v"), 415);
    assert_true(fx_body_has(e->resp, "longer than 127 bytes"));
    assert_int_equal(req(e, "GET", "/v1/kv/z", NULL, NULL), 404); /* nothing was stored */
}

/* R: A1, A10 - If-Match (one tag, a list, *, a tag never issued),
 * If-None-Match: * create-only, If-Unmodified-Since, on PUT and DELETE */
static void test_conditional_writes(void **st) {
    env *e = *st;
    assert_int_equal(req(e, "PUT", "/v1/kv/c", "If-None-Match: *\r\n", "1"), 201);
    assert_int_equal(req(e, "PUT", "/v1/kv/c", "If-None-Match: *\r\n", "2"), 412);
    assert_int_equal(req(e, "PUT", "/v1/kv/c", "If-None-Match: \"1\"\r\n", "2"), 400);
    assert_true(fx_body_has(e->resp, "\"error\":\"bad_precondition\""));
    assert_int_equal(req(e, "PUT", "/v1/kv/c", "If-Match: \"1\"\r\n", "2"), 200); /* now v2 */
    assert_int_equal(req(e, "PUT", "/v1/kv/c", "If-Match: \"1\"\r\n", "3"), 412);
    assert_int_equal(req(e, "PUT", "/v1/kv/c", "If-Match: W/\"2\"\r\n", "3"), 412); /* weak never */
    assert_int_equal(req(e, "PUT", "/v1/kv/c", "If-Match: \"abc\"\r\n", "3"), 412);
    assert_int_equal(req(e, "PUT", "/v1/kv/c", "If-Match: \"7\", \"2\"\r\n", "3"), 200); /* list: v3 */
    assert_int_equal(req(e, "PUT", "/v1/kv/c", "If-Match: \"7\"\r\nIf-Match: \"8\"\r\n", "x"), 412);
    assert_int_equal(req(e, "PUT", "/v1/kv/c", "If-Match: *\r\n", "4"), 200);
    assert_int_equal(req(e, "PUT", "/v1/kv/new", "If-Match: *\r\n", "4"), 412);
    assert_int_equal(req(e, "PUT", "/v1/kv/new", "If-Match: \"1\", \"2\"\r\n", "4"), 412);
    /* dates: the value was written just now */
    char past[APP_HTTPDATE_LEN], future[APP_HTTPDATE_LEN], h[128];
    app_httpdate_format((int64_t)time(NULL) - 3600, past);
    app_httpdate_format((int64_t)time(NULL) + 3600, future);
    snprintf(h, sizeof h, "If-Unmodified-Since: %s\r\n", past);
    assert_int_equal(req(e, "PUT", "/v1/kv/c", h, "5"), 412);
    assert_int_equal(req(e, "PUT", "/v1/kv/absent", h, "5"), 201); /* no date known: ignored */
    snprintf(h, sizeof h, "If-Unmodified-Since: %s\r\n", future);
    assert_int_equal(req(e, "PUT", "/v1/kv/c", h, "5"), 200);
    assert_int_equal(req(e, "PUT", "/v1/kv/c", "If-Unmodified-Since: yesterday\r\n", "6"), 200);
    char cur[128];
    snprintf(h, sizeof h, "If-Match: \"1\", %.40s\r\n", fx_header(e->resp, "ETag"));
    snprintf(cur, sizeof cur, "%s", h);
    /* DELETE */
    assert_int_equal(req(e, "DELETE", "/v1/kv/c", "If-Match: \"1\"\r\n", NULL), 412);
    assert_int_equal(req(e, "DELETE", "/v1/kv/nope", "If-Match: \"1\", \"2\"\r\n", NULL), 404);
    assert_int_equal(req(e, "DELETE", "/v1/kv/c", "If-Match: \"1\", \"2\"\r\n", NULL), 412);
    assert_int_equal(req(e, "DELETE", "/v1/kv/c", cur, NULL), 204);
}

/* R: A2, A10 - GET: If-None-Match (weak comparison, lists) gives 304 with
 * the ETag and no body; If-Match that names nothing current 412; dates */
static void test_conditional_reads(void **st) {
    env *e = *st;
    assert_int_equal(req(e, "PUT", "/v1/kv/r", "Content-Type: text/plain\r\n", "value"), 201);
    assert_int_equal(req(e, "GET", "/v1/kv/r", "If-None-Match: \"1\"\r\n", NULL), 304);
    assert_string_equal(fx_header(e->resp, "ETag"), "\"1\"");
    assert_string_equal(fx_header(e->resp, "Cache-Control"), "no-cache");
    assert_int_equal(e->resp->body_len, 0);
    assert_int_equal(req(e, "GET", "/v1/kv/r", "If-None-Match: W/\"1\"\r\n", NULL), 304);
    assert_int_equal(req(e, "GET", "/v1/kv/r", "If-None-Match: \"9\", *\r\n", NULL), 304);
    assert_int_equal(req(e, "GET", "/v1/kv/r", "If-None-Match: \"9\"\r\nIf-None-Match: \"1\"\r\n", NULL), 304);
    assert_int_equal(req(e, "GET", "/v1/kv/r", "If-None-Match: \"9\", garbage, \"1\"x\r\n", NULL), 200);
    assert_string_equal(fx_header(e->resp, "Content-Type"), "text/plain");
    assert_int_equal(req(e, "GET", "/v1/kv/r", "If-Match: \"9\"\r\n", NULL), 412);
    assert_int_equal(req(e, "GET", "/v1/kv/r", "If-Match: \"1\"\r\n", NULL), 200);
    char past[APP_HTTPDATE_LEN], future[APP_HTTPDATE_LEN], h[160];
    app_httpdate_format((int64_t)time(NULL) - 3600, past);
    app_httpdate_format((int64_t)time(NULL) + 3600, future);
    snprintf(h, sizeof h, "If-Unmodified-Since: %s\r\n", past);
    assert_int_equal(req(e, "GET", "/v1/kv/r", h, NULL), 412);
    snprintf(h, sizeof h, "If-Modified-Since: %s\r\n", past);
    assert_int_equal(req(e, "GET", "/v1/kv/r", h, NULL), 200); /* changed since */
    /* not changed since a date a second from now... but a date in the
     * future is invalid and ignored */
    snprintf(h, sizeof h, "If-Modified-Since: %s\r\n", future);
    assert_int_equal(req(e, "GET", "/v1/kv/r", h, NULL), 200);
    sleep(1);
    char now[APP_HTTPDATE_LEN];
    app_httpdate_format((int64_t)time(NULL), now);
    snprintf(h, sizeof h, "If-Modified-Since: %s\r\n", now);
    assert_int_equal(req(e, "GET", "/v1/kv/r", h, NULL), 304);
    /* two field lines: the date is ignored */
    snprintf(h, sizeof h, "If-Modified-Since: %s\r\nIf-Modified-Since: %s\r\n", now, now);
    assert_int_equal(req(e, "GET", "/v1/kv/r", h, NULL), 200);
    /* If-None-Match wins over If-Modified-Since */
    snprintf(h, sizeof h, "If-None-Match: \"9\"\r\nIf-Modified-Since: %s\r\n", now);
    assert_int_equal(req(e, "GET", "/v1/kv/r", h, NULL), 200);
}

/* R: A4, A8 - keys in order, prefix, after, limit and the next cursor;
 * bad limits and queries are 400 */
static void test_list(void **st) {
    env *e = *st;
    static const char *const keys[] = {"app%2Fa", "app%2Fb", "app%2fc", "other", "app%2F%22q%22"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        char t[64];
        snprintf(t, sizeof t, "/v1/kv/%s", keys[i]);
        assert_int_equal(req(e, "PUT", t, NULL, "v"), 201);
    }
    assert_int_equal(req(e, "GET", "/v1/kv", NULL, NULL), 200);
    assert_string_equal(e->resp->body,
                        "{\"keys\":[\"app/\\\"q\\\"\",\"app/a\",\"app/b\",\"app/c\",\"other\"],\"next\":null}\n");
    assert_string_equal(fx_header(e->resp, "Cache-Control"), "no-store");
    assert_int_equal(req(e, "GET", "/v1/kv?prefix=app%2F&limit=2", NULL, NULL), 200);
    assert_string_equal(e->resp->body, "{\"keys\":[\"app/\\\"q\\\"\",\"app/a\"],\"next\":\"app/a\"}\n");
    assert_int_equal(req(e, "GET", "/v1/kv?prefix=app/&limit=2&after=app/a", NULL, NULL), 200);
    assert_string_equal(e->resp->body, "{\"keys\":[\"app/b\",\"app/c\"],\"next\":null}\n");
    assert_int_equal(req(e, "GET", "/v1/kv?prefix=zzz", NULL, NULL), 200);
    assert_string_equal(e->resp->body, "{\"keys\":[],\"next\":null}\n");
    static const char *const bad_limits[] = {"0", "1001", "+5", "%205", "5%00", "abc", "", "9999999999"};
    for (size_t i = 0; i < sizeof bad_limits / sizeof *bad_limits; i++) {
        char t[64];
        snprintf(t, sizeof t, "/v1/kv?limit=%s", bad_limits[i]);
        assert_int_equal(req(e, "GET", t, NULL, NULL), 400);
        assert_true(fx_body_has(e->resp, "\"error\":\"bad_limit\""));
    }
    assert_int_equal(req(e, "GET", "/v1/kv?limit=1000", NULL, NULL), 200);
    /* a malformed escape in the query: refused by the engine already */
    assert_int_equal(req(e, "GET", "/v1/kv?prefix=%zz", NULL, NULL), 400);
    assert_true(fx_body_has(e->resp, "\"error\":\"bad_target\""));
    char t[700] = "/v1/kv?after=";
    memset(t + 13, 'a', 520);
    t[533] = '\0';
    assert_int_equal(req(e, "GET", t, NULL, NULL), 400);
    assert_true(fx_body_has(e->resp, "at most 512 bytes"));
}

/* R: A8 - before the store is open every route answers 503 starting with
 * Retry-After */
static void test_store_not_open(void **st) {
    env *e = *st;
    atomic_store(&e->api.store, NULL);
    static const char *const m[] = {"GET", "PUT", "DELETE"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(req(e, m[i], "/v1/kv/k", NULL, i == 1 ? "v" : NULL), 503);
        assert_true(fx_body_has(e->resp, "\"error\":\"starting\""));
        assert_string_equal(fx_header(e->resp, "Retry-After"), "1");
    }
    assert_int_equal(req(e, "GET", "/v1/kv", NULL, NULL), 503);
    atomic_store(&e->api.store, e->store);
    assert_int_equal(req(e, "GET", "/v1/kv", NULL, NULL), 200);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_problem),
        cmocka_unit_test_setup_teardown(test_put_get_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conditional_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conditional_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_not_open, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
