/* pool: see pool.h. One mutex and a condition variable over a stack of
 * free slot numbers; connecting and the idle check run outside the lock. */
#include "pool.h"

#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void hale_pool_init(hale_pool *p, unsigned size, unsigned connect_timeout_ms,
                    const hale_pool_ops *ops, void *arg) {
    memset(p, 0, sizeof *p);
    HALE_ASSERT(size >= 1 && ops && ops->open && ops->close);
    p->ops = ops;
    p->arg = arg;
    p->size = size;
    p->connect_timeout_ms = connect_timeout_ms;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the clock of hale_now_ns */
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->conns = xcalloc(size, sizeof *p->conns);
    p->free = xcalloc(size, sizeof *p->free);
    for (unsigned i = 0; i < size; i++) p->free[i] = size - 1 - i;
    p->nfree = size;
}

void hale_pool_destroy(hale_pool *p) {
    HALE_ASSERT(p->nfree == p->size);
    for (unsigned i = 0; i < p->size; i++)
        if (p->conns[i]) p->ops->close(p->conns[i], p->arg);
    free(p->conns);
    free(p->free);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

static void drop(hale_pool *p, unsigned slot) {
    p->ops->close(p->conns[slot], p->arg);
    p->conns[slot] = NULL;
    atomic_fetch_sub(&p->open, 1);
    atomic_fetch_add(&p->dropped, 1);
}

/* Under mu: connected slots on top, empty ones at the bottom. */
static void push_free(hale_pool *p, unsigned slot) {
    HALE_ASSERT(p->nfree < p->size);
    if (p->conns[slot]) {
        p->free[p->nfree++] = slot;
    } else {
        memmove(p->free + 1, p->free, p->nfree * sizeof *p->free);
        p->free[0] = slot;
        p->nfree++;
    }
}

hale_pool_rc hale_pool_acquire(hale_pool *p, uint64_t deadline_ns, hale_pool_lease *l,
                               uint64_t *waited_ns, void *ctx) {
    uint64_t t0 = hale_now_ns();
    pthread_mutex_lock(&p->mu);
    while (p->nfree == 0) {
        struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
                              .tv_nsec = (long)(deadline_ns % 1000000000u)};
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT && p->nfree == 0) {
            pthread_mutex_unlock(&p->mu);
            atomic_fetch_add(&p->acquire_timeouts, 1);
            if (waited_ns) *waited_ns = hale_now_ns() - t0;
            return HALE_POOL_BUSY;
        }
    }
    unsigned slot = p->free[--p->nfree];
    pthread_mutex_unlock(&p->mu);
    atomic_fetch_add(&p->in_use, 1);
    uint64_t now = hale_now_ns();
    if (waited_ns) *waited_ns = now - t0;
    l->slot = slot;
    l->reused = false;
    if (p->conns[slot] && p->ops->idle_ok && !p->ops->idle_ok(p->conns[slot], p->arg)) drop(p, slot);
    if (p->conns[slot]) {
        l->conn = p->conns[slot];
        l->reused = true;
        return HALE_POOL_OK;
    }
    uint64_t cdl = now + (uint64_t)p->connect_timeout_ms * 1000000u;
    void *c = p->ops->open(p->arg, cdl < deadline_ns ? cdl : deadline_ns, ctx);
    if (!c) {
        atomic_fetch_add(&p->connect_failures, 1);
        l->conn = NULL;
        hale_pool_release(p, l, false);
        return HALE_POOL_DOWN;
    }
    atomic_fetch_add(&p->connects, 1);
    atomic_fetch_add(&p->open, 1);
    p->conns[slot] = c;
    l->conn = c;
    return HALE_POOL_OK;
}

void hale_pool_release(hale_pool *p, hale_pool_lease *l, bool broken) {
    if (broken && p->conns[l->slot]) drop(p, l->slot);
    atomic_fetch_sub(&p->in_use, 1);
    pthread_mutex_lock(&p->mu);
    push_free(p, l->slot);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    l->conn = NULL;
}
