/* Tests for src/app/api/httpdate.c (Last-Modified, If-Modified-Since,
 * If-Unmodified-Since; RFC 9110 §5.6.7). R: A2 A10 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "httpdate.h"

static void test_format(void **st) {
    (void)st;
    char b[APP_HTTPDATE_LEN];
    app_httpdate_format(784111777, b);
    assert_string_equal(b, "Sun, 06 Nov 1994 08:49:37 GMT");
    app_httpdate_format(0, b);
    assert_string_equal(b, "Thu, 01 Jan 1970 00:00:00 GMT");
    app_httpdate_format(951782400, b); /* a leap day */
    assert_string_equal(b, "Tue, 29 Feb 2000 00:00:00 GMT");
}

static void test_parse_three_forms(void **st) {
    (void)st;
    assert_int_equal(app_httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
    assert_int_equal(app_httpdate_parse("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
    assert_int_equal(app_httpdate_parse("Sun Nov  6 08:49:37 1994"), 784111777);
    assert_int_equal(app_httpdate_parse("Tue, 29 Feb 2000 00:00:00 GMT"), 951782400);
}

static void test_parse_refuses_anything_else(void **st) {
    (void)st;
    const char *bad[] = {
        "", "Mon, 06 Nov 1994 08:49:37 GMT" /* wrong weekday */, "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 GMT ", " Sun, 06 Nov 1994 08:49:37 GMT", "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT", "Wed, 30 Feb 2000 00:00:00 GMT",
        "Thu, 29 Feb 2001 00:00:00 GMT", "784111777", "Sun, 06 Nov 1994", "sun, 06 nov 1994 08:49:37 gmt",
        "Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (app_httpdate_parse(bad[i]) != -1) fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(app_httpdate_parse(NULL), -1);
}

static void test_roundtrip_and_gmtime_agree(void **st) {
    (void)st;
    for (int64_t t = 0; t < 4102444800; t += 86399 * 7 + 12345) {
        char b[APP_HTTPDATE_LEN], ref[64];
        app_httpdate_format(t, b);
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(ref, sizeof ref, "%a, %d %b %Y %H:%M:%S GMT", &tm); /* C locale */
        assert_string_equal(b, ref);
        assert_int_equal(app_httpdate_parse(b), t);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_parse_three_forms),
        cmocka_unit_test(test_parse_refuses_anything_else),
        cmocka_unit_test(test_roundtrip_and_gmtime_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
