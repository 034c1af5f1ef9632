/* breaker: a circuit breaker (closed / open / half-open) that stops callers
 * from paying a failing dependency's timeouts.
 *
 * Promises:
 *  - closed: every call is allowed. `failures` consecutive failures open it.
 *  - open: no call is allowed for `open_ms`; then it turns half-open.
 *  - half-open: exactly one caller (the probe) is allowed. Its success
 *    closes the breaker, its failure opens it for another `open_ms`. If the
 *    probe never reports (a bug, or its thread died), another probe is let
 *    through after `open_ms`, so the breaker cannot stick half-open.
 *  - A success in any state resets the failure count; successes and
 *    failures reported by calls that started before a state change still
 *    count (the breaker keeps no per-call tokens), which only ever makes it
 *    close or open a little sooner.
 *  - Knows nothing of what it guards (a database, a cache, any service).
 *
 * Thread-safety: every function may be called from any thread. The closed
 * state's paths (allow, success) are lock-free; state changes take a small
 * mutex.
 * Time comes from hale_now_ns() unless a test clock is set.
 */
#ifndef HALE_BREAKER_H
#define HALE_BREAKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum {
    HALE_BREAKER_CLOSED = 0,
    HALE_BREAKER_OPEN = 1,
    HALE_BREAKER_HALF_OPEN = 2,
} hale_breaker_state;

typedef struct hale_breaker {
    pthread_mutex_t mu;
    unsigned threshold;        /* consecutive failures that open it */
    uint64_t open_ns;
    atomic_uint failures;      /* consecutive */
    uint64_t opened_at_ns;     /* when it last opened / let a probe through */
    atomic_int state;          /* hale_breaker_state */
    _Atomic uint64_t opens;    /* times it went closed/half-open -> open */
    uint64_t (*clock)(void);   /* tests only; NULL = hale_now_ns */
} hale_breaker;

/* failures >= 1 (0 is taken as 1); open_ms may be 0 (probe at once). */
void hale_breaker_init(hale_breaker *b, unsigned failures, unsigned open_ms);
void hale_breaker_destroy(hale_breaker *b);

/* May the caller go to the dependency now? true when closed, or when this
 * caller is the half-open probe (it must then report success or failure). */
bool hale_breaker_allow(hale_breaker *b);
void hale_breaker_success(hale_breaker *b);
void hale_breaker_failure(hale_breaker *b);
/* A failure that is certain evidence the dependency is down (it did not
 * answer at all before a deadline): opens the breaker now, whatever the
 * count, so callers queued behind the failed call do not each pay the same
 * deadline. Already open: nothing changes (the open period is not
 * extended). */
void hale_breaker_trip(hale_breaker *b);

/* Current state (lock-free; an open breaker whose time is up still reads
 * open until a caller asks to go through). */
hale_breaker_state hale_breaker_get_state(const hale_breaker *b);
const char *hale_breaker_state_name(hale_breaker_state s);
/* How many times it has opened since init. */
uint64_t hale_breaker_opens(const hale_breaker *b);

#endif
