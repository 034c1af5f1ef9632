/* Tests for src/runtime/common/timer.c, the one thread that runs the health checks
 * (R: H2) and the API-key reload (R: A9): deadline order, periods counted
 * from the end of a run (no catch-up bursts), tasks added after start,
 * cancel and stop that wait for a run in progress, a full table, the thread
 * name. Timing is only ever asserted loosely (ordering, at least N, at most
 * what the elapsed time allows): these machines are noisy. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "timer.h"
#include "util.h"

#include "eventually.h"

/* The order tasks ran in, one letter per run. */
static pthread_mutex_t lmu = PTHREAD_MUTEX_INITIALIZER;
static char runlog[4096];

static void log_reset(void) {
    pthread_mutex_lock(&lmu);
    runlog[0] = '\0';
    pthread_mutex_unlock(&lmu);
}

static void log_copy(char *out, size_t n) {
    pthread_mutex_lock(&lmu);
    snprintf(out, n, "%s", runlog);
    pthread_mutex_unlock(&lmu);
}

typedef struct probe {
    char letter;
    atomic_int runs;
    atomic_int in_run;
    atomic_int sleep_ms;
    hale_timer *t;
    int id;
    int cancel_at;       /* cancels itself on this run (0: never) */
} probe;

static void probe_task(void *arg) {
    probe *p = arg;
    atomic_store(&p->in_run, 1);
    pthread_mutex_lock(&lmu);
    size_t n = strlen(runlog);
    if (n + 1 < sizeof runlog) runlog[n] = p->letter, runlog[n + 1] = '\0';
    pthread_mutex_unlock(&lmu);
    int ms = atomic_load(&p->sleep_ms);
    if (ms) usleep((useconds_t)ms * 1000);
    int r = atomic_fetch_add(&p->runs, 1) + 1;
    if (p->cancel_at && r == p->cancel_at) hale_timer_cancel(p->t, p->id);
    atomic_store(&p->in_run, 0);
}

/* R: H2, A9 - tasks run at once in the order added, then by deadline: a
 * 20 ms task runs several times before a 300 ms one runs again */
static void test_deadline_order(void **st) {
    (void)st;
    log_reset();
    hale_timer *t = hale_timer_new();
    probe a = {.letter = 'A'}, b = {.letter = 'B'}, c = {.letter = 'C'};
    assert_true(hale_timer_every(t, "a", 300, probe_task, &a) >= 0);
    assert_true(hale_timer_every(t, "b", 20, probe_task, &b) >= 0);
    assert_true(hale_timer_every(t, "c", 60000, probe_task, &c) >= 0);
    usleep(30000);
    assert_int_equal(atomic_load(&a.runs), 0); /* nothing before start */
    char err[128];
    assert_int_equal(hale_timer_start(t, err, sizeof err), 0);
    assert_int_equal(hale_timer_start(t, err, sizeof err), 0); /* once */
    EVENTUALLY(atomic_load(&a.runs) >= 2);
    hale_timer_stop(t);
    char got[sizeof runlog];
    log_copy(got, sizeof got);
    assert_memory_equal(got, "ABCB", 4);
    /* B's deadline came 15 times sooner: A's second run found B ahead */
    const char *second_a = strchr(got + 1, 'A');
    assert_non_null(second_a);
    size_t bs = 0;
    for (const char *q = got; q < second_a; q++) bs += *q == 'B';
    assert_true(bs >= 3);
    assert_int_equal(atomic_load(&c.runs), 1); /* its next run is a minute away */
    hale_timer_free(t);
}

/* R: H2 - a task runs at its period, counted from the end of its previous
 * run: at least a few runs, never more than the elapsed time allows */
static void test_period_bounds(void **st) {
    (void)st;
    hale_timer *t = hale_timer_new();
    probe p = {.letter = 'P'};
    assert_true(hale_timer_every(t, "p", 20, probe_task, &p) >= 0);
    uint64_t t0 = hale_now_ns();
    assert_int_equal(hale_timer_start(t, NULL, 0), 0);
    EVENTUALLY(atomic_load(&p.runs) >= 4);
    usleep(100000);
    hale_timer_stop(t);
    uint64_t elapsed_ms = (hale_now_ns() - t0) / 1000000u;
    int runs = atomic_load(&p.runs);
    assert_true(runs >= 4);
    assert_true((uint64_t)runs <= elapsed_ms / 20 + 1);
    hale_timer_free(t);
}

/* R: H2, Y5 - a slow task (150 ms a run) delays a fast one but never drops
 * it, and the fast one does not catch up on the periods it missed: the two
 * alternate, one run each */
static void test_slow_task_delays_not_drops(void **st) {
    (void)st;
    log_reset();
    hale_timer *t = hale_timer_new();
    probe slow = {.letter = 'S'}, fast = {.letter = 'F'};
    atomic_store(&slow.sleep_ms, 150);
    assert_true(hale_timer_every(t, "slow", 10, probe_task, &slow) >= 0);
    assert_true(hale_timer_every(t, "fast", 10, probe_task, &fast) >= 0);
    assert_int_equal(hale_timer_start(t, NULL, 0), 0);
    EVENTUALLY(atomic_load(&fast.runs) >= 3);
    hale_timer_stop(t);
    char got[sizeof runlog];
    log_copy(got, sizeof got);
    assert_memory_equal(got, "SFSFSF", 6);
    int s = atomic_load(&slow.runs), f = atomic_load(&fast.runs);
    assert_true(f >= s - 1 && f <= s + 1);
    hale_timer_free(t);
}

/* R: H2, A9 - a task added to a running timer runs at once, even while the
 * thread sleeps towards a deadline a minute away */
static void test_add_after_start(void **st) {
    (void)st;
    hale_timer *t = hale_timer_new();
    assert_int_equal(hale_timer_start(t, NULL, 0), 0);
    probe far = {.letter = 'X'}, late = {.letter = 'Y'};
    assert_true(hale_timer_every(t, "far", 60000, probe_task, &far) >= 0);
    EVENTUALLY(atomic_load(&far.runs) == 1);
    assert_true(hale_timer_every(t, "late", 20, probe_task, &late) >= 0);
    EVENTUALLY(atomic_load(&late.runs) >= 2);
    assert_int_equal(atomic_load(&far.runs), 1);
    hale_timer_free(t);
}

/* R: H2, A9 - stop joins: a run in progress ends before it returns and
 * nothing runs after; stop is idempotent; a stopped timer takes no task
 * and does not start again */
static void test_stop_joins(void **st) {
    (void)st;
    hale_timer *t = hale_timer_new();
    hale_timer_stop(t); /* never started: nothing to join */
    hale_timer_free(t);

    t = hale_timer_new();
    probe p = {.letter = 'P'};
    atomic_store(&p.sleep_ms, 30);
    assert_true(hale_timer_every(t, "p", 1, probe_task, &p) >= 0);
    assert_int_equal(hale_timer_start(t, NULL, 0), 0);
    EVENTUALLY(atomic_load(&p.in_run) == 1);
    hale_timer_stop(t);
    assert_int_equal(atomic_load(&p.in_run), 0);
    int runs = atomic_load(&p.runs);
    usleep(80000);
    assert_int_equal(atomic_load(&p.runs), runs);
    hale_timer_stop(t);
    assert_int_equal(hale_timer_every(t, "again", 1, probe_task, &p), -1);
    char err[128];
    assert_int_equal(hale_timer_start(t, err, sizeof err), -1);
    assert_non_null(strstr(err, "stopped"));
    usleep(20000);
    assert_int_equal(atomic_load(&p.runs), runs);
    hale_timer_free(t);
    hale_timer_free(NULL);
}

/* R: H2, A9 - cancel waits for the task's run in progress and it never
 * runs again; a task may cancel itself; the others keep running */
static void test_cancel(void **st) {
    (void)st;
    hale_timer *t = hale_timer_new();
    probe p = {.letter = 'P'}, self = {.letter = 'Q', .cancel_at = 3}, other = {.letter = 'O'};
    atomic_store(&p.sleep_ms, 40);
    p.id = hale_timer_every(t, "p", 1, probe_task, &p);
    self.t = t;
    self.id = hale_timer_every(t, "self", 1, probe_task, &self);
    assert_true(p.id >= 0 && self.id >= 0);
    assert_true(hale_timer_every(t, "other", 5, probe_task, &other) >= 0);
    assert_int_equal(hale_timer_start(t, NULL, 0), 0);
    EVENTUALLY(atomic_load(&p.in_run) == 1);
    hale_timer_cancel(t, p.id);
    assert_int_equal(atomic_load(&p.in_run), 0);
    int runs = atomic_load(&p.runs);
    EVENTUALLY(atomic_load(&self.runs) == 3);
    int others = atomic_load(&other.runs);
    EVENTUALLY(atomic_load(&other.runs) >= others + 5);
    assert_int_equal(atomic_load(&p.runs), runs);
    assert_int_equal(atomic_load(&self.runs), 3);
    hale_timer_cancel(t, p.id); /* again: nothing */
    hale_timer_cancel(t, -1);
    hale_timer_cancel(t, HALE_TIMER_MAX_TASKS);
    hale_timer_free(t);
}

/* R: H2 - the table holds HALE_TIMER_MAX_TASKS tasks; one more is -1 until
 * one is cancelled */
static void test_full_table(void **st) {
    (void)st;
    hale_timer *t = hale_timer_new();
    probe p = {.letter = 'P'};
    int ids[HALE_TIMER_MAX_TASKS];
    for (int i = 0; i < HALE_TIMER_MAX_TASKS; i++) {
        ids[i] = hale_timer_every(t, "p", 1000, probe_task, &p);
        assert_true(ids[i] >= 0);
    }
    assert_int_equal(hale_timer_every(t, "one-too-many", 1000, probe_task, &p), -1);
    hale_timer_cancel(t, ids[5]);
    assert_int_equal(hale_timer_every(t, "room-again", 1000, probe_task, &p), ids[5]);
    assert_int_equal(hale_timer_every(t, "full-again", 1000, probe_task, &p), -1);
    hale_timer_free(t);
}

/* How many threads of this process are named name. */
static int threads_named(const char *name) {
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(comm, sizeof comm, f)) comm[strcspn(comm, "\n")] = '\0';
        fclose(f);
        n += !strcmp(comm, name);
    }
    closedir(d);
    return n;
}

/* R: H2 - one thread, named "hale-timer" (what top -H shows), gone after
 * stop; the monotonic wait returns at its deadline */
static void test_thread_name_and_wait(void **st) {
    (void)st;
    hale_timer *t = hale_timer_new();
    probe p = {.letter = 'P'};
    assert_true(hale_timer_every(t, "p", 10, probe_task, &p) >= 0);
    assert_int_equal(threads_named("hale-timer"), 0);
    assert_int_equal(hale_timer_start(t, NULL, 0), 0);
    EVENTUALLY(atomic_load(&p.runs) >= 1);
    assert_int_equal(threads_named("hale-timer"), 1);
    hale_timer_free(t);
    assert_int_equal(threads_named("hale-timer"), 0);

    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv;
    assert_int_equal(hale_cond_init_monotonic(&cv), 0);
    pthread_mutex_lock(&mu);
    uint64_t dl = hale_now_ns() + 20000000u;
    while (!hale_cond_wait_until(&cv, &mu, dl)) {}
    assert_true(hale_now_ns() >= dl);
    assert_true(hale_cond_wait_until(&cv, &mu, 1)); /* long past */
    pthread_mutex_unlock(&mu);
    pthread_cond_destroy(&cv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadline_order),
        cmocka_unit_test(test_period_bounds),
        cmocka_unit_test(test_slow_task_delays_not_drops),
        cmocka_unit_test(test_add_after_start),
        cmocka_unit_test(test_stop_joins),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_full_table),
        cmocka_unit_test(test_thread_name_and_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
