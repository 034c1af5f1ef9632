/* Tests for src/app/cache/redis_pool.c: URL parsing (no server needed). R: A7 Y7 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "redis_pool.h"
#include "service_env.h"

#ifdef HALE_HAVE_HIREDIS

static void test_full_url(void **st) {
    (void)st;
    kv_redis_addr a;
    char err[256];
    assert_int_equal(kv_redis_parse_url("redis://:s3cr%40t@cache.example:6380/2", &a, err, sizeof err), 0);
    assert_string_equal(a.host, "cache.example");
    assert_int_equal(a.port, 6380);
    assert_string_equal(a.user, "");
    assert_string_equal(a.pass, "s3cr@t");
    assert_int_equal(a.db, 2);
}

static void test_minimal_and_acl_user(void **st) {
    (void)st;
    kv_redis_addr a;
    char err[256];
    assert_int_equal(kv_redis_parse_url("redis://localhost", &a, err, sizeof err), 0);
    assert_string_equal(a.host, "localhost");
    assert_int_equal(a.port, 6379);
    assert_int_equal(a.db, 0);
    assert_string_equal(a.pass, "");
    assert_int_equal(kv_redis_parse_url("redis://app:pw@10.0.0.1/", &a, err, sizeof err), 0);
    assert_string_equal(a.user, "app");
    assert_string_equal(a.pass, "pw");
    assert_int_equal(kv_redis_parse_url("redis://[::1]:7000/3?x=y", &a, err, sizeof err), 0);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 7000);
    assert_int_equal(a.db, 3);
    /* an unencoded '@' in the password: the last '@' ends the userinfo */
    assert_int_equal(kv_redis_parse_url("redis://:a@b@h:1", &a, err, sizeof err), 0);
    assert_string_equal(a.pass, "a@b");
    assert_string_equal(a.host, "h");
}

static void test_bad_urls_never_echo_the_password(void **st) {
    (void)st;
    const char *bad[] = {
        "rediss://:topsecret@h",   "http://:topsecret@h",     "redis://:topsecret@",
        "redis://:topsecret@h:0",  "redis://:topsecret@h:99999", "redis://:topsecret@h:12x",
        "redis://:topsecret@h/db", "redis://:top%zzsecret@h", "redis://:topsecret@[::1",
        "redis://:top%00secret@h", NULL,
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        kv_redis_addr a;
        char err[256] = "";
        assert_int_equal(kv_redis_parse_url(bad[i], &a, err, sizeof err), -1);
        assert_true(err[0] != '\0');
        assert_null(strstr(err, "topsecret"));
        assert_null(strstr(err, "top"));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_url),
        cmocka_unit_test(test_minimal_and_acl_user),
        cmocka_unit_test(test_bad_urls_never_echo_the_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else
int main(void) { return service_env_missing("built without hiredis"); }
#endif
