/* The completion pool behind PostgreSQL's asynchronous writes
 * (src/app/store/store_async.c): bounded queue, 503 at once when full, every
 * queued op answered exactly once, also at shutdown. R: A6 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "store_async.h"

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
    int running;
    atomic_int ran;
} gate;

static void run_gated(void *ctx, kv_op *op) {
    gate *g = ctx;
    pthread_mutex_lock(&g->mu);
    g->running++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    atomic_fetch_add(&g->ran, 1);
    op->version = 7;
    kv_op_finish(op, KV_OK);
}

static atomic_int answered[16];

static void done(kv_op *op) {
    int i = (int)(intptr_t)op->arg;
    atomic_store(&answered[i], (int)op->st + 100);
    kv_op_free(op);
}

static kv_op *op_n(int i) { return kv_op_new_del("k", 1, NULL, done, (void *)(intptr_t)i); }

static void test_full_queue_answers_unavailable_at_once(void **st) {
    (void)st;
    gate g = {.open = false};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    for (int i = 0; i < 16; i++) atomic_store(&answered[i], 0);
    char err[128];
    kv_async *a = kv_async_new("t-async", 1, 2, run_gated, &g, err, sizeof err);
    assert_non_null(a);
    kv_async_submit(a, op_n(0));
    pthread_mutex_lock(&g.mu); /* op 0 is running, so the queue is empty */
    while (g.running < 1) pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    kv_async_submit(a, op_n(1));
    kv_async_submit(a, op_n(2));
    kv_async_submit(a, op_n(3)); /* the queue holds 2: answered here */
    assert_int_equal(atomic_load(&answered[3]), KV_UNAVAILABLE + 100);
    assert_int_equal(atomic_load(&answered[1]), 0);
    assert_int_equal(atomic_load(&answered[2]), 0);
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    kv_async_destroy(a); /* runs what was queued, then joins */
    for (int i = 0; i < 3; i++) assert_int_equal(atomic_load(&answered[i]), KV_OK + 100);
    assert_int_equal(atomic_load(&g.ran), 3);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
}

static void test_many_threads_every_op_answered_once(void **st) {
    (void)st;
    gate g = {.open = true};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    char err[128];
    kv_async *a = kv_async_new("t-async", 4, 1024, run_gated, &g, err, sizeof err);
    assert_non_null(a);
    for (int i = 0; i < 16; i++) atomic_store(&answered[i], 0);
    for (int i = 0; i < 16; i++) kv_async_submit(a, op_n(i));
    kv_async_destroy(a);
    for (int i = 0; i < 16; i++) assert_int_equal(atomic_load(&answered[i]), KV_OK + 100);
    assert_int_equal(atomic_load(&g.ran), 16);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_queue_answers_unavailable_at_once),
        cmocka_unit_test(test_many_threads_every_op_answered_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
