/* Tests for src/runtime/common/util.c: allocation wrappers, the panic path (a
 * broken invariant aborts with the call site, R: B6), the overflow-checked
 * buffer, and JSON escaping of arbitrary bytes (log lines and error bodies
 * stay valid JSON whatever a client sends, R: O1, A8). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

/* R: B6 - the x* wrappers return usable memory, also for size 0 */
static void test_alloc_wrappers(void **st) {
    (void)st;
    char *p = xmalloc(0);
    assert_non_null(p);
    free(p);
    int *z = xcalloc(16, sizeof *z);
    for (int i = 0; i < 16; i++) assert_int_equal(z[i], 0);
    z = xrealloc(z, 64 * sizeof *z);
    assert_int_equal(z[15], 0);
    free(z);
    free(xcalloc(0, 0));
    free(xrealloc(NULL, 0));
    char *s = xstrdup("hale");
    assert_string_equal(s, "hale");
    free(s);
    s = xstrndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);
    size_t out = 0;
    assert_true(hale_mul_ok(1000, 1000, &out));
    assert_int_equal(out, 1000000);
    assert_false(hale_mul_ok(SIZE_MAX / 2 + 1, 2, &out));
}

/* Runs fn in a child; returns the child's stderr (static) and its signal. */
static char child_err[1024];
static int run_child(void (*fn)(void)) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn();
        exit(0); /* not _exit: a coverage build writes its counters */
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t n;
    while ((n = read(fds[0], child_err + got, sizeof child_err - 1 - got)) > 0) got += (size_t)n;
    child_err[got] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) ? WTERMSIG(status) : -WEXITSTATUS(status);
}

static void do_panic(void) { hale_panic("broken %s %d", "invariant", 42); }
static void do_assert(void) {
    volatile int one = 1;
    HALE_ASSERT(one == 2);
}
static void do_assert_ok(void) {
    volatile int one = 1;
    HALE_ASSERT(one == 1);
}
static void do_buf_overflow(void) {
    hale_buf b;
    hale_buf_init(&b);
    hale_buf_append(&b, "x", 1);
    hale_buf_reserve(&b, SIZE_MAX - 1); /* len + extra + 1 overflows */
}

/* R: B6 - hale_panic and a failed HALE_ASSERT abort (SIGABRT) after one
 * line naming the call site; a true assertion does nothing */
static void test_panic_aborts_with_site(void **st) {
    (void)st;
    assert_int_equal(run_child(do_panic), SIGABRT);
    assert_non_null(strstr(child_err, "hale: fatal internal error at "));
    assert_non_null(strstr(child_err, "test_util.c:"));
    assert_non_null(strstr(child_err, "broken invariant 42"));
    assert_int_equal(run_child(do_assert), SIGABRT);
    assert_non_null(strstr(child_err, "assertion failed: one == 2"));
    assert_int_equal(run_child(do_assert_ok), 0);
}

/* R: B6 - a size that would wrap is a fatal out-of-memory, not a short buffer */
static void test_buf_overflow_is_fatal(void **st) {
    (void)st;
    assert_int_equal(run_child(do_buf_overflow), SIGABRT);
    assert_non_null(strstr(child_err, "out of memory"));
}

/* R: O1 - the buffer stays NUL-terminated and grows as needed */
static void test_buf(void **st) {
    (void)st;
    hale_buf b;
    hale_buf_init(&b);
    assert_null(b.data);
    hale_buf_reserve(&b, 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    hale_buf_append(&b, NULL, 0);
    assert_int_equal(b.len, 0);
    for (int i = 0; i < 100; i++) hale_buf_puts(&b, "0123456789");
    assert_int_equal(b.len, 1000);
    assert_true(b.cap > 1000);
    assert_int_equal(b.data[1000], '\0');
    hale_buf_printf(&b, "|%d|%s", 7, "seven");
    assert_string_equal(b.data + 1000, "|7|seven");
    hale_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
}

static void escape_is(const char *in, size_t n, const char *want) {
    hale_buf b;
    hale_buf_init(&b);
    hale_buf_json_escape(&b, in, n);
    assert_string_equal(b.data, want);
    hale_buf_free(&b);
}

/* R: O1, A8 - quotes, backslash and control bytes are escaped; valid UTF-8
 * passes; each byte of an invalid sequence becomes U+FFFD */
static void test_json_escape(void **st) {
    (void)st;
    escape_is("", 0, "");
    escape_is("plain text", 10, "plain text");
    escape_is("a\"b\\c", 5, "a\\\"b\\\\c");
    escape_is("\n\r\t", 3, "\\n\\r\\t");
    escape_is("\x01\x1f", 2, "\\u0001\\u001f");
    escape_is("\x7f", 1, "\x7f"); /* DEL needs no escape in JSON (RFC 8259 §7) */
    escape_is("nul\0x", 5, "nul\\u0000x");
    escape_is("caf\xc3\xa9", 5, "caf\xc3\xa9");               /* 2 bytes */
    escape_is("\xe2\x82\xac", 3, "\xe2\x82\xac");             /* euro, 3 bytes */
    escape_is("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80");     /* emoji, 4 bytes */
    escape_is("\xff", 1, "\xef\xbf\xbd");                     /* never valid */
    escape_is("\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd");     /* 0xC0 lead */
    escape_is("\xe0\x80\xaf", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* overlong */
    escape_is("\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
    escape_is("\xf4\x90\x80\x80", 4,
              "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");      /* > U+10FFFF */
    escape_is("\xc3", 1, "\xef\xbf\xbd");                     /* truncated */
    escape_is("\xc3(", 2, "\xef\xbf\xbd(");                   /* bad continuation */
}

/* R: L1 - the clocks move forward and agree with a sleep */
static void test_clocks(void **st) {
    (void)st;
    uint64_t a = hale_now_ns(), w = hale_wall_ms();
    usleep(2000);
    uint64_t b = hale_now_ns();
    assert_true(b - a >= 2000000u);
    assert_true(w > 1600000000000ull); /* after 2020 */
}

/* R: A8 - hale_err always returns -1 and fills err only when given */
static void test_err(void **st) {
    (void)st;
    char err[16];
    assert_int_equal(hale_err(err, sizeof err, "bad %s", "value, truncated here"), -1);
    assert_string_equal(err, "bad value, trun");
    assert_int_equal(hale_err(NULL, 0, "ignored"), -1);
    err[0] = 'x';
    assert_int_equal(hale_err(err, 0, "ignored"), -1);
    assert_int_equal(err[0], 'x');
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_wrappers),
        cmocka_unit_test(test_panic_aborts_with_site),
        cmocka_unit_test(test_buf_overflow_is_fatal),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_err),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
