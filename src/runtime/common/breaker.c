/* breaker: see breaker.h. */
#include "breaker.h"

#include "util.h"

static uint64_t now_ns(const hale_breaker *b) { return b->clock ? b->clock() : hale_now_ns(); }

void hale_breaker_init(hale_breaker *b, unsigned failures, unsigned open_ms) {
    pthread_mutex_init(&b->mu, NULL);
    b->threshold = failures ? failures : 1;
    b->open_ns = (uint64_t)open_ms * 1000000u;
    atomic_store(&b->failures, 0);
    b->opened_at_ns = 0;
    atomic_store(&b->state, HALE_BREAKER_CLOSED);
    atomic_store(&b->opens, 0);
    b->clock = NULL;
}

void hale_breaker_destroy(hale_breaker *b) { pthread_mutex_destroy(&b->mu); }

/* Under mu. */
static void trip(hale_breaker *b) {
    atomic_store(&b->state, HALE_BREAKER_OPEN);
    atomic_fetch_add(&b->opens, 1);
    b->opened_at_ns = now_ns(b);
}

bool hale_breaker_allow(hale_breaker *b) {
    /* The closed fast path takes no lock: it is every call's path. */
    if (atomic_load_explicit(&b->state, memory_order_acquire) == HALE_BREAKER_CLOSED) return true;
    bool ok = false;
    pthread_mutex_lock(&b->mu);
    int st = atomic_load(&b->state);
    if (st == HALE_BREAKER_CLOSED) {
        ok = true;
    } else if (now_ns(b) - b->opened_at_ns >= b->open_ns) {
        /* open and due, or half-open with a probe that never reported:
         * this caller becomes the probe; the clock restarts so no other
         * caller is let through for another open period */
        atomic_store(&b->state, HALE_BREAKER_HALF_OPEN);
        b->opened_at_ns = now_ns(b);
        ok = true;
    }
    pthread_mutex_unlock(&b->mu);
    return ok;
}

void hale_breaker_success(hale_breaker *b) {
    if (atomic_load_explicit(&b->failures, memory_order_relaxed))
        atomic_store_explicit(&b->failures, 0, memory_order_relaxed);
    if (atomic_load_explicit(&b->state, memory_order_acquire) == HALE_BREAKER_CLOSED) return;
    pthread_mutex_lock(&b->mu);
    atomic_store(&b->failures, 0);
    atomic_store(&b->state, HALE_BREAKER_CLOSED);
    pthread_mutex_unlock(&b->mu);
}

void hale_breaker_failure(hale_breaker *b) {
    int st = atomic_load_explicit(&b->state, memory_order_acquire);
    if (st == HALE_BREAKER_OPEN) return; /* a call from before it opened */
    if (st == HALE_BREAKER_CLOSED && atomic_fetch_add(&b->failures, 1) + 1 < b->threshold) return;
    pthread_mutex_lock(&b->mu);
    st = atomic_load(&b->state);
    if (st == HALE_BREAKER_HALF_OPEN ||
        (st == HALE_BREAKER_CLOSED && atomic_load(&b->failures) >= b->threshold)) {
        atomic_store(&b->failures, 0);
        trip(b);
    }
    pthread_mutex_unlock(&b->mu);
}

void hale_breaker_trip(hale_breaker *b) {
    if (atomic_load_explicit(&b->state, memory_order_acquire) == HALE_BREAKER_OPEN) return;
    pthread_mutex_lock(&b->mu);
    if (atomic_load(&b->state) != HALE_BREAKER_OPEN) {
        atomic_store(&b->failures, 0);
        trip(b);
    }
    pthread_mutex_unlock(&b->mu);
}

hale_breaker_state hale_breaker_get_state(const hale_breaker *b) {
    return (hale_breaker_state)atomic_load_explicit(&b->state, memory_order_relaxed);
}

const char *hale_breaker_state_name(hale_breaker_state s) {
    switch (s) {
    case HALE_BREAKER_CLOSED: return "closed";
    case HALE_BREAKER_OPEN: return "open";
    case HALE_BREAKER_HALF_OPEN: return "half_open";
    }
    return "unknown";
}

uint64_t hale_breaker_opens(const hale_breaker *b) { return atomic_load(&b->opens); }
