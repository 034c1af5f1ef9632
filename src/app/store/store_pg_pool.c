/* store_pg_pool: deadline-bounded libpq calls and the connection pool
 * shared by every HTTP worker. See store_pg_int.h. */
#ifdef HALE_HAVE_PQ

#include "store_pg_int.h"

#include "log.h"
#include "url_check.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- errors ---- */

kv_status pgx_classify(const char *ss) {
    if (!ss || !*ss) return KV_UNAVAILABLE; /* no SQLSTATE: client-side trouble */
    static const char *const classes[] = {"08", "53", "57", "58", "40"};
    for (size_t i = 0; i < sizeof classes / sizeof *classes; i++)
        if (strncmp(ss, classes[i], 2) == 0) return KV_UNAVAILABLE;
    if (strcmp(ss, "55P03") == 0 || strcmp(ss, "25006") == 0) return KV_UNAVAILABLE;
    return KV_ERROR;
}

/* Copies libpq's message (multi-line, newline-terminated) as one line. */
static void set_msg(pgx_err *e, const char *prefix, const char *m) {
    snprintf(e->msg, sizeof e->msg, "%s%s", prefix, m ? m : "");
    for (char *p = e->msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    size_t n = strlen(e->msg);
    while (n && e->msg[n - 1] == ' ') e->msg[--n] = '\0';
}

static void fail_broken(pgx_err *e, PGconn *c, const char *what) {
    e->st = KV_UNAVAILABLE;
    e->broken = true;
    e->timeout = false;
    e->sqlstate[0] = '\0';
    set_msg(e, what, c ? PQerrorMessage(c) : "");
}

static void fail_timeout(pgx_err *e, const char *what) {
    e->st = KV_UNAVAILABLE;
    e->broken = true; /* mid-protocol: the connection's state is unknown */
    e->timeout = true;
    e->sqlstate[0] = '\0';
    snprintf(e->msg, sizeof e->msg, "%s: no answer before the deadline", what);
}

/* ---- waiting on the socket ---- */

/* 1 ready, 0 deadline passed, -1 socket error. */
static int wait_fd(PGconn *c, short events, uint64_t deadline_ns) {
    int fd = PQsocket(c);
    if (fd < 0) return -1;
    for (;;) {
        uint64_t now = hale_now_ns();
        if (now >= deadline_ns) return 0;
        uint64_t ms = (deadline_ns - now + 999999u) / 1000000u;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, ms > 60000 ? 60000 : (int)ms);
        if (r > 0) return 1;
        if (r < 0 && errno != EINTR) return -1;
    }
}

bool pgx_idle_ok(PGconn *c) {
    if (PQstatus(c) != CONNECTION_OK) return false;
    struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
    if (p.fd < 0) return false;
    int r = poll(&p, 1, 0);
    if (r == 0) return true;
    /* Something arrived on an idle connection: an error before a close
     * (admin shutdown, terminated backend), EOF, or a harmless notice. Read
     * it and see whether the connection survived. */
    if (!PQconsumeInput(c)) return false;
    return PQstatus(c) == CONNECTION_OK && !PQisBusy(c);
}

/* libpq prints server notices (and the FATAL a server sends before it
 * drops an idle connection) to stderr by default; route them to the log. */
static void on_notice(void *arg, const char *msg) {
    (void)arg;
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') n--;
    HALE_LOG(HALE_LOG_DEBUG, "store.pg", "server notice", HALE_F_STRN("notice", msg, n));
}

/* A connect failure: libpq's text may quote the URL (or parts of it), so it
 * is scrubbed of the userinfo and password first (Y7). */
static void fail_connect(pgx_err *e, PGconn *c, const char *url) {
    fail_broken(e, c, "postgres: connect: ");
    app_url_scrub(url, e->msg, sizeof e->msg);
    const char *pw = c ? PQpass(c) : NULL;
    if (pw) app_scrub(e->msg, sizeof e->msg, pw, strlen(pw));
}

PGconn *pgx_connect(const char *url, uint64_t deadline_ns, pgx_err *e) {
    /* expand_dbname: url may be a URI or key=value string; the fallback
     * name only applies when the URL sets no application_name */
    const char *const kw[] = {"dbname", "fallback_application_name", NULL};
    const char *const val[] = {url, "hale", NULL};
    PGconn *c = PQconnectStartParams(kw, val, 1);
    if (!c) {
        fail_broken(e, NULL, "postgres: out of memory");
        return NULL;
    }
    if (PQstatus(c) == CONNECTION_BAD) {
        fail_connect(e, c, url);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, on_notice, NULL);
    PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
    while (ps != PGRES_POLLING_OK) {
        if (ps == PGRES_POLLING_FAILED) {
            fail_connect(e, c, url);
            PQfinish(c);
            return NULL;
        }
        int w = wait_fd(c, ps == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline_ns);
        if (w <= 0) {
            if (w == 0) fail_timeout(e, "postgres: connect");
            else fail_connect(e, c, url);
            PQfinish(c);
            return NULL;
        }
        ps = PQconnectPoll(c);
    }
    if (PQsetnonblocking(c, 1) != 0) {
        fail_broken(e, c, "postgres: ");
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Flushes the outgoing buffer before the deadline. */
static int flush_out(PGconn *c, uint64_t deadline_ns, pgx_err *e) {
    for (;;) {
        int f = PQflush(c);
        if (f == 0) return 0;
        if (f < 0) { fail_broken(e, c, "postgres: send: "); return -1; }
        /* libpq: wait for write-ready or read-ready, and consume input
         * when readable so the server cannot deadlock us */
        int w = wait_fd(c, POLLIN | POLLOUT, deadline_ns);
        if (w == 0) { fail_timeout(e, "postgres: send"); return -1; }
        if (w < 0 || !PQconsumeInput(c)) { fail_broken(e, c, "postgres: send: "); return -1; }
    }
}

/* Reads every result of the command in flight. Keeps the first error, else
 * the last result. */
static PGresult *collect(PGconn *c, uint64_t deadline_ns, pgx_err *e) {
    PGresult *keep = NULL;
    bool keep_is_error = false;
    for (;;) {
        while (PQisBusy(c)) {
            int w = wait_fd(c, POLLIN, deadline_ns);
            if (w == 0) { fail_timeout(e, "postgres: query"); goto fail; }
            if (w < 0 || !PQconsumeInput(c)) { fail_broken(e, c, "postgres: "); goto fail; }
        }
        PGresult *r = PQgetResult(c);
        if (!r) break;
        ExecStatusType st = PQresultStatus(r);
        bool is_error = st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK;
        if (keep_is_error) {
            PQclear(r);
        } else {
            PQclear(keep);
            keep = r;
            keep_is_error = is_error;
        }
    }
    if (!keep) { fail_broken(e, c, "postgres: no result: "); return NULL; }
    if (!keep_is_error) return keep;
    const char *ss = PQresultErrorField(keep, PG_DIAG_SQLSTATE);
    snprintf(e->sqlstate, sizeof e->sqlstate, "%s", ss ? ss : "");
    e->st = pgx_classify(ss);
    e->timeout = ss && strcmp(ss, "57014") == 0; /* statement_timeout */
    e->broken = PQstatus(c) != CONNECTION_OK;
    set_msg(e, "postgres: ", PQresultErrorMessage(keep));
    PQclear(keep);
    return NULL;
fail:
    PQclear(keep);
    return NULL;
}

int pgx_run(PGconn *c, const char *sql, uint64_t deadline_ns, pgx_err *e) {
    if (!PQsendQuery(c, sql)) { fail_broken(e, c, "postgres: "); return -1; }
    if (flush_out(c, deadline_ns, e) != 0) return -1;
    PGresult *r = collect(c, deadline_ns, e);
    if (!r) return -1;
    PQclear(r);
    return 0;
}

int pgx_prepare(PGconn *c, const char *name, const char *sql, int nparams, uint64_t deadline_ns,
                pgx_err *e) {
    if (!PQsendPrepare(c, name, sql, nparams, NULL)) { fail_broken(e, c, "postgres: "); return -1; }
    if (flush_out(c, deadline_ns, e) != 0) return -1;
    PGresult *r = collect(c, deadline_ns, e);
    if (!r) return -1;
    PQclear(r);
    return 0;
}

PGresult *pgx_exec(PGconn *c, const char *stmt, bool prepared, int nparams,
                   const char *const *vals, const int *lens, const int *fmts,
                   uint64_t deadline_ns, pgx_err *e) {
    int ok = prepared ? PQsendQueryPrepared(c, stmt, nparams, vals, lens, fmts, 1)
                      : PQsendQueryParams(c, stmt, nparams, NULL, vals, lens, fmts, 1);
    if (!ok) { fail_broken(e, c, "postgres: "); return NULL; }
    if (flush_out(c, deadline_ns, e) != 0) return NULL;
    return collect(c, deadline_ns, e);
}

/* ---- the pool (hale_pool of PGconn) ---- */

static void *pool_open(void *arg, uint64_t deadline_ns, void *ctx) {
    pgx_pool *p = arg;
    pgx_err *e = ctx;
    PGconn *c = pgx_connect(p->url, deadline_ns, e);
    if (c && p->setup && p->setup(c, p->setup_arg, deadline_ns, e) != 0) {
        PQfinish(c);
        c = NULL;
        e->broken = true;
    }
    return c;
}

static bool pool_idle_ok(void *conn, void *arg) {
    (void)arg;
    return pgx_idle_ok(conn);
}

static void pool_close(void *conn, void *arg) {
    (void)arg;
    PQfinish(conn);
}

static const hale_pool_ops pg_pool_ops = {pool_open, pool_idle_ok, pool_close};

void pgx_pool_init(pgx_pool *p, const char *url, unsigned size, unsigned connect_timeout_ms,
                   pgx_setup_fn setup, void *setup_arg) {
    memset(p, 0, sizeof *p);
    p->url = xstrdup(url);
    p->setup = setup;
    p->setup_arg = setup_arg;
    hale_pool_init(&p->base, size, connect_timeout_ms, &pg_pool_ops, p);
}

void pgx_pool_destroy(pgx_pool *p) {
    hale_pool_destroy(&p->base);
    /* the URL may hold a password: clear it before freeing */
    explicit_bzero(p->url, strlen(p->url));
    free(p->url);
}

int pgx_pool_acquire(pgx_pool *p, uint64_t deadline_ns, pgx_lease *l, uint64_t *waited_ns,
                     pgx_err *e) {
    hale_pool_rc rc = hale_pool_acquire(&p->base, deadline_ns, l, waited_ns, e);
    if (rc == HALE_POOL_BUSY) {
        e->st = KV_UNAVAILABLE;
        e->broken = false;
        e->timeout = true;
        e->sqlstate[0] = '\0';
        snprintf(e->msg, sizeof e->msg, "postgres: all %u connections busy until the deadline",
                 p->base.size);
    }
    return rc == HALE_POOL_OK ? 0 : -1;
}

void pgx_pool_release(pgx_pool *p, pgx_lease *l, bool broken) { hale_pool_release(&p->base, l, broken); }

#endif /* HALE_HAVE_PQ */
