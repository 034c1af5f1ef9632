/* Tests for src/runtime/common/pool.c, the bounded pool both the PostgreSQL and
 * the Redis clients use (R: A6, A7, L2): slots are bounded, waits end at
 * the deadline, dead idle connections are replaced, broken ones closed,
 * and a failed connect gives its slot back. The "connections" here are
 * plain counters: what is tested is the pool's bookkeeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "pool.h"
#include "util.h"

typedef struct conn { int id; bool dead; } conn;
typedef struct world { _Atomic int made, closed; bool refuse; } world;

static void *w_open(void *arg, uint64_t deadline_ns, void *ctx) {
    world *w = arg;
    assert_true(deadline_ns > hale_now_ns() - 1000000000ull);
    if (ctx) *(int *)ctx = 1; /* the acquire's ctx reaches open */
    if (w->refuse) return NULL;
    conn *c = xcalloc(1, sizeof *c);
    c->id = atomic_fetch_add(&w->made, 1) + 1;
    return c;
}
static bool w_idle_ok(void *c, void *arg) { (void)arg; return !((conn *)c)->dead; }
static void w_close(void *c, void *arg) {
    atomic_fetch_add(&((world *)arg)->closed, 1);
    free(c);
}
static const hale_pool_ops ops = {w_open, w_idle_ok, w_close};

static uint64_t in_ms(unsigned ms) { return hale_now_ns() + (uint64_t)ms * 1000000u; }

static void test_reuse_is_lifo_and_bounded(void **st) { /* R: A6, A7 */
    (void)st;
    world w = {.refuse = false};
    hale_pool p;
    hale_pool_init(&p, 2, 1000, &ops, &w);
    hale_pool_lease a, b, c;
    int seen = 0;
    assert_int_equal(hale_pool_acquire(&p, in_ms(100), &a, NULL, &seen), HALE_POOL_OK);
    assert_int_equal(seen, 1);
    assert_false(a.reused);
    assert_int_equal(hale_pool_acquire(&p, in_ms(100), &b, NULL, NULL), HALE_POOL_OK);
    assert_int_equal(w.made, 2);
    assert_int_equal(atomic_load(&p.in_use), 2);
    /* full: the third waits until the deadline, then BUSY */
    uint64_t waited = 0;
    assert_int_equal(hale_pool_acquire(&p, in_ms(50), &c, &waited, NULL), HALE_POOL_BUSY);
    assert_true(waited >= 40000000u);
    assert_int_equal(atomic_load(&p.acquire_timeouts), 1);
    int bid = ((conn *)b.conn)->id;
    hale_pool_release(&p, &a, false);
    hale_pool_release(&p, &b, false);
    /* the last one released comes back first, connected */
    assert_int_equal(hale_pool_acquire(&p, in_ms(100), &c, NULL, NULL), HALE_POOL_OK);
    assert_true(c.reused);
    assert_int_equal(((conn *)c.conn)->id, bid);
    hale_pool_release(&p, &c, false);
    assert_int_equal(w.made, 2);
    assert_int_equal(atomic_load(&p.open), 2);
    hale_pool_destroy(&p);
    assert_int_equal(w.closed, 2);
}

static void test_dead_and_broken_are_replaced(void **st) { /* R: L2, A6 */
    (void)st;
    world w = {.refuse = false};
    hale_pool p;
    hale_pool_init(&p, 1, 1000, &ops, &w);
    hale_pool_lease a;
    assert_int_equal(hale_pool_acquire(&p, in_ms(100), &a, NULL, NULL), HALE_POOL_OK);
    ((conn *)a.conn)->dead = true; /* the server closed it while idle */
    hale_pool_release(&p, &a, false);
    assert_int_equal(hale_pool_acquire(&p, in_ms(100), &a, NULL, NULL), HALE_POOL_OK);
    assert_false(a.reused);
    assert_int_equal(((conn *)a.conn)->id, 2);
    assert_int_equal(w.closed, 1);
    hale_pool_release(&p, &a, true); /* the call found it broken */
    assert_int_equal(w.closed, 2);
    assert_int_equal(atomic_load(&p.open), 0);
    assert_int_equal(atomic_load(&p.dropped), 2);
    /* a failed connect gives the slot back: the next acquire does not wait */
    w.refuse = true;
    assert_int_equal(hale_pool_acquire(&p, in_ms(100), &a, NULL, NULL), HALE_POOL_DOWN);
    assert_int_equal(atomic_load(&p.connect_failures), 1);
    assert_int_equal(atomic_load(&p.in_use), 0);
    w.refuse = false;
    uint64_t waited = 1;
    assert_int_equal(hale_pool_acquire(&p, in_ms(100), &a, &waited, NULL), HALE_POOL_OK);
    assert_true(waited < 50000000u);
    hale_pool_release(&p, &a, false);
    hale_pool_destroy(&p);
}

typedef struct worker_arg { hale_pool *p; int ok; } worker_arg;
static void *worker(void *arg) {
    worker_arg *wa = arg;
    for (int i = 0; i < 2000; i++) {
        hale_pool_lease l;
        if (hale_pool_acquire(wa->p, in_ms(5000), &l, NULL, NULL) != HALE_POOL_OK) continue;
        if (atomic_load(&wa->p->in_use) <= wa->p->size) wa->ok++;
        hale_pool_release(wa->p, &l, i % 97 == 0);
    }
    return NULL;
}

static void test_threads_never_exceed_the_bound(void **st) { /* R: A6, A7 */
    (void)st;
    world w = {.refuse = false};
    hale_pool p;
    hale_pool_init(&p, 3, 1000, &ops, &w);
    pthread_t t[6];
    worker_arg wa[6];
    for (int i = 0; i < 6; i++) {
        wa[i] = (worker_arg){&p, 0};
        pthread_create(&t[i], NULL, worker, &wa[i]);
    }
    int total = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        total += wa[i].ok;
    }
    assert_int_equal(total, 6 * 2000);
    assert_true(atomic_load(&p.open) <= 3);
    assert_int_equal(atomic_load(&p.in_use), 0);
    hale_pool_destroy(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse_is_lifo_and_bounded),
        cmocka_unit_test(test_dead_and_broken_are_replaced),
        cmocka_unit_test(test_threads_never_exceed_the_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
