/* Tests for src/app/store/url_check.c: hale checks database and Redis URLs
 * itself (setting, position, part; never a byte of the URL), and scrubs
 * driver messages of the userinfo. R: Y7 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "url_check.h"

static void test_good_urls(void **st) {
    (void)st;
    const char *pg[] = {
        "postgres://hale:pw@127.0.0.1:5432/hale?sslmode=disable&connect_timeout=1",
        "postgresql://u:p%40ss%25w0rd@db.example/x",
        "postgres://u@h1:5432,h2:5433/db?target_session_attrs=read-write",
        "postgres://[::1]:5432/db", "postgresql:///db", "postgres://h", "postgres://",
    };
    const char *rd[] = {"redis://:pw@cache:6380/2", "redis://localhost", "redis://[::1]:7000/3?x=y",
                        "redis://app:pw@10.0.0.1/", "redis://:a@b@h:1", "rediss://:pw@h"};
    char err[256];
    for (size_t i = 0; i < sizeof pg / sizeof *pg; i++) {
        if (app_url_check("database.url", pg[i], APP_URL_POSTGRES, err, sizeof err) != 0)
            fail_msg("%s: %s", pg[i], err);
    }
    for (size_t i = 0; i < sizeof rd / sizeof *rd; i++) {
        if (app_url_check("redis.url", rd[i], APP_URL_REDIS, err, sizeof err) != 0)
            fail_msg("%s: %s", rd[i], err);
    }
}

typedef struct bad_case {
    const char *url;
    app_url_kind kind;
    const char *want; /* substring of the message: position and part */
} bad_case;

static void test_bad_urls_name_setting_and_position_never_the_password(void **st) {
    (void)st;
    const bad_case bad[] = {
        {"postgres://hale:Sup3rS3cret%zz@127.0.0.1/x", APP_URL_POSTGRES, "position 28 (in the password)"},
        {"postgres://hale:Sup3rS3cret%2@127.0.0.1/x", APP_URL_POSTGRES, "position 28 (in the password)"},
        {"postgres://hale:Sup3rS3cret%00x@127.0.0.1/x", APP_URL_POSTGRES, "%00"},
        {"postgres://hale:Sup3r S3cret@127.0.0.1/x", APP_URL_POSTGRES, "position 22 (in the password)"},
        {"postgres://hale:Sup3r@S3cret@127.0.0.1/x", APP_URL_POSTGRES, "second '@'"},
        {"postgres://hale:Sup3rS3cret@[::1/x", APP_URL_POSTGRES, "(in the host)"},
        {"postgres://hale:Sup3rS3cret@h:99999/x", APP_URL_POSTGRES, "port"},
        {"postgres://hale:Sup3rS3cret@h:5x/x", APP_URL_POSTGRES, "port"},
        {"postgres://hale:Sup3rS3cret@h/x?sslmode=%zz", APP_URL_POSTGRES, "(in the path or query)"},
        {"postgres://ha%zzle:Sup3rS3cret@h/x", APP_URL_POSTGRES, "(in the user name)"},
        {"mysql://hale:Sup3rS3cret@h/x", APP_URL_POSTGRES, "postgres://"},
        {"redis://:Sup3rS3cret%zz@h", APP_URL_REDIS, "position 21 (in the password)"},
        {"redis://:Sup3rS3cret%00@h", APP_URL_REDIS, "%00"},
        {"redis://:Sup3rS3cret@", APP_URL_REDIS, "no host"},
        {"redis://:Sup3rS3cret@h:0", APP_URL_REDIS, "port"},
        {"http://:Sup3rS3cret@h", APP_URL_REDIS, "redis://"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[256] = "";
        const char *setting = bad[i].kind == APP_URL_POSTGRES ? "database.url" : "redis.url";
        assert_int_equal(app_url_check(setting, bad[i].url, bad[i].kind, err, sizeof err), -1);
        if (!strstr(err, bad[i].want) || strncmp(err, setting, strlen(setting)) != 0)
            fail_msg("%s: message \"%s\" lacks \"%s\"", bad[i].url, err, bad[i].want);
        if (strstr(err, "Sup3r") || strstr(err, "S3cret") || strstr(err, "hale:"))
            fail_msg("%s: message echoes the URL: %s", bad[i].url, err);
    }
}

static void test_scrub_driver_messages(void **st) {
    (void)st;
    char msg[256];
    snprintf(msg, sizeof msg, "invalid percent-encoded token: \"Sup3rS3cret%%zz\"");
    app_url_scrub("postgres://hale:Sup3rS3cret%zz@127.0.0.1/x", msg, sizeof msg);
    assert_string_equal(msg, "invalid percent-encoded token: \"[redacted]\"");
    snprintf(msg, sizeof msg, "a: hale:p%%40ss b: p@ss c: p%%40ss url: postgres://hale:p%%40ss@h/x");
    app_url_scrub("postgres://hale:p%40ss@h/x", msg, sizeof msg);
    assert_null(strstr(msg, "p@ss"));
    assert_null(strstr(msg, "p%40ss"));
    assert_non_null(strstr(msg, "a: [redacted] b: [redacted] c: [redacted] url: [redacted]"));
    /* libpq reads up to the first '@': both readings are scrubbed */
    snprintf(msg, sizeof msg, "could not translate host name \"ss@h\"; password \"p\"");
    app_url_scrub("postgres://u:p@ss@h/x", msg, sizeof msg);
    assert_null(strstr(msg, "ss@h"));
    assert_null(strstr(msg, "\"p\""));
    /* no userinfo: nothing to scrub */
    snprintf(msg, sizeof msg, "connection refused");
    app_url_scrub("postgres://h/x", msg, sizeof msg);
    assert_string_equal(msg, "connection refused");
    /* a marker that does not fit cuts the message, never leaves the secret */
    char small[16];
    snprintf(small, sizeof small, "abcdefgh SECRET");
    app_scrub(small, sizeof small, "SECRET", 6);
    assert_null(strstr(small, "SECRET"));
    /* a password inside the marker itself does not loop */
    snprintf(msg, sizeof msg, "red red");
    app_scrub(msg, sizeof msg, "red", 3);
    assert_string_equal(msg, "[redacted] [redacted]");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_urls),
        cmocka_unit_test(test_bad_urls_name_setting_and_position_never_the_password),
        cmocka_unit_test(test_scrub_driver_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
