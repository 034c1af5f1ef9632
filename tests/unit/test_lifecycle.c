/* Tests for src/runtime/service/lifecycle.c: the signal thread (first SIGTERM or
 * SIGINT requests shutdown, a repeat of the same kind within 1 s is the same
 * request, the other kind or the same one after the window exits 1, SIGHUP
 * is ignored: R: L1, L3), interruptible waits and the retry backoff (R: L2).
 * Every signal scenario runs in a child of its own: the signal thread and
 * the shutdown flag are process-wide. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lifecycle.h"
#include "util.h"

static int out_fd = -1; /* the child's report pipe */

static void say(const char *s) {
    ssize_t n = write(out_fd, s, strlen(s));
    (void)n;
}

static void on_signal(int signo, int count, void *arg) {
    char line[64];
    snprintf(line, sizeof line, "%s signal %d count %d;", (const char *)arg,
             signo == SIGTERM ? 15 : signo == SIGINT ? 2 : signo, count);
    say(line);
}

static void on_repeat(int signo, void *arg) {
    char line[64];
    snprintf(line, sizeof line, "%s repeat %d;", (const char *)arg, signo == SIGTERM ? 15 : signo);
    say(line);
}

/* Runs scenario in a child with the lifecycle started; returns its exit
 * status (or 128+signal) and its report in out. */
static int run_child(void (*scenario)(void), char *out, size_t cap) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        out_fd = fds[1];
        alarm(20); /* liveness only: a hung child fails the test */
        hale_lifecycle_hooks h = {.on_signal = on_signal, .on_repeat = on_repeat, .arg = "init"};
        if (hale_lifecycle_init(&h) != 0) _exit(70);
        scenario();
        exit(0); /* not _exit: a coverage build writes its counters */
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t n;
    while ((n = read(fds[0], out + got, cap - 1 - got)) > 0) got += (size_t)n;
    out[got] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* waits (bounded) until the shutdown flag is set */
static bool wait_flag(void) { return hale_wait_shutdown(5000); }

static void sc_term_then_repeat(void) {
    if (hale_shutdown_requested()) say("early;");
    kill(getpid(), SIGTERM);
    if (!wait_flag()) say("no shutdown;");
    else say("shutdown;");
    kill(getpid(), SIGTERM); /* make forwarding its own: the same request */
    usleep(200000);
    say("alive;");
}

/* R: L1, L3 - SIGTERM requests shutdown once; the same signal again within
 * the window only calls on_repeat and the process goes on to exit 0 */
static void test_term_and_repeat(void **st) {
    (void)st;
    char out[512];
    assert_int_equal(run_child(sc_term_then_repeat, out, sizeof out), 0);
    assert_string_equal(out, "init signal 15 count 1;shutdown;init repeat 15;alive;");
}

static void sc_term_then_int(void) {
    kill(getpid(), SIGINT);
    if (wait_flag()) say("shutdown;");
    kill(getpid(), SIGTERM); /* the other kind: a second request */
    sleep(5);
    say("still here;");
}

/* R: L1, L3 - the other kind of signal is a second request: exit 1 at once */
static void test_other_signal_forces_exit(void **st) {
    (void)st;
    char out[512];
    assert_int_equal(run_child(sc_term_then_int, out, sizeof out), HALE_EXIT_FORCED);
    assert_string_equal(out, "init signal 2 count 1;shutdown;init signal 15 count 2;");
}

static void sc_same_after_window(void) {
    kill(getpid(), SIGTERM);
    if (wait_flag()) say("shutdown;");
    usleep((HALE_SIGNAL_REPEAT_WINDOW_MS + 200) * 1000);
    kill(getpid(), SIGTERM);
    sleep(5);
    say("still here;");
}

/* R: L1, L3 - the same signal once the window has passed exits 1 */
static void test_same_signal_after_window(void **st) {
    (void)st;
    char out[512];
    assert_int_equal(run_child(sc_same_after_window, out, sizeof out), 1);
    assert_string_equal(out, "init signal 15 count 1;shutdown;init signal 15 count 2;");
}

static void sc_hup_and_pipe(void) {
    kill(getpid(), SIGHUP);
    kill(getpid(), SIGPIPE); /* ignored process-wide */
    usleep(200000);
    say(hale_shutdown_requested() ? "shutdown;" : "running;");
}

/* R: L1 - SIGHUP neither stops nor counts; SIGPIPE does not kill */
static void test_hup_and_pipe_ignored(void **st) {
    (void)st;
    char out[256];
    assert_int_equal(run_child(sc_hup_and_pipe, out, sizeof out), 0);
    assert_string_equal(out, "running;");
}

static void *request_later(void *arg) {
    (void)arg;
    usleep(50000);
    hale_request_shutdown();
    return NULL;
}

static void sc_wait(void) {
    if (hale_wait_shutdown(30)) say("early;");
    else say("timed out;");
    pthread_t t;
    pthread_create(&t, NULL, request_later, NULL);
    if (hale_wait_shutdown(10000)) say("woken;");
    pthread_join(t, NULL);
    if (hale_wait_shutdown(0) && hale_shutdown_requested()) say("stays;");
}

/* R: L1 - a wait returns false at its end, true as soon as shutdown is
 * requested from another thread, and the request stays */
static void test_wait_shutdown(void **st) {
    (void)st;
    char out[256];
    assert_int_equal(run_child(sc_wait, out, sizeof out), 0);
    assert_string_equal(out, "timed out;woken;stays;");
}

/* R: L2 - full jitter within [base/2, min(max, base * 2^attempt)] */
static void test_backoff(void **st) {
    (void)st;
    for (int i = 0; i < 200; i++) {
        uint64_t d0 = hale_backoff_ms(0, 100, 5000);
        assert_true(d0 >= 50 && d0 <= 100);
        uint64_t d3 = hale_backoff_ms(3, 100, 5000);
        assert_true(d3 >= 50 && d3 <= 800);
        uint64_t big = hale_backoff_ms(60, 100, 5000); /* no overflow past max */
        assert_true(big >= 50 && big <= 5000);
    }
    /* max below base/2: the cap itself */
    assert_int_equal(hale_backoff_ms(0, 100, 10), 10);
    assert_int_equal(hale_backoff_ms(5, 0, 1000), 0);
    /* the jitter actually varies */
    uint64_t first = hale_backoff_ms(10, 1000, 60000);
    bool varied = false;
    for (int i = 0; i < 50 && !varied; i++) varied = hale_backoff_ms(10, 1000, 60000) != first;
    assert_true(varied);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_term_and_repeat),
        cmocka_unit_test(test_other_signal_forces_exit),
        cmocka_unit_test(test_same_signal_after_window),
        cmocka_unit_test(test_hup_and_pipe_ignored),
        cmocka_unit_test(test_wait_shutdown),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
