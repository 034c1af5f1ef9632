/* Tests for src/runtime/health/health.c and health_http.c: the availability state
 * machine and its transitions (R: H2, L1), checks on a timer thread (a failing or slow
 * required check turns readiness off, an optional one does not, R: H2, Y5),
 * the liveness watchdog (R: H1), the JSON detail and its public form
 * without error text (R: H4, Y7) and the probe endpoints over a real
 * in-process server (R: H1, H2, H3, H4). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "health.h"
#include "http_fixture.h"
#include "timer.h"
#include "util.h"

static pthread_mutex_t tmu = PTHREAD_MUTEX_INITIALIZER;
static char transitions[2048];

static void on_transition(hale_avail from, hale_avail to, const char *why, void *arg) {
    (void)arg;
    pthread_mutex_lock(&tmu);
    size_t n = strlen(transitions);
    snprintf(transitions + n, sizeof transitions - n, "%s->%s (%s);", hale_avail_name(from),
             hale_avail_name(to), why);
    pthread_mutex_unlock(&tmu);
}

static void reset_transitions(void) {
    pthread_mutex_lock(&tmu);
    transitions[0] = '\0';
    pthread_mutex_unlock(&tmu);
}

static bool transitions_have(const char *s) {
    pthread_mutex_lock(&tmu);
    bool yes = strstr(transitions, s) != NULL;
    pthread_mutex_unlock(&tmu);
    return yes;
}

#include "eventually.h"

typedef struct dep {
    atomic_int fail;
    atomic_int slow_ms;
    atomic_int runs;
} dep;

static int dep_check(void *arg, char *err, size_t errlen) {
    dep *d = arg;
    atomic_fetch_add(&d->runs, 1);
    int slow = atomic_load(&d->slow_ms);
    if (slow) usleep((useconds_t)slow * 1000);
    if (atomic_load(&d->fail)) return hale_err(err, errlen, "connect to db.internal:5432 refused");
    return 0;
}

/* The name of the thread a check ran on last (/proc/thread-self/comm). */
static pthread_mutex_t nmu = PTHREAD_MUTEX_INITIALIZER;
static char ran_on[32];

static int named_check(void *arg, char *err, size_t errlen) {
    char comm[32] = "";
    FILE *f = fopen("/proc/thread-self/comm", "r");
    if (f) {
        if (fgets(comm, sizeof comm, f)) comm[strcspn(comm, "\n")] = '\0';
        fclose(f);
    }
    pthread_mutex_lock(&nmu);
    snprintf(ran_on, sizeof ran_on, "%s", comm);
    pthread_mutex_unlock(&nmu);
    return dep_check(arg, err, errlen);
}

static bool ran_on_is(const char *name) {
    pthread_mutex_lock(&nmu);
    bool yes = !strcmp(ran_on, name);
    pthread_mutex_unlock(&nmu);
    return yes;
}

static int silent_fail(void *arg, char *err, size_t errlen) {
    (void)arg;
    (void)err;
    (void)errlen;
    return -1;
}

/* R: H2, H3, L1 - starting -> ready -> draining -> stopped, each reported
 * once; draining and stopped never go back */
static void test_states_without_checks(void **st) {
    (void)st;
    reset_transitions();
    hale_health *h = hale_health_new(on_transition, NULL);
    assert_int_equal(hale_health_state(h), HALE_AVAIL_STARTING);
    assert_false(hale_health_ready(h));
    assert_true(hale_health_live(h));
    assert_int_equal(hale_health_start(h, NULL, 0), 0);
    assert_int_equal(hale_health_start(h, NULL, 0), 0); /* idempotent */
    assert_int_equal(hale_health_state(h), HALE_AVAIL_STARTING);
    hale_health_set_started(h);
    assert_int_equal(hale_health_state(h), HALE_AVAIL_READY);
    assert_true(hale_health_ready(h));
    hale_health_set_draining(h);
    assert_int_equal(hale_health_state(h), HALE_AVAIL_DRAINING);
    hale_health_set_started(h); /* no way back from draining */
    assert_int_equal(hale_health_state(h), HALE_AVAIL_DRAINING);
    hale_health_set_stopped(h);
    assert_int_equal(hale_health_state(h), HALE_AVAIL_STOPPED);
    hale_health_set_draining(h);
    assert_int_equal(hale_health_state(h), HALE_AVAIL_STOPPED);
    assert_string_equal(transitions, "starting->ready (all required checks pass);"
                                     "ready->draining (shutdown requested);"
                                     "draining->stopped (stopped);");
    hale_health_free(h);
    hale_health_free(NULL);
    assert_string_equal(hale_avail_name(HALE_AVAIL_NOT_READY), "not_ready");
    assert_string_equal(hale_avail_name((hale_avail)9), "unknown");
}

/* R: H2, Y5, H4 - a failing required check makes the state not_ready
 * within its interval and back to ready when it passes; an optional one
 * never counts; the detail shows the error, the public form does not */
static void test_checks_drive_readiness(void **st) {
    (void)st;
    reset_transitions();
    dep db = {0}, cache = {0};
    atomic_store(&cache.fail, 1);
    hale_health *h = hale_health_new(on_transition, NULL);
    assert_int_equal(hale_health_add_check(h, "store", dep_check, &db, 20, 1000, true), 0);
    assert_int_equal(hale_health_add_check(h, "redis", dep_check, &cache, 20, 1000, false), 0);
    assert_int_equal(hale_health_start(h, NULL, 0), 0);
    assert_int_equal(hale_health_add_check(h, "late", dep_check, &db, 20, 1000, true), -1);
    hale_health_set_started(h);
    assert_int_equal(hale_health_state(h), HALE_AVAIL_READY);

    hale_buf b;
    hale_buf_init(&b);
    hale_health_render_json(h, &b);
    assert_non_null(strstr(b.data, "\"status\":\"pass\",\"state\":\"ready\",\"live\":true,\"ready\":true"));
    assert_non_null(strstr(b.data, "\"store\":{\"status\":\"pass\",\"required\":true"));
    assert_non_null(strstr(b.data, "\"redis\":{\"status\":\"fail\",\"required\":false"));
    assert_non_null(strstr(b.data, "\"last_error\":\"connect to db.internal:5432 refused\""));
    assert_non_null(strstr(b.data, "\"since\":\"20")); /* an RFC 3339 time */
    hale_buf_free(&b);

    atomic_store(&db.fail, 1);
    EVENTUALLY(hale_health_state(h) == HALE_AVAIL_NOT_READY);
    assert_false(hale_health_ready(h));
    assert_true(transitions_have("ready->not_ready (check store is failing);"));
    hale_health_render_status_json(h, &b);
    assert_non_null(strstr(b.data, "\"status\":\"fail\",\"state\":\"not_ready\""));
    assert_null(strstr(b.data, "db.internal")); /* R: Y7 - no host in the public form */
    assert_non_null(strstr(b.data, "failed (the admin listener's /health has the detail)"));
    hale_buf_free(&b);

    atomic_store(&db.fail, 0);
    EVENTUALLY(hale_health_state(h) == HALE_AVAIL_READY);
    assert_true(transitions_have("not_ready->ready (all required checks pass);"));
    hale_health_stop_checks(h);
    int runs = atomic_load(&db.runs);
    usleep(60000);
    assert_int_equal(atomic_load(&db.runs), runs); /* stopped means stopped */
    hale_health_stop_checks(h);
    hale_health_free(h);
}

/* R: H2 - a check running past its timeout counts as failed while it runs,
 * and one that returned late is "timed out"; a check with no message is
 * "failed" */
static void test_slow_check_times_out(void **st) {
    (void)st;
    reset_transitions();
    dep db = {0};
    hale_health *h = hale_health_new(NULL, NULL);
    assert_int_equal(hale_health_add_check(h, "store", dep_check, &db, 10, 50, true), 0);
    assert_int_equal(hale_health_start(h, NULL, 0), 0);
    hale_health_set_started(h);
    assert_true(hale_health_ready(h));
    atomic_store(&db.slow_ms, 400);
    /* stuck inside the check: readiness off before it returns */
    EVENTUALLY(!hale_health_ready(h));
    hale_buf b;
    hale_buf_init(&b);
    hale_health_render_json(h, &b);
    assert_non_null(strstr(b.data, "\"last_error\":\"timed out\""));
    hale_buf_free(&b);
    EVENTUALLY(hale_health_state(h) == HALE_AVAIL_NOT_READY);
    atomic_store(&db.slow_ms, 0);
    EVENTUALLY(hale_health_ready(h));
    hale_health_free(h);

    hale_health *h2 = hale_health_new(NULL, NULL);
    assert_int_equal(hale_health_add_check(h2, "mute", silent_fail, NULL, 0, 0, true), 0);
    hale_health_set_started(h2); /* runs every check once, without threads */
    assert_int_equal(hale_health_state(h2), HALE_AVAIL_NOT_READY);
    hale_health_render_json(h2, &b);
    assert_non_null(strstr(b.data, "\"mute\":{\"status\":\"fail\""));
    assert_non_null(strstr(b.data, "\"last_error\":\"failed\""));
    hale_buf_free(&b);
    hale_health_free(h2);
}

/* R: H2 - with the service's timer attached, every check is a task of it
 * (one thread, "hale-timer", shared with other work): a slow check delays
 * the other one but readiness still turns off while it overruns; stopping
 * the checks takes them off the timer, which keeps running */
static void test_checks_share_the_timer(void **st) {
    (void)st;
    dep db = {0}, cache = {0};
    hale_timer *t = hale_timer_new();
    assert_int_equal(hale_timer_start(t, NULL, 0), 0);
    hale_health *h = hale_health_new(NULL, NULL);
    hale_health_use_timer(h, t);
    assert_int_equal(hale_health_add_check(h, "store", named_check, &db, 10, 50, true), 0);
    assert_int_equal(hale_health_add_check(h, "redis", dep_check, &cache, 10, 1000, false), 0);
    assert_int_equal(hale_health_start(h, NULL, 0), 0);
    EVENTUALLY(atomic_load(&db.runs) >= 2 && atomic_load(&cache.runs) >= 2);
    EVENTUALLY(ran_on_is("hale-timer"));
    hale_health_set_started(h);
    assert_true(hale_health_ready(h));
    /* one slow run of the store check: readiness off while it overruns,
     * and the redis check waits for it (one thread) */
    atomic_store(&db.slow_ms, 400);
    EVENTUALLY(!hale_health_ready(h));
    int cache_runs = atomic_load(&cache.runs);
    usleep(150000); /* still inside the 400 ms run */
    assert_true(atomic_load(&cache.runs) <= cache_runs + 1);
    atomic_store(&db.slow_ms, 0);
    EVENTUALLY(hale_health_ready(h));
    EVENTUALLY(atomic_load(&cache.runs) >= cache_runs + 3); /* delayed, not dropped */
    hale_health_stop_checks(h);
    int runs = atomic_load(&db.runs);
    usleep(60000);
    assert_int_equal(atomic_load(&db.runs), runs); /* off the timer */
    hale_health_free(h);
    hale_timer_free(t);
}

static void noop_task(void *arg) { (void)arg; }

/* R: H2 - a timer with no room (or stopped) fails the start with a reason
 * and leaves none of the checks on it; a timer attached after the start is
 * ignored */
static void test_start_without_room(void **st) {
    (void)st;
    dep db = {0};
    hale_timer *t = hale_timer_new();
    int ids[HALE_TIMER_MAX_TASKS];
    for (int i = 0; i < HALE_TIMER_MAX_TASKS - 1; i++)
        ids[i] = hale_timer_every(t, "filler", 60000, noop_task, NULL);
    hale_health *h = hale_health_new(NULL, NULL);
    hale_health_use_timer(h, t);
    assert_int_equal(hale_health_add_check(h, "store", dep_check, &db, 10, 1000, true), 0);
    assert_int_equal(hale_health_add_check(h, "redis", dep_check, &db, 10, 1000, false), 0);
    char err[128] = "";
    assert_int_equal(hale_health_start(h, err, sizeof err), -1);
    assert_non_null(strstr(err, "check redis"));
    /* "store" got the last slot and gave it back */
    ids[HALE_TIMER_MAX_TASKS - 1] = hale_timer_every(t, "last", 60000, noop_task, NULL);
    assert_true(ids[HALE_TIMER_MAX_TASKS - 1] >= 0);
    assert_int_equal(hale_timer_start(t, NULL, 0), 0);
    usleep(50000);
    assert_int_equal(atomic_load(&db.runs), 0);
    hale_timer_cancel(t, ids[0]);
    hale_timer_cancel(t, ids[1]);
    assert_int_equal(hale_health_start(h, err, sizeof err), 0);
    EVENTUALLY(atomic_load(&db.runs) >= 2);
    hale_timer *other = hale_timer_new();
    hale_health_use_timer(h, other); /* running: ignored */
    hale_health_stop_checks(h);
    hale_timer_free(other);
    hale_timer_stop(t);
    hale_health *h2 = hale_health_new(NULL, NULL);
    hale_health_use_timer(h2, t);
    assert_int_equal(hale_health_add_check(h2, "store", dep_check, &db, 10, 1000, true), 0);
    assert_int_equal(hale_health_start(h2, err, sizeof err), -1); /* a stopped timer takes none */
    hale_health_free(h2);
    hale_health_free(h);
    hale_timer_free(t);
}

/* R: H2 - at most 8 checks; a never-run check is "unknown" */
static void test_check_limit(void **st) {
    (void)st;
    dep d = {0};
    hale_health *h = hale_health_new(NULL, NULL);
    char name[16];
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "c%d", i);
        assert_int_equal(hale_health_add_check(h, name, dep_check, &d, 1000, 1000, false), 0);
    }
    assert_int_equal(hale_health_add_check(h, "c8", dep_check, &d, 1000, 1000, false), -1);
    hale_buf b;
    hale_buf_init(&b);
    hale_health_render_json(h, &b);
    assert_non_null(strstr(b.data, "\"c7\":{\"status\":\"unknown\""));
    assert_non_null(strstr(b.data, "\"last_error\":null,\"since\":null}"));
    hale_buf_free(&b);
    hale_health_free(h);
}

static void h_sleep(hale_req *r, void *arg) {
    (void)arg;
    usleep(700000);
    hale_resp_static(r, 200, "text/plain", "slept\n", 6);
}

typedef struct bg_req { unsigned port; int status; } bg_req;

static void *bg_get(void *arg) {
    bg_req *q = arg;
    fx_resp *resp = malloc(sizeof *resp);
    q->status = fx_req(q->port, "GET", "/sleep", NULL, NULL, resp);
    free(resp);
    return NULL;
}

/* R: H1, H2, H3, H4 - the probe routes answer from the state: 503 with
 * Retry-After and the state while starting, 200 once ready; liveness turns
 * off while a worker is stuck in a handler past stall_ms */
static void test_probe_endpoints(void **st) {
    (void)st;
    dep db = {0};
    hale_health *h = hale_health_new(NULL, NULL);
    assert_int_equal(hale_health_add_check(h, "store", dep_check, &db, 20, 1000, true), 0);
    hale_router *admin = hale_router_new(), *pub = hale_router_new();
    char err[128];
    assert_int_equal(hale_health_register(h, admin, err, sizeof err), 0);
    assert_int_equal(hale_health_register_public(h, pub, err, sizeof err), 0);
    hale_route sl = {.method = "GET", .tmpl = "/sleep", .fn = h_sleep};
    assert_int_equal(hale_router_add(pub, &sl, err, sizeof err), 0);
    hale_http_hooks hooks = {0};
    hale_http_server *sa = fx_start(admin, &hooks), *sp = fx_start(pub, &hooks);
    unsigned pa = hale_http_port(sa), pp = hale_http_port(sp);
    fx_resp *r = malloc(sizeof *r);

    assert_int_equal(fx_req(pa, "GET", "/health/startup", NULL, NULL, r), 503);
    assert_true(fx_body_has(r, "{\"status\":\"starting\"}"));
    assert_int_equal(fx_req(pa, "GET", "/health/readiness", NULL, NULL, r), 503);
    assert_string_equal(fx_header(r, "Retry-After"), "1");
    assert_true(fx_body_has(r, "{\"status\":\"starting\"}"));
    assert_int_equal(fx_req(pa, "GET", "/health/liveness", NULL, NULL, r), 200);
    assert_true(fx_body_has(r, "{\"status\":\"live\"}"));

    assert_int_equal(hale_health_start(h, NULL, 0), 0);
    hale_health_set_started(h);
    assert_int_equal(fx_req(pa, "GET", "/health/startup", NULL, NULL, r), 200);
    assert_int_equal(fx_req(pa, "GET", "/health/readiness", NULL, NULL, r), 200);
    assert_true(fx_body_has(r, "{\"status\":\"ready\"}"));
    assert_int_equal(fx_req(pa, "GET", "/health", NULL, NULL, r), 200);
    assert_string_equal(fx_header(r, "Content-Type"), "application/json");
    assert_int_equal(fx_req(pa, "HEAD", "/health/readiness", NULL, NULL, r), 200);

    atomic_store(&db.fail, 1);
    EVENTUALLY(!hale_health_ready(h));
    assert_int_equal(fx_req(pa, "GET", "/health/readiness", NULL, NULL, r), 503);
    assert_true(fx_body_has(r, "{\"status\":\"not_ready\"}"));
    assert_int_equal(fx_req(pa, "GET", "/health", NULL, NULL, r), 503);
    assert_true(fx_body_has(r, "db.internal:5432"));
    assert_int_equal(fx_req(pp, "GET", "/health", NULL, NULL, r), 503);
    assert_false(fx_body_has(r, "db.internal")); /* R: Y7 */

    /* the watchdog: a handler stuck past stall_ms */
    hale_health_watch(h, sp, 100);
    bg_req q = {.port = pp};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bg_get, &q), 0);
    EVENTUALLY(!hale_health_live(h));
    assert_int_equal(fx_req(pa, "GET", "/health/liveness", NULL, NULL, r), 503);
    assert_true(fx_body_has(r, "\"status\":\"stalled\""));
    pthread_join(t, NULL);
    assert_int_equal(q.status, 200);
    assert_true(hale_health_live(h));

    hale_health_set_draining(h);
    assert_int_equal(fx_req(pa, "GET", "/health/readiness", NULL, NULL, r), 503);
    assert_true(fx_body_has(r, "{\"status\":\"draining\"}"));
    assert_int_equal(fx_req(pa, "GET", "/health/startup", NULL, NULL, r), 200);

    free(r);
    hale_http_stop(sa);
    hale_http_stop(sp);
    hale_health_free(h);
    hale_router_free(admin);
    hale_router_free(pub);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states_without_checks),
        cmocka_unit_test(test_checks_drive_readiness),
        cmocka_unit_test(test_slow_check_times_out),
        cmocka_unit_test(test_checks_share_the_timer),
        cmocka_unit_test(test_start_without_room),
        cmocka_unit_test(test_check_limit),
        cmocka_unit_test(test_probe_endpoints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
