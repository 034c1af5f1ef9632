/* pool: a bounded pool of connections (to a database, a cache, any server)
 * shared by every thread, for clients whose connections are blocking.
 *
 * Promises:
 *  - At most `size` connections, made on demand by ops->open, never more
 *    than one per slot; a slot waits for a free one until a deadline.
 *  - Connected slots are reused last-in first-out (a hot working set; the
 *    idle rest can be found dead), and every idle connection is checked
 *    with ops->idle_ok before reuse: a dead one is closed and replaced, so
 *    a server restart costs no failed call.
 *  - A lease marked broken on release is closed; the slot is made again
 *    on a later acquire.
 *  - Counters (open, in use, connects, failures, timeouts, dropped) are
 *    atomics the caller may read at any time, for metrics.
 * Thread-safety: acquire/release from any thread; a lease's connection is
 * used by one thread at a time. ops->open runs without the pool's lock.
 */
#ifndef HALE_POOL_H
#define HALE_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct hale_pool_ops {
    /* A new connection, ready to use, made by deadline_ns (CLOCK_MONOTONIC
     * ns, as hale_now_ns); NULL on failure, with the details wherever ctx
     * (the acquire's) says. */
    void *(*open)(void *arg, uint64_t deadline_ns, void *ctx);
    /* Whether an idle connection may be reused (cheap, no round trip). */
    bool (*idle_ok)(void *conn, void *arg);
    void (*close)(void *conn, void *arg);
} hale_pool_ops;

typedef struct hale_pool {
    const hale_pool_ops *ops;
    void *arg;                  /* handed to every op */
    unsigned size;
    unsigned connect_timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* a slot was released */
    void **conns;               /* size slots; NULL = not connected */
    unsigned *free;             /* stack of free slots, connected on top */
    unsigned nfree;
    atomic_uint open, in_use;
    _Atomic uint64_t connects, connect_failures, acquire_timeouts, dropped;
} hale_pool;

typedef struct hale_pool_lease {
    unsigned slot;
    void *conn;
    bool reused;                /* was connected before this acquire */
} hale_pool_lease;

typedef enum {
    HALE_POOL_OK = 0,
    HALE_POOL_BUSY,             /* no slot came free by the deadline */
    HALE_POOL_DOWN,             /* ops->open failed (see ctx) */
} hale_pool_rc;

/* size >= 1. Connects nothing yet. A connection is made within
 * min(the acquire's deadline, connect_timeout_ms from then). */
void hale_pool_init(hale_pool *p, unsigned size, unsigned connect_timeout_ms,
                    const hale_pool_ops *ops, void *arg);
/* Closes every connection; no lease may be outstanding. */
void hale_pool_destroy(hale_pool *p);

/* Waits until deadline_ns for a free slot and returns it connected.
 * *waited_ns (may be NULL) gets the time spent waiting for the slot. */
hale_pool_rc hale_pool_acquire(hale_pool *p, uint64_t deadline_ns, hale_pool_lease *l,
                               uint64_t *waited_ns, void *ctx);
/* Gives the slot back; broken closes its connection first. */
void hale_pool_release(hale_pool *p, hale_pool_lease *l, bool broken);

#endif
