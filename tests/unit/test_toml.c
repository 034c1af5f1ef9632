/* Tests for src/runtime/config/toml: the tree, positions, errors and limits.
 * Conformance to TOML 1.0 is proven by toml-test through
 * tests/tools/toml_decoder.c (R: C2); this file covers what the suite does
 * not: positions, messages, limits (R: Y1) and the accessors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "toml.h"
#include "util.h"

static toml_value *parse(const char *s, toml_error *e) {
    return toml_parse(s, strlen(s), NULL, e);
}

/* Run fn in a child; true when it died of SIGABRT (hale_panic). */
static bool aborts(void (*fn)(void)) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 2);
        fn();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

/* R: C2 */
static void test_tree_order_and_positions(void **state) {
    (void)state;
    toml_error e;
    toml_value *r = parse("# c\n"
                          "zeta = 1\n"
                          "alpha = \"x\"\n"
                          "[server]\n"
                          "  port = 8080\n"
                          "  host.name = 'h'\n",
                          &e);
    assert_non_null(r);
    assert_int_equal(toml_len(r), 3);
    toml_pos p;
    assert_string_equal(toml_table_key_at(r, 0, NULL, &p), "zeta");
    assert_int_equal(p.line, 2);
    assert_int_equal(p.col, 1);
    assert_string_equal(toml_table_key_at(r, 1, NULL, NULL), "alpha");
    assert_string_equal(toml_table_key_at(r, 2, NULL, NULL), "server");
    const toml_value *srv = toml_table_get(r, "server");
    assert_int_equal(toml_type_of(srv), TOML_TABLE);
    const toml_value *port = toml_table_get(srv, "port");
    assert_int_equal(toml_int(port), 8080);
    assert_int_equal(toml_pos_of(port).line, 5);
    assert_int_equal(toml_pos_of(port).col, 10);
    toml_table_key_at(srv, 0, NULL, &p);
    assert_int_equal(p.line, 5);
    assert_int_equal(p.col, 3);
    const toml_value *host = toml_table_get(srv, "host");
    assert_string_equal(toml_str(toml_table_get(host, "name"), NULL), "h");
    assert_int_equal(toml_pos_of(toml_table_get(host, "name")).col, 15);
    assert_null(toml_table_get(r, "missing"));
    toml_free(r);
}

/* Columns count characters, not bytes. */
static void test_column_counts_characters(void **state) {
    (void)state;
    toml_error e;
    assert_null(parse("k = \"\xc3\xa9\xc3\xa9\" x\n", &e));
    assert_int_equal(e.pos.line, 1);
    assert_int_equal(e.pos.col, 10);
}

/* R: C2, Y1 -- every error has a position and says what was expected. */
static void test_error_messages(void **state) {
    (void)state;
    static const struct {
        const char *in;
        int line, col;
        const char *msg;
    } cases[] = {
        {"a = 1\nport 8080\n", 2, 6, "expected '=' after key"},
        {"a = 1\nb =\n", 2, 4, "expected a value after '='"},
        {"x = \"abc\n", 1, 9, "expected '\"' before the end of the line"},
        {"x = \"abc", 1, 5, "expected '\"' to close the string started here"},
        {"a = [1, 2\n", 2, 1, "expected ',' or ']' after an array element"},
        {"[a]\nx = 1\n[a]\n", 3, 2, "table \"a\" is already defined"},
        {"a = 1\na = 2\n", 2, 1, "duplicate key \"a\""},
        {"a = 1 2\n", 1, 7, "expected a newline or a comment after the value"},
        {"[server\n", 1, 8, "expected ']' to close the table header"},
        {"a = 0x\n", 1, 5, "invalid number"},
        {"a = 007\n", 1, 5, "leading zeros are not allowed"},
        {"a = 99999999999999999999\n", 1, 5, "integer does not fit in 64 bits"},
        {"d = 2023-02-30\n", 1, 5, "date out of range"},
        {"s = \"\\q\"\n", 1, 7, "invalid escape sequence (expected one of \\b \\t \\n "
                                "\\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX)"},
        {"t = {a = 1,}\n", 1, 12, "expected a key after ',' (no trailing comma in inline tables)"},
        {"a = \xff\n", 1, 5, "invalid UTF-8"},
        {"a = tru\n", 1, 5, "expected a value (true and false are lowercase)"},
        {"a.b = 1\na.b.c = 2\n", 2, 3, "key \"b\" is already an integer, not a table"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        toml_error e;
        toml_value *r = parse(cases[i].in, &e);
        if (r) fail_msg("case %zu parsed: %s", i, cases[i].in);
        if (e.pos.line != cases[i].line || e.pos.col != cases[i].col ||
            strcmp(e.msg, cases[i].msg) != 0)
            fail_msg("case %zu: got %d:%d: %s", i, e.pos.line, e.pos.col, e.msg);
    }
}

/* Messages never quote values, so a secret in a broken file stays secret (R: Y7). */
static void test_errors_never_quote_values(void **state) {
    (void)state;
    const char *in[] = {
        "url = \"postgres://u:s3cr3t@db\" junk\n",
        "url = 's3cr3t\n",
        "url = s3cr3t\n",
        "url = [\"s3cr3t\" \"x\"]\n",
        "url = { p = \"s3cr3t\" q = 1 }\n",
    };
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        toml_error e;
        assert_null(parse(in[i], &e));
        assert_null(strstr(e.msg, "s3cr3t"));
    }
}

static char *repeat(const char *head, const char *unit, size_t n, const char *tail) {
    hale_buf b;
    hale_buf_init(&b);
    hale_buf_puts(&b, head);
    for (size_t i = 0; i < n; i++) hale_buf_puts(&b, unit);
    hale_buf_puts(&b, tail);
    return b.data;
}

/* R: Y1 -- hostile nesting is an error with a position, not a stack overflow. */
static void test_depth_limit(void **state) {
    (void)state;
    static const struct { const char *head, *unit, *tail; } cases[] = {
        {"a = ", "[", ""},
        {"", "[", ""},
        {"a = ", "{b = ", ""},
        {"x", ".x", " = 1\n"},
        {"", "[[a]]\n", ""},
        {"a = [", "[1], ", "]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = repeat(cases[i].head, cases[i].unit, 10000, cases[i].tail);
        toml_error e;
        toml_value *r = parse(s, &e);
        if (i >= 4) { /* wide, not deep: fine */
            assert_non_null(r);
            toml_free(r);
        } else {
            assert_null(r);
            assert_true(e.pos.line >= 1 && e.pos.col >= 1);
        }
        free(s);
    }
    toml_error e;
    char *s = repeat("a = ", "[", 10000, "");
    assert_null(parse(s, &e));
    assert_string_equal(e.msg, "nesting deeper than 64 levels");
    assert_int_equal(e.pos.col, 5 + 64);
    free(s);
    /* exactly at the limit is fine */
    s = repeat("a = ", "[", 64, "");
    char *t = repeat(s, "]", 64, "\n");
    toml_value *r = parse(t, &e);
    assert_non_null(r);
    toml_free(r);
    free(s);
    free(t);
}

/* R: Y1 -- key count and input size are bounded. */
static void test_key_and_size_limits(void **state) {
    (void)state;
    hale_buf b;
    hale_buf_init(&b);
    for (int i = 0; i < 20000; i++) hale_buf_printf(&b, "k%d = %d\n", i, i);
    toml_error e;
    assert_null(toml_parse(b.data, b.len, NULL, &e));
    assert_string_equal(e.msg, "more than 10000 keys");
    assert_int_equal(e.pos.line, 10001);
    /* inline and dotted keys count too */
    b.len = 0;
    hale_buf_puts(&b, "t = {");
    for (int i = 0; i < 12000; i++) hale_buf_printf(&b, "%sa%d.b = 1", i ? ", " : "", i);
    hale_buf_puts(&b, "}\n");
    assert_null(toml_parse(b.data, b.len, NULL, &e));
    assert_string_equal(e.msg, "more than 10000 keys");
    /* under a custom limit */
    toml_limits lim = toml_default_limits;
    lim.max_keys = 3;
    assert_null(toml_parse("a=1\nb=2\nc=3\nd=4\n", 16, &lim, &e));
    assert_int_equal(e.pos.line, 4);
    lim = toml_default_limits;
    lim.max_input = 8;
    assert_null(toml_parse("a = 12345\n", 10, &lim, &e));
    assert_string_equal(e.msg, "input larger than 8 bytes");
    /* 10000 keys in one table stay fast and findable (hash index) */
    b.len = 0;
    for (int i = 0; i < 10000; i++) hale_buf_printf(&b, "k%d = %d\n", i, i);
    toml_value *r = toml_parse(b.data, b.len, NULL, &e);
    assert_non_null(r);
    assert_int_equal(toml_int(toml_table_get(r, "k9999")), 9999);
    assert_int_equal(toml_int(toml_table_get(r, "k0")), 0);
    toml_free(r);
    hale_buf_free(&b);
}

static void test_datetimes(void **state) {
    (void)state;
    toml_error e;
    toml_value *r = parse("a = 1979-05-27T07:32:00.999999-07:00\n"
                          "b = 1979-05-27 07:32:00\n"
                          "c = 1979-05-27\n"
                          "d = 00:32:00.5\n"
                          "e = 2000-02-29t23:59:60z\n",
                          &e);
    assert_non_null(r);
    char buf[TOML_DT_BUFSZ];
    const toml_datetime *dt = toml_dt(toml_table_get(r, "a"));
    assert_int_equal(dt->kind, TOML_DT_OFFSET);
    assert_int_equal(dt->offset_minutes, -420);
    assert_int_equal(dt->nanosecond, 999999000);
    toml_datetime_format(dt, buf, sizeof buf);
    assert_string_equal(buf, "1979-05-27T07:32:00.999999-07:00");
    dt = toml_dt(toml_table_get(r, "b"));
    assert_int_equal(dt->kind, TOML_DT_LOCAL);
    toml_datetime_format(dt, buf, sizeof buf);
    assert_string_equal(buf, "1979-05-27T07:32:00");
    dt = toml_dt(toml_table_get(r, "c"));
    assert_int_equal(dt->kind, TOML_DT_DATE);
    toml_datetime_format(dt, buf, sizeof buf);
    assert_string_equal(buf, "1979-05-27");
    dt = toml_dt(toml_table_get(r, "d"));
    assert_int_equal(dt->kind, TOML_DT_TIME);
    toml_datetime_format(dt, buf, sizeof buf);
    assert_string_equal(buf, "00:32:00.5");
    dt = toml_dt(toml_table_get(r, "e"));
    toml_datetime_format(dt, buf, sizeof buf);
    assert_string_equal(buf, "2000-02-29T23:59:60Z");
    /* truncated output still NUL-terminated, full length returned */
    assert_int_equal(toml_datetime_format(dt, buf, 5), 20);
    assert_string_equal(buf, "2000");
    toml_free(r);
}

static void test_strings_with_nul(void **state) {
    (void)state;
    toml_error e;
    toml_value *r = parse("\"k\\u0000\" = \"a\\u0000b\"\n", &e);
    assert_non_null(r);
    size_t kl, vl;
    const char *k = toml_table_key_at(r, 0, &kl, NULL);
    assert_int_equal(kl, 2);
    assert_memory_equal(k, "k\0", 2);
    const char *v = toml_str(toml_table_value_at(r, 0), &vl);
    assert_int_equal(vl, 3);
    assert_memory_equal(v, "a\0b", 3);
    toml_free(r);
}

static void wrong_accessor(void) {
    toml_value *r = toml_parse("a = 1", 5, NULL, NULL);
    (void)toml_str(toml_table_get(r, "a"), NULL);
}

/* R: B6 -- using an accessor on the wrong type is a programming error. */
static void test_wrong_accessor_aborts(void **state) {
    (void)state;
    assert_true(aborts(wrong_accessor));
}

static void test_empty_and_bom(void **state) {
    (void)state;
    toml_value *r = toml_parse("", 0, NULL, NULL);
    assert_non_null(r);
    assert_int_equal(toml_len(r), 0);
    toml_free(r);
    r = toml_parse("\xEF\xBB\xBF" "a = 1\r\n", 10, NULL, NULL);
    assert_non_null(r);
    assert_int_equal(toml_int(toml_table_get(r, "a")), 1);
    toml_free(r);
    toml_free(NULL);
    /* empty strings are real, NUL-terminated C strings (found by fuzz_toml) */
    {
        const char *e = "a = \"\"\nb = ''\nc = \"\"\"\"\"\"\n";
        r = toml_parse(e, strlen(e), NULL, NULL);
    }
    assert_non_null(r);
    for (size_t i = 0; i < 3; i++) {
        size_t n = 99;
        assert_string_equal(toml_str(toml_table_value_at(r, i), &n), "");
        assert_int_equal(n, 0);
    }
    toml_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree_order_and_positions),
        cmocka_unit_test(test_column_counts_characters),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_errors_never_quote_values),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_key_and_size_limits),
        cmocka_unit_test(test_datetimes),
        cmocka_unit_test(test_strings_with_nul),
        cmocka_unit_test(test_wrong_accessor_aborts),
        cmocka_unit_test(test_empty_and_bom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
