/* store_pg: the PostgreSQL backend of the kv_store interface (A6).
 *
 * Promises (beyond store.h's):
 *  - One connection pool of at most `max_connections` connections, shared
 *    by every thread; connections are made on demand, checked before reuse
 *    and replaced when broken, so the store recovers from a database
 *    restart by itself.
 *  - Every call returns within statement_timeout_ms + KV_PG_GRACE_MS
 *    (waiting for a connection, connecting and the query all count), with
 *    KV_UNAVAILABLE when that deadline passes; a submitted write is
 *    answered within the same bound from its submit (time queued counts),
 *    or at once with KV_UNAVAILABLE when the write queue is full. The server also enforces
 *    statement_timeout on each statement.
 *  - A circuit breaker turns repeated connection failures and server
 *    errors of the retry-later kind, or a single call the server left
 *    unanswered until the deadline, into immediate KV_UNAVAILABLE answers
 *    until a probe (a request or the readiness check) succeeds again.
 *  - Versions come from a sequence: never reused, even across deletes,
 *    restarts and replicas. Conditional writes are single statements
 *    (UPDATE ... WHERE version = $n), atomic across replicas.
 *  - A KV_OK write has been committed with the server's synchronous_commit
 *    (on by default: flushed to the WAL on disk).
 *
 * Thread-safety: every function may be called from any thread once open.
 */
#ifndef APP_STORE_PG_H
#define APP_STORE_PG_H

#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"
#include "store.h"

/* Slack between the server's statement_timeout and the client's deadline,
 * so that the server's clean error usually arrives first. */
#define KV_PG_GRACE_MS 250

typedef struct kv_pg_opts {
    const char *url;               /* postgres://user:pass@host:port/db?... */
    unsigned max_connections;      /* >= 1 */
    unsigned connect_timeout_ms;   /* per connection attempt */
    unsigned statement_timeout_ms; /* per call; see above */
    unsigned breaker_failures;     /* consecutive failures that open it; 0 = 5 */
    unsigned breaker_open_ms;
    bool migrate;                  /* apply migrations at open (else only check) */
    unsigned migrate_lock_wait_ms; /* bound on waiting for another replica's migration */
} kv_pg_opts;

/* Connects once, applies (or checks) the schema migrations, and returns the
 * store. NULL with err when the database cannot be reached or the schema is
 * wrong; the caller retries with backoff (L2). err never holds the password. */
kv_store *kv_pg_open(const kv_pg_opts *o, char *err, size_t errlen);

/* True when s is a PostgreSQL store. */
bool kv_store_is_pg(const kv_store *s);

/* A random name created with the schema: the same for every replica that
 * shares this database (whatever URL each one uses), different for another
 * database or schema. The cache puts it in its key names. Valid while s is. */
const char *kv_pg_cache_namespace(const kv_store *s);

typedef struct kv_pg_stats {
    unsigned pool_size, open, in_use;
    uint64_t connects, connect_failures, dropped, acquire_timeouts, timeouts;
    int breaker_state;             /* hale_breaker_state */
    uint64_t breaker_opens;
} kv_pg_stats;

void kv_pg_get_stats(const kv_store *s, kv_pg_stats *out);

/* Registers the hale_db_* metrics of s in reg (pool size/open/in use, pool
 * wait and query latency histograms, connect/timeouts counters, breaker
 * state). Call once, before serving. */
void kv_pg_register_metrics(kv_store *s, hale_metrics *reg);

#endif
