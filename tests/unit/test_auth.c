/* Tests for src/runtime/service/auth.c: the parsed key set decides, and a reload
 * that would leave no usable key keeps the old keys. R: A9 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "http_fixture.h"
#include "metrics.h"

static const char *const NO_KEY[] = {"", " \n", "\t\n\n", "\r\n \t \r\n", "# only a comment\n",
                                     "  # indented comment\n\n# another\n"};

/* R: A9 - whitespace and comments are not keys */
static void test_count_keys_parsed(void **st) {
    (void)st;
    for (size_t i = 0; i < sizeof NO_KEY / sizeof *NO_KEY; i++)
        assert_int_equal(hale_auth_count_keys(NO_KEY[i]), 0);
    assert_int_equal(hale_auth_count_keys(NULL), 0);
    assert_int_equal(hale_auth_count_keys("k1\n"), 1);
    assert_int_equal(hale_auth_count_keys("# rotated 2026-01\n k1 \n\nk2\n"), 2);
}

/* Replaces path atomically (new inode), as a secret mount does. */
static void swap_file(const char *path, const char *text) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

static unsigned long long refused_count(hale_metrics *reg) {
    hale_buf b;
    hale_buf_init(&b);
    hale_metrics_render(reg, &b);
    const char *p = strstr(b.data, "\nhale_auth_reload_refused_total ");
    unsigned long long n = p ? strtoull(p + strlen("\nhale_auth_reload_refused_total "), NULL, 10) : 999;
    hale_buf_free(&b);
    return n;
}

/* R: A9 - a reload to "", " \n", "\t\n\n" or comments only keeps the keys,
 * and each refusal is counted */
static void test_reload_to_no_key_keeps_old_keys(void **st) {
    (void)st;
    char dir[] = "/tmp/hale-auth-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/api-key", dir);
    swap_file(path, "key-one\nkey-two\n");
    hale_metrics *reg = hale_metrics_new();
    hale_auth *a = hale_auth_new("key-one\nkey-two\n", path, 100, reg);
    assert_int_equal(hale_auth_key_count(a), 2);
    assert_int_equal(refused_count(reg), 0);
    for (size_t i = 0; i < sizeof NO_KEY / sizeof *NO_KEY; i++) {
        swap_file(path, NO_KEY[i]);
        assert_int_equal(hale_auth_reload(a), 0);
        assert_int_equal(hale_auth_key_count(a), 2);
        assert_int_equal(refused_count(reg), i + 1);
        assert_int_equal(hale_auth_reload(a), 0); /* unchanged file: not counted again */
        assert_int_equal(refused_count(reg), i + 1);
    }
    swap_file(path, "# new key\nkey-three\n");
    assert_int_equal(hale_auth_reload(a), 1);
    assert_int_equal(hale_auth_key_count(a), 1);
    hale_auth_free(a);
    hale_metrics_free(reg);
    unlink(path);
    rmdir(dir);
}

/* R: A9 - keys that are only whitespace leave no key set at all */
static void test_whitespace_keys_are_no_keys(void **st) {
    (void)st;
    hale_metrics *reg = hale_metrics_new();
    hale_auth *a = hale_auth_new("\t\n", NULL, 0, reg);
    assert_int_equal(hale_auth_key_count(a), 0);
    hale_auth_free(a);
    hale_metrics_free(reg);
}

static void h_ok(hale_req *r, void *arg) {
    (void)arg;
    hale_resp_static(r, 200, "text/plain", "in\n", 3);
}

static unsigned long long outcome(hale_metrics *reg, const char *o) {
    hale_buf b;
    hale_buf_init(&b);
    hale_metrics_render(reg, &b);
    char needle[96];
    snprintf(needle, sizeof needle, "hale_auth_requests_total{outcome=\"%s\"} ", o);
    const char *p = strstr(b.data, needle);
    unsigned long long n = p ? strtoull(p + strlen(needle), NULL, 10) : 999;
    hale_buf_free(&b);
    return n;
}

/* R: A9 - over a real server: Bearer or X-API-Key with any configured key
 * passes; a missing or wrong key is 401 with WWW-Authenticate and the same
 * body, without the key; routes without the flag stay open; each outcome
 * is counted */
static void test_check_over_http(void **st) {
    (void)st;
    hale_metrics *reg = hale_metrics_new();
    hale_auth *a = hale_auth_new("k-one\nk-two\n", NULL, 0, reg);
    assert_int_equal(hale_auth_start(a, NULL, NULL, 0), 0); /* no file: no task */
    hale_router *r = hale_router_new();
    hale_route guarded = {.method = "GET", .tmpl = "/v1/x", .fn = h_ok, .flags = HALE_ROUTE_AUTH};
    hale_route open = {.method = "GET", .tmpl = "/health", .fn = h_ok};
    char err[128];
    assert_int_equal(hale_router_add(r, &guarded, err, sizeof err), 0);
    assert_int_equal(hale_router_add(r, &open, err, sizeof err), 0);
    hale_http_hooks hooks = {.auth = hale_auth_check, .auth_arg = a};
    hale_http_server *s = fx_start(r, &hooks);
    unsigned port = hale_http_port(s);
    fx_resp *resp = malloc(sizeof *resp);
    assert_int_equal(fx_req(port, "GET", "/v1/x", "Authorization: Bearer k-one\r\n", NULL, resp), 200);
    assert_int_equal(fx_req(port, "GET", "/v1/x", "Authorization: bearer   k-two\r\n", NULL, resp), 200);
    assert_int_equal(fx_req(port, "GET", "/v1/x", "X-API-Key: k-two\r\n", NULL, resp), 200);
    assert_int_equal(fx_req(port, "GET", "/v1/x", NULL, NULL, resp), 401);
    assert_string_equal(fx_header(resp, "WWW-Authenticate"), "Bearer realm=\"hale\"");
    char missing_body[512];
    snprintf(missing_body, sizeof missing_body, "%s", resp->body);
    assert_int_equal(fx_req(port, "GET", "/v1/x", "Authorization: Bearer k-on\r\n", NULL, resp), 401);
    assert_string_equal(resp->body, missing_body); /* no hint which part failed */
    assert_int_equal(fx_req(port, "GET", "/v1/x", "X-API-Key: k-one-and-more\r\n", NULL, resp), 401);
    assert_null(strstr(resp->raw, "k-one"));
    assert_int_equal(fx_req(port, "GET", "/v1/x", "Authorization: Basic azE6azI=\r\n", NULL, resp), 401);
    assert_int_equal(fx_req(port, "GET", "/health", NULL, NULL, resp), 200);
    assert_int_equal(outcome(reg, "ok"), 3);
    assert_int_equal(outcome(reg, "missing"), 2); /* none, and Basic (not a key) */
    assert_int_equal(outcome(reg, "invalid"), 2);
    free(resp);
    hale_http_stop(s);
    hale_router_free(r);
    hale_auth_free(a);
    hale_metrics_free(reg);
}

/* R: A9 - no key configured: every request passes and nothing is counted */
static void test_no_keys_is_open(void **st) {
    (void)st;
    hale_metrics *reg = hale_metrics_new();
    hale_auth *a = hale_auth_new("", NULL, 0, reg);
    hale_router *r = hale_router_new();
    hale_route guarded = {.method = "GET", .tmpl = "/v1/x", .fn = h_ok, .flags = HALE_ROUTE_AUTH};
    char err[128];
    assert_int_equal(hale_router_add(r, &guarded, err, sizeof err), 0);
    hale_http_hooks hooks = {.auth = hale_auth_check, .auth_arg = a};
    hale_http_server *s = fx_start(r, &hooks);
    fx_resp *resp = malloc(sizeof *resp);
    assert_int_equal(fx_req(hale_http_port(s), "GET", "/v1/x", NULL, NULL, resp), 200);
    assert_int_equal(outcome(reg, "ok"), 0);
    assert_int_equal(hale_auth_reload(a), 0); /* no file to watch */
    free(resp);
    hale_http_stop(s);
    hale_router_free(r);
    hale_auth_free(a);
    hale_metrics_free(reg);
}

/* R: A9 - the reload task on the timer picks up a rotated file by itself;
 * a file too large is refused (counted) and the keys stay; a removed file
 * keeps them; freeing the auth takes its task off the timer */
static void test_reload_thread_and_limits(void **st) {
    (void)st;
    char dir[] = "/tmp/hale-auth-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/api-key", dir);
    swap_file(path, "first\n");
    hale_metrics *reg = hale_metrics_new();
    hale_auth *a = hale_auth_new("first\n", path, 20, reg);
    char err[128];
    assert_int_equal(hale_auth_start(a, NULL, err, sizeof err), -1); /* a file needs a timer */
    assert_non_null(strstr(err, "no timer"));
    hale_timer *t = hale_timer_new();
    assert_int_equal(hale_timer_start(t, err, sizeof err), 0);
    assert_int_equal(hale_auth_start(a, t, err, sizeof err), 0);
    assert_int_equal(hale_auth_start(a, t, err, sizeof err), 0); /* once */
    swap_file(path, "second\nthird\n");
    for (int i = 0; i < 500 && hale_auth_key_count(a) != 2; i++) usleep(10000); /* bounded */
    assert_int_equal(hale_auth_key_count(a), 2);
    /* too large: 1 MiB of key-looking text */
    size_t big = 1u << 20;
    char *text = malloc(big + 1);
    memset(text, 'k', big);
    text[big] = '\0';
    for (size_t i = 100; i < big; i += 100) text[i] = '\n';
    swap_file(path, text);
    free(text);
    for (int i = 0; i < 500 && refused_count(reg) == 0; i++) usleep(10000);
    assert_int_equal(refused_count(reg), 1);
    assert_int_equal(hale_auth_key_count(a), 2);
    unlink(path);
    usleep(60000);
    assert_int_equal(hale_auth_reload(a), 0);
    assert_int_equal(hale_auth_key_count(a), 2);
    hale_auth_free(a); /* the timer still runs: the task is gone with a */
    usleep(60000);
    hale_timer_free(t);
    hale_metrics_free(reg);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_keys_parsed),
        cmocka_unit_test(test_reload_to_no_key_keeps_old_keys),
        cmocka_unit_test(test_whitespace_keys_are_no_keys),
        cmocka_unit_test(test_check_over_http),
        cmocka_unit_test(test_no_keys_is_open),
        cmocka_unit_test(test_reload_thread_and_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
