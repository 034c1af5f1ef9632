/* Router, percent-decoding and query parsing (R: A4 A5 A8). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "http.h"
#include "router.h"

static void noop(struct hale_req *r, void *arg) { (void)r; (void)arg; }

static hale_router *make(void) {
    hale_router *r = hale_router_new();
    const hale_route routes[] = {
        {.method = "GET", .tmpl = "/v1/kv", .fn = noop},
        {.method = "GET", .tmpl = "/v1/kv/{key}", .fn = noop},
        {.method = "PUT", .tmpl = "/v1/kv/{key}", .fn = noop},
        {.method = "DELETE", .tmpl = "/v1/kv/{key}", .fn = noop},
        {.method = "GET", .tmpl = "/", .fn = noop},
        {.method = "GET", .tmpl = "/a/{x}/b/{y}", .fn = noop},
    };
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        assert_int_equal(hale_router_add(r, &routes[i], NULL, 0), 0);
    return r;
}

static hale_match_result m(hale_router *r, const char *method, const char *path, hale_route_match *out) {
    return hale_router_match(r, method, path, strlen(path), out);
}

/* R: A8 */
static void test_match_templates(void **state) {
    (void)state;
    hale_router *r = make();
    hale_route_match mm;
    assert_int_equal(m(r, "GET", "/v1/kv/abc", &mm), HALE_MATCH_OK);
    assert_string_equal(mm.route->tmpl, "/v1/kv/{key}");
    assert_int_equal(mm.nparams, 1);
    assert_string_equal(mm.param_name[0], "key");
    assert_int_equal(mm.param_len[0], 3);
    assert_memory_equal(mm.param_ptr[0], "abc", 3);
    assert_int_equal(m(r, "GET", "/v1/kv", &mm), HALE_MATCH_OK);
    assert_string_equal(mm.route->tmpl, "/v1/kv");
    assert_int_equal(m(r, "GET", "/", &mm), HALE_MATCH_OK);
    assert_int_equal(m(r, "GET", "/a/1/b/22", &mm), HALE_MATCH_OK);
    assert_int_equal(mm.nparams, 2);
    assert_int_equal(mm.param_len[1], 2);
    hale_router_free(r);
}

/* R: A8 */
static void test_not_found_and_method(void **state) {
    (void)state;
    hale_router *r = make();
    hale_route_match mm;
    assert_int_equal(m(r, "GET", "/v1/kv/", &mm), HALE_MATCH_NOT_FOUND);   /* empty capture */
    assert_int_equal(m(r, "GET", "/v1/kv/a/b", &mm), HALE_MATCH_NOT_FOUND); /* two segments */
    assert_int_equal(m(r, "GET", "/v1/kvx", &mm), HALE_MATCH_NOT_FOUND);
    assert_int_equal(m(r, "GET", "/v1", &mm), HALE_MATCH_NOT_FOUND);
    assert_int_equal(m(r, "GET", "", &mm), HALE_MATCH_NOT_FOUND);
    assert_int_equal(m(r, "GET", "v1/kv/a", &mm), HALE_MATCH_NOT_FOUND);
    assert_int_equal(m(r, "POST", "/v1/kv/a", &mm), HALE_MATCH_METHOD);
    assert_string_equal(mm.allow, "GET, HEAD, PUT, DELETE");
    assert_int_equal(m(r, "HEAD", "/v1/kv/a", &mm), HALE_MATCH_OK);
    hale_router_free(r);
}

static void test_bad_templates(void **state) {
    (void)state;
    hale_router *r = hale_router_new();
    char err[128];
    hale_route bad1 = {.method = "GET", .tmpl = "nope", .fn = noop};
    hale_route bad2 = {.method = "GET", .tmpl = "/a{x}", .fn = noop};
    hale_route bad3 = {.method = "GET", .tmpl = "/{a}/{b}/{c}/{d}/{e}", .fn = noop};
    assert_int_equal(hale_router_add(r, &bad1, err, sizeof err), -1);
    assert_int_equal(hale_router_add(r, &bad2, err, sizeof err), -1);
    assert_int_equal(hale_router_add(r, &bad3, err, sizeof err), -1);
    assert_non_null(strstr(err, "too many captures"));
    assert_int_equal(hale_router_count(r), 0);
    hale_router_free(r);
}

/* A route that an earlier one hides (a repeat, whatever its capture
 * names, or a literal where the earlier has a capture) could never match,
 * and a capture named twice would make hale_req_param ambiguous: all are
 * refused with a clear error, and the router is left as it was. Another
 * method, a longer template, or a capture after a literal is fine.
 * R: A8 */
static void test_unreachable_routes(void **state) {
    (void)state;
    hale_router *r = make();
    char err[200];
    size_t n = hale_router_count(r);
    hale_route again = {.method = "GET", .tmpl = "/v1/kv/{key}", .fn = noop};
    assert_int_equal(hale_router_add(r, &again, err, sizeof err), -1);
    assert_string_equal(err, "route GET /v1/kv/{key} could never match: GET /v1/kv/{key}, "
                             "registered first, matches all its requests");
    hale_route renamed = {.method = "PUT", .tmpl = "/v1/kv/{name}", .fn = noop};
    assert_int_equal(hale_router_add(r, &renamed, err, sizeof err), -1);
    assert_non_null(strstr(err, ": PUT /v1/kv/{key}, registered first"));
    hale_route hidden = {.method = "GET", .tmpl = "/v1/kv/all", .fn = noop};
    assert_int_equal(hale_router_add(r, &hidden, err, sizeof err), -1);
    assert_non_null(strstr(err, "route GET /v1/kv/all could never match: GET /v1/kv/{key}"));
    hale_route twice = {.method = "GET", .tmpl = "/c/{x}/d/{x}", .fn = noop};
    assert_int_equal(hale_router_add(r, &twice, err, sizeof err), -1);
    assert_string_equal(err, "capture {x} appears twice: /c/{x}/d/{x}");
    hale_route root = {.method = "GET", .tmpl = "/", .fn = noop};
    assert_int_equal(hale_router_add(r, &root, err, sizeof err), -1);
    assert_int_equal(hale_router_count(r), n);
    hale_route patch = {.method = "PATCH", .tmpl = "/v1/kv/{key}", .fn = noop};
    hale_route longer = {.method = "GET", .tmpl = "/v1/kv/{key}/meta", .fn = noop};
    hale_route literal = {.method = "GET", .tmpl = "/x/all", .fn = noop};
    hale_route capture = {.method = "GET", .tmpl = "/x/{any}", .fn = noop};
    assert_int_equal(hale_router_add(r, &patch, err, sizeof err), 0);
    assert_int_equal(hale_router_add(r, &longer, err, sizeof err), 0);
    assert_int_equal(hale_router_add(r, &literal, err, sizeof err), 0);
    assert_int_equal(hale_router_add(r, &capture, err, sizeof err), 0);
    assert_int_equal(hale_router_count(r), n + 4);
    hale_route_match mt;
    assert_int_equal(m(r, "PATCH", "/v1/kv/a", &mt), HALE_MATCH_OK);
    assert_int_equal(m(r, "GET", "/x/all", &mt), HALE_MATCH_OK);
    assert_string_equal(mt.route->tmpl, "/x/all");
    assert_int_equal(m(r, "GET", "/x/other", &mt), HALE_MATCH_OK);
    assert_string_equal(mt.route->tmpl, "/x/{any}");
    hale_router_free(r);
}

/* R: A5 */
static void test_percent_decode(void **state) {
    (void)state;
    hale_buf b;
    hale_buf_init(&b);
    assert_int_equal(hale_percent_decode("a%2Fb%00c", 9, false, &b), 0);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "a/b\0c", 5);
    assert_int_equal(hale_percent_decode("a+b", 3, false, &b), 0);
    assert_string_equal(b.data, "a+b");
    assert_int_equal(hale_percent_decode("a+b", 3, true, &b), 0);
    assert_string_equal(b.data, "a b");
    assert_int_equal(hale_percent_decode("%zz", 3, false, &b), -1);
    assert_int_equal(hale_percent_decode("%4", 2, false, &b), -1);
    assert_int_equal(hale_percent_decode("%", 1, false, &b), -1);
    assert_int_equal(hale_percent_decode("ab%4", 4, false, &b), -1);
    hale_buf_free(&b);
}

/* R: A4 */
static void test_query_get(void **state) {
    (void)state;
    hale_buf b;
    hale_buf_init(&b);
    assert_int_equal(hale_query_get("prefix=a%20b&limit=10", "prefix", &b), 1);
    assert_string_equal(b.data, "a b");
    assert_int_equal(hale_query_get("prefix=a&limit=10", "limit", &b), 1);
    assert_string_equal(b.data, "10");
    assert_int_equal(hale_query_get("prefixx=1", "prefix", &b), 0);
    assert_int_equal(hale_query_get("", "prefix", &b), 0);
    assert_int_equal(hale_query_get("flag", "flag", &b), 1);
    assert_int_equal(b.len, 0);
    assert_int_equal(hale_query_get("after=%G1", "after", &b), -1);
    hale_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_templates),
        cmocka_unit_test(test_not_found_and_method),
        cmocka_unit_test(test_bad_templates),
        cmocka_unit_test(test_unreachable_routes),
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_query_get),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
