/* Tests for src/runtime/service/testhooks.c (test builds only): GET /debug/block
 * holds its worker for ms milliseconds, then answers {"blocked_ms":N};
 * anything but 1..60000 is a 400 JSON error and blocks nothing. It stands
 * in for a stuck handler in the liveness, shedding and drain tests
 * (R: H1, Y8, L1). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "http_fixture.h"
#include "testhooks.h"
#include "util.h"

#ifndef HALE_TEST_HOOKS
int main(void) {
    fprintf(stderr, "test_testhooks: built without HALE_TEST_HOOKS\n");
    return 1;
}
#else

/* R: H1, Y8, L1 - the block lasts (at least) ms and says so; bad values
 * are refused at once */
static void test_block(void **st) {
    (void)st;
    hale_router *r = hale_router_new();
    char err[128];
    assert_int_equal(hale_testhooks_register(r, err, sizeof err), 0);
    hale_http_hooks hooks = {0};
    hale_http_server *s = fx_start(r, &hooks);
    unsigned port = hale_http_port(s);
    fx_resp *resp = malloc(sizeof *resp);
    uint64_t t0 = hale_now_ns();
    assert_int_equal(fx_req(port, "GET", "/debug/block?ms=120", NULL, NULL, resp), 200);
    assert_true(hale_now_ns() - t0 >= 120000000ull);
    assert_string_equal(resp->body, "{\"blocked_ms\":120}\n");
    t0 = hale_now_ns();
    assert_int_equal(fx_req(port, "GET", "/debug/block", NULL, NULL, resp), 200); /* default 1 s */
    assert_true(hale_now_ns() - t0 >= 1000000000ull);
    assert_string_equal(resp->body, "{\"blocked_ms\":1000}\n");
    static const char *const bad[] = {"0", "60001", "-5", "abc", "12x", "", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char t[80];
        snprintf(t, sizeof t, "/debug/block?ms=%s", bad[i]);
        assert_int_equal(fx_req(port, "GET", t, NULL, NULL, resp), 400);
        assert_non_null(strstr(resp->body, "\"error\":\"bad_query\""));
    }
    free(resp);
    hale_http_stop(s);
    hale_router_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
