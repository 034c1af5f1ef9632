/* health: see health.h. Every check is a task of one timer (timer.h: the
 * service's, or one of its own); a run writes its result under a small
 * mutex per check, and probes read an atomic state computed after every
 * result, so the probe path takes no lock except for the /health detail
 * page. */
#include "health.h"
#include "timer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CHECKS 8
#define MAX_WATCH 4

typedef struct check {
    hale_health *h;
    char name[32];
    hale_check_fn fn;
    void *arg;
    unsigned interval_ms, timeout_ms;
    bool required;
    int task;               /* its id on the timer, -1 when not scheduled */
    pthread_mutex_t mu;
    /* results (under mu) */
    int ok;                 /* -1 never ran, 0 failing, 1 passing, 2 degraded (passing) */
    double latency_ms;
    char last_error[256];
    uint64_t since_ms;      /* wall time of the last status change */
    _Atomic uint64_t running_since_ns; /* 0 when not running */
} check;

struct hale_health {
    void (*on_transition)(hale_avail, hale_avail, const char *, void *);
    void *arg;
    check checks[MAX_CHECKS];
    size_t nchecks;
    const hale_http_server *watch[MAX_WATCH];
    unsigned stall_ms[MAX_WATCH];
    atomic_size_t nwatch;   /* published after watch[i] is written */
    atomic_int state;
    atomic_int started, draining, stopping;
    pthread_mutex_t tmu;    /* serialises transitions */
    hale_timer *timer;      /* runs the checks; NULL until start or use_timer */
    bool own_timer;         /* made by hale_health_start, freed at stop */
    bool checks_running;
};

const char *hale_avail_name(hale_avail a) {
    static const char *const names[] = {"starting", "ready", "not_ready", "draining", "stopped"};
    return (unsigned)a < 5 ? names[a] : "unknown";
}

hale_health *hale_health_new(void (*cb)(hale_avail, hale_avail, const char *, void *), void *arg) {
    hale_health *h = xcalloc(1, sizeof *h);
    h->on_transition = cb;
    h->arg = arg;
    pthread_mutex_init(&h->tmu, NULL);
    return h;
}

void hale_health_free(hale_health *h) {
    if (!h) return;
    hale_health_stop_checks(h);
    for (size_t i = 0; i < h->nchecks; i++) pthread_mutex_destroy(&h->checks[i].mu);
    pthread_mutex_destroy(&h->tmu);
    free(h);
}

int hale_health_add_check(hale_health *h, const char *name, hale_check_fn fn, void *arg,
                          unsigned interval_ms, unsigned timeout_ms, bool required) {
    if (h->nchecks == MAX_CHECKS || h->checks_running) return -1;
    check *c = &h->checks[h->nchecks++];
    memset(c, 0, sizeof *c);
    c->h = h;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->fn = fn;
    c->arg = arg;
    c->interval_ms = interval_ms ? interval_ms : 1000;
    c->timeout_ms = timeout_ms ? timeout_ms : 1000;
    c->required = required;
    c->ok = -1;
    c->task = -1;
    pthread_mutex_init(&c->mu, NULL);
    return 0;
}

/* Are all required checks passing right now? Fills why on failure. */
static bool checks_pass(hale_health *h, char *why, size_t n) {
    uint64_t now = hale_now_ns();
    for (size_t i = 0; i < h->nchecks; i++) {
        check *c = &h->checks[i];
        if (!c->required) continue;
        uint64_t rs = atomic_load(&c->running_since_ns);
        pthread_mutex_lock(&c->mu);
        int ok = c->ok;
        pthread_mutex_unlock(&c->mu);
        if (ok < 1) { snprintf(why, n, "check %s is failing", c->name); return false; }
        if (rs && now - rs > (uint64_t)c->timeout_ms * 1000000u) {
            snprintf(why, n, "check %s timed out", c->name);
            return false;
        }
    }
    return true;
}

/* Recomputes the state from the flags and check results. */
static void recompute(hale_health *h) {
    pthread_mutex_lock(&h->tmu);
    hale_avail old = (hale_avail)atomic_load(&h->state), next;
    char why[96] = "";
    if (atomic_load(&h->stopping)) { next = HALE_AVAIL_STOPPED; snprintf(why, sizeof why, "stopped"); }
    else if (atomic_load(&h->draining)) { next = HALE_AVAIL_DRAINING; snprintf(why, sizeof why, "shutdown requested"); }
    else if (checks_pass(h, why, sizeof why)) {
        next = atomic_load(&h->started) ? HALE_AVAIL_READY : HALE_AVAIL_STARTING;
        if (next == HALE_AVAIL_READY) snprintf(why, sizeof why, "all required checks pass");
    } else {
        next = atomic_load(&h->started) ? HALE_AVAIL_NOT_READY : HALE_AVAIL_STARTING;
    }
    /* draining and stopped are final: never go back */
    if (old == HALE_AVAIL_STOPPED || (old == HALE_AVAIL_DRAINING && next != HALE_AVAIL_STOPPED))
        next = old;
    if (next != old) {
        atomic_store(&h->state, (int)next);
        if (h->on_transition) h->on_transition(old, next, why, h->arg);
    }
    pthread_mutex_unlock(&h->tmu);
}

/* Runs c once and records the result (on the calling thread). */
static void run_check(check *c) {
    char err[256] = "";
    uint64_t t0 = hale_now_ns();
    atomic_store(&c->running_since_ns, t0);
    int rc = c->fn(c->arg, err, sizeof err);
    uint64_t t1 = hale_now_ns();
    atomic_store(&c->running_since_ns, 0);
    bool timed_out = t1 - t0 > (uint64_t)c->timeout_ms * 1000000u;
    pthread_mutex_lock(&c->mu);
    int ok = timed_out || rc < 0 ? 0 : rc == 1 ? 2 : 1;
    if (ok != c->ok) c->since_ms = hale_wall_ms();
    c->ok = ok;
    c->latency_ms = (double)(t1 - t0) / 1e6;
    if (ok != 1)
        snprintf(c->last_error, sizeof c->last_error, "%s",
                 timed_out && rc == 0 ? "timed out" : (err[0] ? err : "failed"));
    pthread_mutex_unlock(&c->mu);
}

/* A check's task on the timer: one run, then the state. */
static void check_task(void *arg) {
    check *c = arg;
    if (atomic_load(&c->h->stopping)) return;
    run_check(c);
    recompute(c->h);
}

void hale_health_use_timer(hale_health *h, hale_timer *t) {
    if (!h->checks_running && !h->own_timer) h->timer = t;
}

/* Takes every check off the timer (a run in progress ends first). */
static void unschedule(hale_health *h) {
    for (size_t i = 0; i < h->nchecks; i++) {
        hale_timer_cancel(h->timer, h->checks[i].task);
        h->checks[i].task = -1;
    }
    if (h->own_timer) {
        hale_timer_free(h->timer);
        h->timer = NULL;
        h->own_timer = false;
    }
}

int hale_health_start(hale_health *h, char *err, size_t errlen) {
    if (h->checks_running) return 0;
    if (!h->timer) {
        h->timer = hale_timer_new();
        h->own_timer = true;
    }
    for (size_t i = 0; i < h->nchecks; i++) {
        check *c = &h->checks[i];
        c->task = hale_timer_every(h->timer, c->name, c->interval_ms, check_task, c);
        if (c->task < 0) {
            unschedule(h);
            return hale_err(err, errlen, "health: no room on the timer for check %s", c->name);
        }
    }
    if (h->own_timer && hale_timer_start(h->timer, err, errlen) != 0) {
        unschedule(h);
        return -1;
    }
    h->checks_running = true;
    recompute(h);
    return 0;
}

void hale_health_stop_checks(hale_health *h) {
    if (!h->checks_running) return;
    atomic_store(&h->stopping, 1);
    unschedule(h);
    h->checks_running = false;
}

void hale_health_watch(hale_health *h, const hale_http_server *s, unsigned stall_ms) {
    size_t n = atomic_load(&h->nwatch);
    if (n == MAX_WATCH) return;
    h->stall_ms[n] = stall_ms;
    h->watch[n] = s;
    atomic_store_explicit(&h->nwatch, n + 1, memory_order_release);
}

void hale_health_set_started(hale_health *h) {
    /* The background results may predate the end of initialisation (the
     * store was not open yet): run every check once now, so that the first
     * state after "starting" reflects the dependencies as they are. */
    for (size_t i = 0; i < h->nchecks; i++) run_check(&h->checks[i]);
    atomic_store(&h->started, 1);
    recompute(h);
}
void hale_health_set_draining(hale_health *h) { atomic_store(&h->draining, 1); recompute(h); }
void hale_health_set_stopped(hale_health *h) {
    atomic_store(&h->stopping, 1);
    recompute(h);
}

hale_avail hale_health_state(const hale_health *h) {
    return (hale_avail)atomic_load(&((hale_health *)h)->state);
}

bool hale_health_live(const hale_health *h) {
    uint64_t now = hale_now_ns();
    size_t n = atomic_load_explicit(&((hale_health *)h)->nwatch, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        uint64_t t = hale_http_oldest_busy_ns(h->watch[i]);
        if (t && now > t && now - t > (uint64_t)h->stall_ms[i] * 1000000u) return false;
    }
    return true;
}

bool hale_health_ready(const hale_health *h) {
    if (hale_health_state(h) != HALE_AVAIL_READY) return false;
    /* a check stuck past its timeout turns readiness off before it returns */
    uint64_t now = hale_now_ns();
    for (size_t i = 0; i < h->nchecks; i++) {
        const check *c = &h->checks[i];
        uint64_t rs = atomic_load(&((check *)c)->running_since_ns);
        if (c->required && rs && now - rs > (uint64_t)c->timeout_ms * 1000000u) return false;
    }
    return true;
}

static void rfc3339(uint64_t ms, char *out, size_t n) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%03uZ", base, (unsigned)(ms % 1000));
}

static void render_json(const hale_health *hc, hale_buf *out, bool detail);

void hale_health_render_json(const hale_health *h, hale_buf *out) { render_json(h, out, true); }

void hale_health_render_status_json(const hale_health *h, hale_buf *out) {
    render_json(h, out, false);
}

static void render_json(const hale_health *hc, hale_buf *out, bool detail) {
    hale_health *h = (hale_health *)hc;
    bool ready = hale_health_ready(h), live = hale_health_live(h), degraded = false;
    for (size_t i = 0; i < h->nchecks; i++) {
        pthread_mutex_lock(&h->checks[i].mu);
        degraded |= h->checks[i].ok == 2;
        pthread_mutex_unlock(&h->checks[i].mu);
    }
    hale_buf_printf(out, "{\"status\":\"%s\",\"state\":\"%s\",\"live\":%s,\"ready\":%s,\"checks\":{",
                    !ready ? "fail" : degraded ? "degraded" : "pass", hale_avail_name(hale_health_state(h)),
                    live ? "true" : "false", ready ? "true" : "false");
    uint64_t now = hale_now_ns();
    for (size_t i = 0; i < h->nchecks; i++) {
        check *c = &h->checks[i];
        pthread_mutex_lock(&c->mu);
        uint64_t rs = atomic_load(&c->running_since_ns);
        bool stuck = rs && now - rs > (uint64_t)c->timeout_ms * 1000000u;
        const char *st = c->ok < 0 ? "unknown" : stuck || !c->ok ? "fail" : c->ok == 2 ? "degraded" : "pass";
        char since[40] = "";
        if (c->since_ms) rfc3339(c->since_ms, since, sizeof since);
        hale_buf_printf(out, "%s\"%s\":{\"status\":\"%s\",\"required\":%s,\"latency_ms\":%.3f,",
                        i ? "," : "", c->name, st, c->required ? "true" : "false", c->latency_ms);
        if (c->ok == 0 || c->ok == 2 || stuck) {
            hale_buf_puts(out, "\"last_error\":\"");
            /* without detail, no error text: it names hosts, ports, users */
            const char *e = !detail ? "failed (the admin listener's /health has the detail)"
                            : stuck ? "timed out" : c->last_error;
            hale_buf_json_escape(out, e, strlen(e));
            hale_buf_puts(out, "\",");
        } else {
            hale_buf_puts(out, "\"last_error\":null,");
        }
        if (since[0]) hale_buf_printf(out, "\"since\":\"%s\"}", since);
        else hale_buf_puts(out, "\"since\":null}");
        pthread_mutex_unlock(&c->mu);
    }
    hale_buf_puts(out, "}}\n");
}
