/* Tests for src/runtime/auth.c: the parsed key set decides, and a reload
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_keys_parsed),
        cmocka_unit_test(test_reload_to_no_key_keeps_old_keys),
        cmocka_unit_test(test_whitespace_keys_are_no_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
