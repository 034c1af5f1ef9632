/* store_async: see store_async.h. A mutex-protected ring of op pointers;
 * workers sleep on a condition variable. */
#include "store_async.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct kv_async {
    kv_async_run run;
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t have_work;
    kv_op **ring;
    unsigned cap, head, count;
    bool stopping;
    unsigned nthreads;
    pthread_t *threads;
    char name[12];      /* thread name prefix */
    unsigned named;     /* threads named so far (under mu) */
};

static void *worker(void *arg) {
    kv_async *a = arg;
    pthread_mutex_lock(&a->mu);
    hale_thread_name("%s%u", a->name, a->named++);
    for (;;) {
        while (!a->count && !a->stopping) pthread_cond_wait(&a->have_work, &a->mu);
        if (!a->count) break; /* stopping, and nothing left */
        kv_op *op = a->ring[a->head];
        a->head = (a->head + 1) % a->cap;
        a->count--;
        pthread_mutex_unlock(&a->mu);
        a->run(a->ctx, op);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

kv_async *kv_async_new(const char *name, unsigned threads, unsigned capacity, kv_async_run run,
                       void *ctx, char *err, size_t errlen) {
    kv_async *a = xcalloc(1, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->run = run;
    a->ctx = ctx;
    a->cap = capacity ? capacity : 1;
    a->ring = xcalloc(a->cap, sizeof(kv_op *));
    a->threads = xcalloc(threads ? threads : 1, sizeof *a->threads);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->have_work, NULL);
    for (unsigned i = 0; i < (threads ? threads : 1); i++) {
        if (pthread_create(&a->threads[i], NULL, worker, a) != 0) {
            hale_err(err, errlen, "store: cannot start a completion thread");
            kv_async_destroy(a);
            return NULL;
        }
        a->nthreads++;
    }
    return a;
}

bool kv_async_try_submit(kv_async *a, kv_op *op) {
    pthread_mutex_lock(&a->mu);
    if (a->stopping || a->count == a->cap) {
        pthread_mutex_unlock(&a->mu);
        return false;
    }
    a->ring[(a->head + a->count) % a->cap] = op;
    a->count++;
    pthread_cond_signal(&a->have_work);
    pthread_mutex_unlock(&a->mu);
    return true;
}

void kv_async_submit(kv_async *a, kv_op *op) {
    if (!kv_async_try_submit(a, op)) kv_op_finish(op, KV_UNAVAILABLE);
}

void kv_async_stop(kv_async *a) {
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_broadcast(&a->have_work);
    pthread_mutex_unlock(&a->mu);
    for (unsigned i = 0; i < a->nthreads; i++) pthread_join(a->threads[i], NULL);
    a->nthreads = 0;
}

void kv_async_destroy(kv_async *a) {
    if (!a) return;
    kv_async_stop(a);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->have_work);
    free(a->threads);
    free(a->ring);
    free(a);
}
