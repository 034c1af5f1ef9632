/* store_pg: the PostgreSQL backend. See store_pg.h for the promises.
 *
 * Decision: the calls themselves are blocking libpq calls bounded by a
 * deadline and by the pool. Reads (get/list) run on the HTTP worker; writes
 * (submit: PUT, DELETE) are queued to a completion pool of one thread per
 * pooled connection (store_async.h, queue of 64 per connection; a full
 * queue answers KV_UNAVAILABLE at once), which answers the suspended
 * request, so no HTTP worker waits on a write's round trip. Time in the
 * queue counts against the op's deadline (op_deadline_ns). Before this,
 * measured on the 2-core build machine (release, wrk -t2 -c32, PostgreSQL
 * on the same host): GET 19-27k req/s, PUT 4.4-7.3k req/s, CPU-bound; with
 * ~1 ms to the database, throughput = workers / round trip, so a blocked
 * worker cost one thread and delayed the other connections of its event
 * loop. libpq's own async API would need an event-loop thread for the
 * libpq sockets; the completion pool keeps the deadline code as it is.
 *
 * How a call stays bounded: the pool wait, connect and query share one
 * deadline (statement_timeout + KV_PG_GRACE_MS). Sockets are non-blocking
 * and waited on with poll(); a call past its deadline drops its connection
 * (its protocol state is unknown) and answers KV_UNAVAILABLE. The server's
 * own statement_timeout ends the orphaned statement. With the database
 * stopped, connects are refused at once; with it hung (SIGSTOP, blackholed)
 * the calls in flight wait their deadline, the first one to expire opens
 * the breaker, and every later call answers at once.
 *
 * SQL (store_pg_sql.c): every statement is prepared once per connection.
 * Conditional writes are single statements, so concurrent compare-and-swap
 * from any number of replicas is decided by the row lock (READ COMMITTED
 * re-checks the WHERE clause on the newest row version after waiting for
 * the lock); versions are taken under a per-key lock, so they follow
 * commit order. */
#ifdef HALE_HAVE_PQ

#include "store_pg.h"

#include "breaker.h"
#include "log.h"
#include "migrate.h"
#include "store_pg_int.h"
#include "store_async.h"

#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_TARGET "store.pg"

typedef struct pg_store {
    kv_store base;
    pgx_pool pool;
    unsigned stmt_ms;
    hale_breaker brk;
    char ns[64];
    _Atomic uint64_t timeouts;
    _Atomic uint64_t last_log_ns;
    _Atomic(hale_histogram *) lat[S_N];
    _Atomic(hale_histogram *) wait;
    kv_async *async;           /* completion threads of submit */
} pg_store;

static const kv_store_ops PG_OPS;

/* At most one warning a second: an outage must not flood the log. */
static void warn_limited(pg_store *s, const char *what, const pgx_err *e) {
    uint64_t now = hale_now_ns(), last = atomic_load(&s->last_log_ns);
    if (now - last < 1000000000u || !atomic_compare_exchange_strong(&s->last_log_ns, &last, now))
        return;
    HALE_LOG(HALE_LOG_WARN, LOG_TARGET, what, HALE_F_STR("error", e->msg),
             HALE_F_STR("sqlstate", e->sqlstate), HALE_F_BOOL("timeout", e->timeout));
}

static int setup_conn(PGconn *c, void *arg, uint64_t deadline_ns, pgx_err *e) {
    pg_store *s = arg;
    char sql[256];
    /* idle_in_transaction: we never leave one open, but a bug must not hold
     * row locks forever */
    snprintf(sql, sizeof sql,
             "SET statement_timeout = %u; SET idle_in_transaction_session_timeout = %u;"
             " SET client_min_messages = warning;", s->stmt_ms, s->stmt_ms * 2 + 1000);
    if (pgx_run(c, sql, deadline_ns, e) != 0) return -1;
    for (int i = 0; i < S_N; i++)
        if (pgx_prepare(c, KV_PG_STMTS[i].name, KV_PG_STMTS[i].sql, KV_PG_STMTS[i].nparams, deadline_ns, e) != 0)
            return -1;
    return 0;
}

/* Set by a completion thread while it runs a submitted op: the op's own
 * deadline, counted from its submit (time in the queue counts too). */
static _Thread_local uint64_t op_deadline_ns;

static uint64_t budget_ns(const pg_store *s) { return ((uint64_t)s->stmt_ms + KV_PG_GRACE_MS) * 1000000u; }

static uint64_t deadline(const pg_store *s) {
    uint64_t d = hale_now_ns() + budget_ns(s);
    return op_deadline_ns && op_deadline_ns < d ? op_deadline_ns : d;
}

/* Reports a failed call to the breaker. A client-side deadline that passed
 * with no answer at all (connect or query: the server's own
 * statement_timeout would have answered first) means the server is hung or
 * unreachable: open at once, so requests queued behind this one on the
 * same worker answer 503 instead of each waiting its own deadline. */
static void breaker_report(pg_store *s, const pgx_err *e) {
    if (e->timeout && e->broken) hale_breaker_trip(&s->brk);
    else if (e->st == KV_UNAVAILABLE) hale_breaker_failure(&s->brk);
    else hale_breaker_success(&s->brk); /* the server answered */
}

static void observe(_Atomic(hale_histogram *) *h, uint64_t ns) {
    hale_histogram *x = atomic_load_explicit(h, memory_order_acquire);
    if (x) hale_histogram_observe(x, (double)ns / 1e9);
}

/* Runs prepared statement `id`. Returns the result, or NULL with *st.
 * Reads (idempotent) are retried once on a fresh connection when a reused
 * one turns out broken, which covers the first call after a server restart
 * that the idle check did not catch; writes never are, since the first
 * attempt may have committed. */
static PGresult *call(pg_store *s, int id, const char *const *vals, const int *lens, const int *fmts,
                      bool idempotent, kv_status *st) {
    if (!hale_breaker_allow(&s->brk)) {
        *st = KV_UNAVAILABLE;
        return NULL;
    }
    uint64_t dl = deadline(s);
    for (int attempt = 0;; attempt++) {
        pgx_lease l;
        pgx_err e;
        uint64_t waited = 0;
        memset(&e, 0, sizeof e);
        int rc = pgx_pool_acquire(&s->pool, dl, &l, &waited, &e);
        observe(&s->wait, waited);
        if (rc != 0) {
            /* a busy pool says nothing about the server's health; a failed
             * connect does */
            if (e.broken) breaker_report(s, &e);
            warn_limited(s, "database unavailable", &e);
            *st = e.st;
            return NULL;
        }
        uint64_t t0 = hale_now_ns();
        PGresult *r = pgx_exec(l.conn, KV_PG_STMTS[id].name, true, KV_PG_STMTS[id].nparams, vals, lens, fmts, dl, &e);
        uint64_t t1 = hale_now_ns();
        observe(&s->lat[id], t1 - t0);
        if (r) {
            atomic_store_explicit(&s->pool.last_ok_ns, t1, memory_order_relaxed);
            hale_breaker_success(&s->brk);
            pgx_pool_release(&s->pool, &l, false);
            return r;
        }
        pgx_pool_release(&s->pool, &l, e.broken);
        if (e.timeout) atomic_fetch_add(&s->timeouts, 1);
        breaker_report(s, &e);
        if (idempotent && attempt == 0 && l.reused && e.broken && !e.timeout && hale_now_ns() < dl)
            continue;
        warn_limited(s, e.st == KV_UNAVAILABLE ? "database unavailable" : "database error", &e);
        *st = e.st;
        return NULL;
    }
}

static int64_t get_i64(const PGresult *r, int row, int col) {
    uint64_t x;
    HALE_ASSERT(PQgetlength(r, row, col) == 8);
    memcpy(&x, PQgetvalue(r, row, col), 8);
    return (int64_t)be64toh(x);
}

static kv_status pg_get(kv_store *base, const char *key, size_t klen, kv_item *out) {
    pg_store *s = (pg_store *)base;
    const char *vals[1] = {key};
    int lens[1] = {(int)klen}, fmts[1] = {1};
    kv_status st;
    PGresult *r = call(s, S_GET, vals, lens, fmts, true, &st);
    if (!r) return st;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return KV_NOT_FOUND;
    }
    size_t n = (size_t)PQgetlength(r, 0, 0);
    out->value = xmalloc(n + 1);
    memcpy(out->value, PQgetvalue(r, 0, 0), n);
    out->value[n] = '\0';
    out->len = n;
    size_t cl = (size_t)PQgetlength(r, 0, 1);
    if (cl >= sizeof out->ctype) cl = sizeof out->ctype - 1;
    memcpy(out->ctype, PQgetvalue(r, 0, 1), cl);
    out->ctype[cl] = '\0';
    out->version = get_i64(r, 0, 2);
    out->mtime_ms = get_i64(r, 0, 3);
    PQclear(r);
    return KV_OK;
}

static kv_status pg_put(kv_store *base, const char *key, size_t klen, const char *val, size_t vlen,
                        const char *ctype, const kv_cond *c, int64_t *version, bool *created) {
    pg_store *s = (pg_store *)base;
    kv_cond none = {0};
    if (!c) c = &none;
    /* "must not exist" and "must exist (with this version)" together can
     * never hold: answer as SQLite does, without a round trip */
    if (c->if_none_match_any && (c->if_match_any || c->if_match)) return KV_PRECONDITION;
    uint64_t want = htobe64((uint64_t)c->if_match);
    const char *vals[4] = {key, vlen ? val : "", ctype, (const char *)&want};
    int lens[4] = {(int)klen, (int)vlen, (int)strlen(ctype), 8}, fmts[4] = {1, 1, 1, 1};
    int id = c->if_none_match_any ? S_PUT_NEW : c->if_match ? S_PUT_MATCH
           : c->if_match_any ? S_PUT_EXISTS : S_PUT;
    kv_status st;
    PGresult *r = call(s, id, vals, lens, fmts, false, &st);
    if (!r) return st;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return KV_PRECONDITION;
    }
    *version = get_i64(r, 0, 0);
    *created = PQgetvalue(r, 0, 1)[0] != 0;
    PQclear(r);
    return KV_OK;
}

static kv_status pg_del(kv_store *base, const char *key, size_t klen, const kv_cond *c) {
    pg_store *s = (pg_store *)base;
    kv_cond none = {0};
    if (!c) c = &none;
    uint64_t want = htobe64((uint64_t)c->if_match);
    char inm = c->if_none_match_any ? 1 : 0;
    const char *vals[3] = {key, (const char *)&want, &inm};
    int lens[3] = {(int)klen, 8, 1}, fmts[3] = {1, 1, 1};
    for (int attempt = 0;; attempt++) {
        kv_status st;
        PGresult *r = call(s, S_DEL, vals, lens, fmts, false, &st);
        if (!r) return st;
        int64_t deleted = get_i64(r, 0, 0);
        bool existed = PQgetvalue(r, 0, 1)[0] != 0;
        PQclear(r);
        /* like SQLite: absent -> 404 before any condition is looked at */
        if (deleted) return KV_OK;
        if (!existed) return KV_NOT_FOUND;
        if (c->if_match || c->if_none_match_any) return KV_PRECONDITION;
        /* No condition, yet nothing deleted: the row this statement's
         * snapshot saw was deleted by a concurrent transaction first (a
         * re-created key is a new row). Never a 412 for a precondition
         * nobody sent: once more on a fresh snapshot (this attempt changed
         * nothing), then 404 (right after that other delete). */
        if (attempt == 1) return KV_NOT_FOUND;
    }
}

static kv_status pg_list(kv_store *base, const char *prefix, size_t plen, const char *after,
                         size_t alen, size_t limit, char ***keys, size_t *nkeys, bool *more) {
    pg_store *s = (pg_store *)base;
    char *upper = xmalloc(plen + 1);
    size_t ulen = kv_prefix_upper(prefix, plen, upper);
    uint64_t lim = htobe64((uint64_t)limit + 1);
    const char *vals[4] = {prefix, (plen && ulen) ? upper : NULL, after, (const char *)&lim};
    int lens[4] = {(int)plen, (int)ulen, (int)alen, 8}, fmts[4] = {1, 1, 1, 1};
    *keys = NULL;
    *nkeys = 0;
    *more = false;
    kv_status st;
    PGresult *r = call(s, S_LIST, vals, lens, fmts, true, &st);
    free(upper);
    if (!r) return st;
    size_t rows = (size_t)PQntuples(r);
    *keys = xcalloc(limit + 1, sizeof(char *));
    for (size_t i = 0; i < rows; i++) {
        if (*nkeys == limit) {
            *more = true;
            break;
        }
        (*keys)[(*nkeys)++] = xstrndup(PQgetvalue(r, (int)i, 0), (size_t)PQgetlength(r, (int)i, 0));
    }
    PQclear(r);
    return KV_OK;
}

/* The readiness check. It is also the breaker's probe when the breaker is
 * due one, so readiness recovers even with no traffic. When every
 * connection is busy it does not queue behind requests: a query that
 * succeeded within the last second vouches for the server. */
static int pg_ping(kv_store *base, char *err, size_t errlen) {
    pg_store *s = (pg_store *)base;
    if (!hale_breaker_allow(&s->brk))
        return hale_err(err, errlen, "postgres: circuit breaker open after repeated failures");
    uint64_t dl = deadline(s);
    pgx_lease l;
    pgx_err e;
    uint64_t waited;
    memset(&e, 0, sizeof e);
    if (pgx_pool_acquire(&s->pool, dl, &l, &waited, &e) != 0) {
        uint64_t last = atomic_load(&s->pool.last_ok_ns);
        if (!e.broken && last && hale_now_ns() - last < 1000000000u) return 0;
        if (e.broken) breaker_report(s, &e);
        return hale_err(err, errlen, "%s", e.msg);
    }
    PGresult *r = pgx_exec(l.conn, KV_PG_STMTS[S_PING].name, true, 0, NULL, NULL, NULL, dl, &e);
    pgx_pool_release(&s->pool, &l, !r && e.broken);
    if (!r) {
        breaker_report(s, &e);
        if (e.timeout) atomic_fetch_add(&s->timeouts, 1);
        return hale_err(err, errlen, "%s", e.msg);
    }
    bool standby = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] != 0;
    PQclear(r);
    atomic_store(&s->pool.last_ok_ns, hale_now_ns());
    hale_breaker_success(&s->brk);
    if (standby) return hale_err(err, errlen, "postgres: the server is a read-only standby");
    return 0;
}

/* On a completion thread: the blocking call, within the op's deadline. */
static void pg_run(void *ctx, kv_op *op) {
    kv_store *base = ctx;
    op_deadline_ns = op->submit_ns + budget_ns((pg_store *)base);
    kv_status st = op->kind == KV_OP_PUT
        ? pg_put(base, op->key, op->klen, op->val, op->vlen, op->ctype, &op->cond, &op->version, &op->created)
        : pg_del(base, op->key, op->klen, &op->cond);
    op_deadline_ns = 0;
    kv_op_finish(op, st);
}

/* The HTTP worker only queues: a full queue is a 503 at once. */
static void pg_submit(kv_store *base, kv_op *op) { kv_async_submit(((pg_store *)base)->async, op); }

static void pg_close(kv_store *base) {
    pg_store *s = (pg_store *)base;
    kv_async_destroy(s->async);
    pgx_pool_destroy(&s->pool);
    hale_breaker_destroy(&s->brk);
    free(s);
}

static const kv_store_ops PG_OPS = {
    .name = "postgres", .get = pg_get, .put = pg_put, .del = pg_del,
    .list = pg_list, .ping = pg_ping, .close = pg_close, .submit = pg_submit,
};

bool kv_store_is_pg(const kv_store *s) { return s && s->ops == &PG_OPS; }

const char *kv_pg_cache_namespace(const kv_store *s) {
    HALE_ASSERT(kv_store_is_pg(s));
    return ((const pg_store *)s)->ns;
}

/* On a dedicated connection: migrate (or check), then read the cache
 * namespace. */
static int prepare_schema(pg_store *s, const kv_pg_opts *o, char *err, size_t errlen) {
    pgx_err e;
    memset(&e, 0, sizeof e);
    uint64_t dl = hale_now_ns() + (uint64_t)o->connect_timeout_ms * 1000000u;
    PGconn *c = pgx_connect(o->url, dl, &e);
    if (!c) return hale_err(err, errlen, "%s", e.msg);
    int from = 0, to = 0, rc = -1;
    if (kv_pg_migrate(c, o->migrate, o->migrate_lock_wait_ms, &from, &to, &e) != 0) {
        hale_err(err, errlen, "%s", e.msg);
        goto out;
    }
    if (to != from)
        HALE_LOG(HALE_LOG_INFO, LOG_TARGET, "database schema migrated", HALE_F_INT("from", from),
                 HALE_F_INT("to", to));
    PGresult *r = pgx_exec(c, "SELECT value FROM hale_meta WHERE name = 'cache_namespace'", false, 0,
                           NULL, NULL, NULL, hale_now_ns() + (uint64_t)o->statement_timeout_ms * 1000000u,
                           &e);
    if (!r) {
        hale_err(err, errlen, "%s", e.msg);
        goto out;
    }
    if (PQntuples(r) == 1) {
        snprintf(s->ns, sizeof s->ns, "%.*s", PQgetlength(r, 0, 0), PQgetvalue(r, 0, 0));
        rc = 0;
    } else {
        hale_err(err, errlen, "postgres: hale_meta has no cache_namespace row");
    }
    PQclear(r);
out:
    PQfinish(c);
    return rc;
}

kv_store *kv_pg_open(const kv_pg_opts *o, char *err, size_t errlen) {
    if (!o->url || !*o->url) {
        hale_err(err, errlen, "postgres: no database URL");
        return NULL;
    }
    pg_store *s = xcalloc(1, sizeof *s);
    s->base.ops = &PG_OPS;
    s->stmt_ms = o->statement_timeout_ms ? o->statement_timeout_ms : 5000;
    hale_breaker_init(&s->brk, o->breaker_failures ? o->breaker_failures : 5, o->breaker_open_ms);
    pgx_pool_init(&s->pool, o->url, o->max_connections ? o->max_connections : 1,
                  o->connect_timeout_ms ? o->connect_timeout_ms : 5000, setup_conn, s);
    if (prepare_schema(s, o, err, errlen) != 0) goto fail;
    /* one completion thread per connection (more would only wait for the
     * pool); the queue bounds what waits behind them */
    unsigned nconn = o->max_connections ? o->max_connections : 1;
    s->async = kv_async_new("hale-pg", nconn, nconn * 64, pg_run, &s->base, err, errlen);
    if (!s->async) goto fail;
    /* one pooled connection now, so that a bad password or missing grant
     * fails the open rather than the first request */
    pgx_lease l;
    pgx_err e;
    uint64_t waited;
    memset(&e, 0, sizeof e);
    if (pgx_pool_acquire(&s->pool, deadline(s), &l, &waited, &e) != 0) {
        hale_err(err, errlen, "%s", e.msg);
        goto fail;
    }
    pgx_pool_release(&s->pool, &l, false);
    atomic_store(&s->pool.last_ok_ns, hale_now_ns());
    return &s->base;
fail:
    pg_close(&s->base);
    return NULL;
}

void kv_pg_get_stats(const kv_store *base, kv_pg_stats *out) {
    HALE_ASSERT(kv_store_is_pg(base));
    pg_store *s = (pg_store *)base;
    out->pool_size = s->pool.base.size;
    out->open = atomic_load(&s->pool.base.open);
    out->in_use = atomic_load(&s->pool.base.in_use);
    out->connects = atomic_load(&s->pool.base.connects);
    out->connect_failures = atomic_load(&s->pool.base.connect_failures);
    out->dropped = atomic_load(&s->pool.base.dropped);
    out->acquire_timeouts = atomic_load(&s->pool.base.acquire_timeouts);
    out->timeouts = atomic_load(&s->timeouts);
    out->breaker_state = (int)hale_breaker_get_state(&s->brk);
    out->breaker_opens = hale_breaker_opens(&s->brk);
}

/* ---- metrics ---- */

static double m_size(void *a) { return ((pg_store *)a)->pool.base.size; }
static double m_open(void *a) { return atomic_load(&((pg_store *)a)->pool.base.open); }
static double m_in_use(void *a) { return atomic_load(&((pg_store *)a)->pool.base.in_use); }
static double m_connects(void *a) { return (double)atomic_load(&((pg_store *)a)->pool.base.connects); }
static double m_conn_fail(void *a) { return (double)atomic_load(&((pg_store *)a)->pool.base.connect_failures); }
static double m_timeouts(void *a) {
    pg_store *s = a;
    return (double)(atomic_load(&s->timeouts) + atomic_load(&s->pool.base.acquire_timeouts));
}
static double m_brk(void *a) { return (double)hale_breaker_get_state(&((pg_store *)a)->brk); }
static double m_brk_opens(void *a) { return (double)hale_breaker_opens(&((pg_store *)a)->brk); }

void kv_pg_register_metrics(kv_store *base, hale_metrics *reg) {
    HALE_ASSERT(kv_store_is_pg(base));
    pg_store *s = (pg_store *)base;
    hale_metrics_gauge_fn(reg, "hale_db_pool_max_connections", "Size limit of the database connection pool.",
                          m_size, s);
    hale_metrics_gauge_fn(reg, "hale_db_pool_open_connections", "Database connections currently open.",
                          m_open, s);
    hale_metrics_gauge_fn(reg, "hale_db_pool_in_use_connections",
                          "Database connections currently lent to a request.", m_in_use, s);
    hale_metrics_counter_fn(reg, "hale_db_connects_total", "Database connections made.", m_connects, s);
    hale_metrics_counter_fn(reg, "hale_db_connect_failures_total", "Failed database connection attempts.",
                            m_conn_fail, s);
    hale_metrics_counter_fn(reg, "hale_db_timeouts_total",
                            "Database calls that hit their deadline (pool wait or query).", m_timeouts, s);
    hale_metrics_gauge_fn(reg, "hale_db_breaker_state",
                          "Database circuit breaker: 0 closed, 1 open, 2 half-open.", m_brk, s);
    hale_metrics_counter_fn(reg, "hale_db_breaker_opens_total", "Times the database breaker opened.",
                            m_brk_opens, s);
    hale_metric *w = hale_metrics_histogram(reg, "hale_db_pool_wait_seconds",
                                            "Time spent waiting for a free database connection.", 0, NULL,
                                            0, NULL);
    atomic_store(&s->wait, hale_histogram_with(w, NULL));
    const char *const lbl[] = {"op"};
    hale_metric *q = hale_metrics_histogram(reg, "hale_db_query_duration_seconds",
                                            "Database statement round-trip time, by operation.", 1, lbl, 0,
                                            NULL);
    for (int i = 0; i < S_N; i++) {
        const char *v[] = {KV_PG_STMTS[i].op};
        atomic_store(&s->lat[i], hale_histogram_with(q, v));
    }
}

#endif /* HALE_HAVE_PQ */
