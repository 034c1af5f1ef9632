/* store_pg_int: internals shared by store_pg.c, store_pg_sql.c,
 * store_pg_pool.c, copy_io.c and migrate.c. Not for other modules: they use
 * store_pg.h.
 *
 * Every call here that talks to the server takes an absolute deadline
 * (hale_now_ns() clock) and returns by then: sockets are non-blocking and
 * waited on with poll(), never with libpq's blocking calls. The one
 * exception is name resolution inside PQconnectStart (getaddrinfo), which
 * libpq does synchronously; use an IP address or a local resolver when
 * that matters.
 */
#ifndef APP_STORE_PG_INT_H
#define APP_STORE_PG_INT_H

#ifdef HALE_HAVE_PQ

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>

#include "pool.h"
#include "store.h"

/* What went wrong with a call, filled on failure. */
typedef struct pgx_err {
    kv_status st;      /* KV_UNAVAILABLE (retry later) or KV_ERROR */
    bool broken;       /* the connection is unusable: drop it */
    bool timeout;      /* the client-side deadline passed */
    char sqlstate[6];  /* "" when the server sent none */
    char msg[256];     /* one line, never contains the password */
} pgx_err;

/* Connects to url (a postgres:// URI or key=value string) before the
 * deadline. Returns a connected, non-blocking connection, or NULL with e. */
PGconn *pgx_connect(const char *url, uint64_t deadline_ns, pgx_err *e);

/* Runs a simple-protocol query (several statements allowed); every one must
 * succeed. Returns 0 or -1 with e. */
int pgx_run(PGconn *c, const char *sql, uint64_t deadline_ns, pgx_err *e);

/* Prepares a named statement. Returns 0 or -1 with e. */
int pgx_prepare(PGconn *c, const char *name, const char *sql, int nparams,
                uint64_t deadline_ns, pgx_err *e);

/* Executes a prepared statement (prepared = true, stmt is its name) or a
 * one-statement query text with parameters; results come back in binary.
 * Returns the result (PGRES_TUPLES_OK or PGRES_COMMAND_OK; caller PQclears)
 * or NULL with e. */
PGresult *pgx_exec(PGconn *c, const char *stmt, bool prepared, int nparams,
                   const char *const *vals, const int *lens, const int *fmts,
                   uint64_t deadline_ns, pgx_err *e);

/* True when an idle connection still looks alive: nothing unread on its
 * socket (a server that shut down or killed the backend has sent an error
 * and closed). Costs one poll() with a zero timeout. */
bool pgx_idle_ok(PGconn *c);

/* SQLSTATE -> KV_UNAVAILABLE for the classes a retry can cure (connection,
 * resources, operator intervention, transaction rollback, lock timeout,
 * read-only server), KV_ERROR otherwise. */
kv_status pgx_classify(const char *sqlstate);

/* The store's statements (store_pg_sql.c), prepared on every pooled
 * connection under their names; op labels the latency metric. */
enum { S_GET, S_PUT, S_PUT_NEW, S_PUT_MATCH, S_PUT_EXISTS, S_DEL, S_LIST, S_PING, S_N };
typedef struct kv_pg_stmt {
    const char *name, *sql;
    int nparams;
    const char *op;
} kv_pg_stmt;
extern const kv_pg_stmt KV_PG_STMTS[S_N];

/* The SQL text of the statement named `name` ("hale_put", ...), or NULL.
 * For tests that play another replica on a connection of their own. */
const char *kv_pg_statement_sql(const char *name);

/* ---- the connection pool (store_pg_pool.c) ---- */

/* Runs on every new connection before it is handed out (SET, PREPARE). */
typedef int (*pgx_setup_fn)(PGconn *c, void *arg, uint64_t deadline_ns, pgx_err *e);

typedef struct pgx_pool {
    hale_pool base;            /* the PGconn slots and their counters */
    char *url;
    pgx_setup_fn setup;
    void *setup_arg;
    _Atomic uint64_t last_ok_ns; /* last time a call on any connection succeeded */
} pgx_pool;

typedef hale_pool_lease pgx_lease; /* .conn is the PGconn */

/* size >= 1. Connects nothing yet. */
void pgx_pool_init(pgx_pool *p, const char *url, unsigned size, unsigned connect_timeout_ms,
                   pgx_setup_fn setup, void *setup_arg);
/* Closes every connection; no lease may be outstanding. */
void pgx_pool_destroy(pgx_pool *p);

/* Waits (until the deadline) for a free slot and returns it connected:
 * a dead idle connection is replaced, a missing one is made (within
 * min(deadline, now + connect_timeout)). Returns 0, or -1 with e (no slot
 * free in time: e->timeout without e->broken; connect failure: e->broken).
 * *waited_ns gets the time spent waiting for a slot. Thread-safe. */
int pgx_pool_acquire(pgx_pool *p, uint64_t deadline_ns, pgx_lease *l, uint64_t *waited_ns,
                     pgx_err *e);

/* Gives the slot back; broken closes its connection first. */
void pgx_pool_release(pgx_pool *p, pgx_lease *l, bool broken);

#endif /* HALE_HAVE_PQ */
#endif
