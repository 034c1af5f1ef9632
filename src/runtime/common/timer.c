/* timer: see timer.h. A fixed table of tasks under one mutex; the thread
 * picks the earliest deadline, sleeps on a monotonic condvar until it is
 * due (an added task or stop wakes it), and runs the task without the lock.
 * A slot's seq (0: free) tells a task from a later one in the same slot. */
#include "timer.h"
#include "util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct task {
    char name[32];
    void (*fn)(void *);
    void *arg;
    uint64_t period_ns, next_ns;
    uint64_t seq;              /* 0: a free slot; else the order of adding */
} task;

struct hale_timer {
    pthread_mutex_t mu;
    pthread_cond_t wake;       /* monotonic: a task added, stop */
    pthread_cond_t idle;       /* a run ended */
    pthread_mutex_t join_mu;   /* one stop joins at a time */
    task tasks[HALE_TIMER_MAX_TASKS];
    uint64_t seq;
    int running;               /* the slot being run, or -1 */
    bool started, stop;        /* under mu */
    pthread_t thread;
};

hale_timer *hale_timer_new(void) {
    hale_timer *t = xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    pthread_mutex_init(&t->join_mu, NULL);
    if (hale_cond_init_monotonic(&t->wake) != 0) hale_panic("timer: no monotonic condition variable");
    pthread_cond_init(&t->idle, NULL);
    t->running = -1;
    return t;
}

/* The slot due first (earliest deadline, then earliest added), or -1. */
static int next_due(const hale_timer *t) {
    int best = -1;
    for (int i = 0; i < HALE_TIMER_MAX_TASKS; i++) {
        const task *k = &t->tasks[i];
        if (!k->seq) continue;
        if (best < 0 || k->next_ns < t->tasks[best].next_ns ||
            (k->next_ns == t->tasks[best].next_ns && k->seq < t->tasks[best].seq))
            best = i;
    }
    return best;
}

static void *timer_main(void *arg) {
    hale_timer *t = arg;
    hale_thread_name("hale-timer");
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        int i = next_due(t);
        if (i < 0) {
            pthread_cond_wait(&t->wake, &t->mu);
            continue;
        }
        task *k = &t->tasks[i];
        if (k->next_ns > hale_now_ns()) {
            hale_cond_wait_until(&t->wake, &t->mu, k->next_ns);
            continue; /* the table or the time changed: pick again */
        }
        uint64_t seq = k->seq;
        void (*fn)(void *) = k->fn;
        void *fn_arg = k->arg;
        t->running = i;
        pthread_mutex_unlock(&t->mu);
        fn(fn_arg);
        pthread_mutex_lock(&t->mu);
        t->running = -1;
        /* from the end of the run: a slow run shifts, never bunches, the next */
        if (k->seq == seq) k->next_ns = hale_now_ns() + k->period_ns;
        pthread_cond_broadcast(&t->idle);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int hale_timer_every(hale_timer *t, const char *name, unsigned period_ms, void (*fn)(void *arg),
                     void *arg) {
    pthread_mutex_lock(&t->mu);
    int id = -1;
    for (int i = 0; i < HALE_TIMER_MAX_TASKS && !t->stop; i++) {
        if (t->tasks[i].seq) continue;
        task *k = &t->tasks[i];
        snprintf(k->name, sizeof k->name, "%s", name ? name : "");
        k->fn = fn;
        k->arg = arg;
        k->period_ns = (uint64_t)(period_ms ? period_ms : 1) * 1000000u;
        k->next_ns = 0; /* due at once */
        k->seq = ++t->seq;
        id = i;
        pthread_cond_broadcast(&t->wake);
        break;
    }
    pthread_mutex_unlock(&t->mu);
    return id;
}

void hale_timer_cancel(hale_timer *t, int id) {
    if (id < 0 || id >= HALE_TIMER_MAX_TASKS) return;
    pthread_mutex_lock(&t->mu);
    t->tasks[id].seq = 0;
    bool on_timer = t->started && pthread_equal(pthread_self(), t->thread);
    while (!on_timer && t->running == id) pthread_cond_wait(&t->idle, &t->mu);
    pthread_mutex_unlock(&t->mu);
}

int hale_timer_start(hale_timer *t, char *err, size_t errlen) {
    pthread_mutex_lock(&t->mu);
    int rc = 0;
    if (t->stop) {
        rc = hale_err(err, errlen, "timer: already stopped");
    } else if (!t->started) {
        int e = pthread_create(&t->thread, NULL, timer_main, t);
        if (e != 0) rc = hale_err(err, errlen, "timer: cannot start the hale-timer thread: %s", strerror(e));
        else t->started = true;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

void hale_timer_stop(hale_timer *t) {
    pthread_mutex_lock(&t->join_mu);
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    bool join = t->started;
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->mu);
    if (join) pthread_join(t->thread, NULL);
    pthread_mutex_lock(&t->mu);
    t->started = false;
    pthread_mutex_unlock(&t->mu);
    pthread_mutex_unlock(&t->join_mu);
}

void hale_timer_free(hale_timer *t) {
    if (!t) return;
    hale_timer_stop(t);
    pthread_mutex_destroy(&t->mu);
    pthread_mutex_destroy(&t->join_mu);
    pthread_cond_destroy(&t->wake);
    pthread_cond_destroy(&t->idle);
    free(t);
}
