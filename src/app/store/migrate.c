/* migrate: see migrate.h. Each migration's SQL is written so that it is
 * fine to re-read years later: add new entries at the end, never edit one
 * that has shipped. */
#ifdef HALE_HAVE_PQ

#include "migrate.h"

#include "lifecycle.h"

#include <endian.h>
#include <stdio.h>
#include <string.h>

typedef struct migration {
    int version;
    const char *name;
    const char *sql;
} migration;

static const migration MIGRATIONS[] = {
    {1, "kv table and version sequence",
     /* bytea everywhere: keys, values and content types are bytes, compared
      * as bytes (memcmp order, like SQLite's BLOB), never re-encoded */
     "CREATE SEQUENCE kv_version_seq AS bigint;"
     "CREATE TABLE kv ("
     " key bytea PRIMARY KEY,"
     " value bytea NOT NULL,"
     " ctype bytea NOT NULL,"
     " version bigint NOT NULL);"},
    {2, "hale_meta with the cache namespace",
     "CREATE TABLE hale_meta (name text PRIMARY KEY, value text NOT NULL);"
     "INSERT INTO hale_meta VALUES ('cache_namespace', replace(gen_random_uuid()::text, '-', ''));"},
    {3, "write time per value (Last-Modified)",
     /* set by a trigger, not by hale's statements: replicas still running
      * the previous version during a rolling update write it too, so no
      * value can change while keeping an old Last-Modified; never earlier
      * than the row's previous one (the server clock may step back) */
     "ALTER TABLE kv ADD COLUMN mtime bigint NOT NULL DEFAULT 0;"
     "CREATE FUNCTION kv_set_mtime() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"
     " NEW.mtime := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;"
     " IF TG_OP = 'UPDATE' AND OLD.mtime > NEW.mtime THEN NEW.mtime := OLD.mtime; END IF;"
     " RETURN NEW; END $f$;"
     "CREATE TRIGGER kv_mtime BEFORE INSERT OR UPDATE ON kv"
     " FOR EACH ROW EXECUTE FUNCTION kv_set_mtime();"},
};
#define NMIGRATIONS (sizeof MIGRATIONS / sizeof *MIGRATIONS)

/* Migrations are small and rare; these bounds only keep a wedged server
 * from hanging the process. */
#define MIGRATE_DEADLINE_MS 600000u
#define LOCK_TIMEOUT "5s"

int kv_pg_schema_latest(void) { return MIGRATIONS[NMIGRATIONS - 1].version; }

static uint64_t ms_from_now(uint64_t ms) { return hale_now_ns() + ms * 1000000u; }

/* Runs a one-row, one-column query returning bool or int4 (binary). */
static int query_int(PGconn *c, const char *sql, int64_t *out, pgx_err *e) {
    PGresult *r = pgx_exec(c, sql, false, 0, NULL, NULL, NULL, ms_from_now(MIGRATE_DEADLINE_MS), e);
    if (!r) return -1;
    int rc = 0;
    if (PQntuples(r) != 1 || PQnfields(r) != 1 || PQgetisnull(r, 0, 0)) {
        snprintf(e->msg, sizeof e->msg, "postgres: unexpected answer to the migration query");
        e->st = KV_ERROR;
        rc = -1;
    } else {
        const char *v = PQgetvalue(r, 0, 0);
        int len = PQgetlength(r, 0, 0);
        if (len == 1) {
            *out = v[0] != 0;
        } else if (len == 4) {
            uint32_t x;
            memcpy(&x, v, 4);
            *out = (int32_t)be32toh(x);
        } else {
            snprintf(e->msg, sizeof e->msg, "postgres: unexpected width %d in migration query", len);
            e->st = KV_ERROR;
            rc = -1;
        }
    }
    PQclear(r);
    return rc;
}

static int take_lock(PGconn *c, unsigned wait_ms, pgx_err *e) {
    uint64_t until = ms_from_now(wait_ms);
    for (;;) {
        int64_t got = 0;
        if (query_int(c, "SELECT pg_try_advisory_lock(hashtext('hale.migrate.' || current_schema())::bigint)",
                      &got, e) != 0)
            return -1;
        if (got) return 0;
        if (hale_now_ns() >= until) {
            snprintf(e->msg, sizeof e->msg,
                     "postgres: another instance has held the migration lock for over %u ms", wait_ms);
            e->st = KV_UNAVAILABLE;
            e->timeout = true;
            e->broken = false;
            return -1;
        }
        if (hale_wait_shutdown(100)) {
            snprintf(e->msg, sizeof e->msg, "postgres: shutdown requested while waiting to migrate");
            e->st = KV_UNAVAILABLE;
            return -1;
        }
    }
}

int kv_pg_migrate(PGconn *c, bool apply, unsigned lock_wait_ms, int *from, int *to, pgx_err *e) {
    memset(e, 0, sizeof *e);
    uint64_t dl = ms_from_now(MIGRATE_DEADLINE_MS);
    /* the session is ours: no statement limit, but a lock limit for DDL */
    if (pgx_run(c, "SET statement_timeout = 0; SET lock_timeout = '" LOCK_TIMEOUT "';"
                   " SET client_min_messages = warning;", dl, e) != 0)
        return -1;
    if (take_lock(c, lock_wait_ms, e) != 0) return -1;
    int rc = -1;
    int64_t cur = 0;
    if (pgx_run(c, "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                   " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())", dl, e) != 0 ||
        query_int(c, "SELECT coalesce(max(version), 0) FROM schema_migrations", &cur, e) != 0)
        goto unlock;
    *from = *to = (int)cur;
    if (!apply && cur < kv_pg_schema_latest()) {
        snprintf(e->msg, sizeof e->msg,
                 "postgres: the schema is at version %d, this hale needs %d: run `hale migrate`",
                 (int)cur, kv_pg_schema_latest());
        e->st = KV_UNAVAILABLE;
        goto unlock;
    }
    for (size_t i = 0; i < NMIGRATIONS; i++) {
        const migration *m = &MIGRATIONS[i];
        if (m->version <= cur) continue;
        hale_buf sql;
        hale_buf_init(&sql);
        hale_buf_printf(&sql, "BEGIN; %s INSERT INTO schema_migrations (version, name) VALUES (%d, '%s');"
                              " COMMIT;", m->sql, m->version, m->name);
        int r = pgx_run(c, sql.data, dl, e);
        hale_buf_free(&sql);
        if (r != 0) {
            char why[sizeof e->msg];
            snprintf(why, sizeof why, "%s", e->msg);
            snprintf(e->msg, sizeof e->msg, "migration %d (%s) failed: %.180s", m->version, m->name, why);
            /* the session's transaction is aborted: the caller drops the
             * connection, which also releases the lock */
            e->broken = true;
            return -1;
        }
        *to = m->version;
    }
    rc = 0;
unlock:;
    pgx_err ue;
    if (pgx_run(c, "SELECT pg_advisory_unlock(hashtext('hale.migrate.' || current_schema())::bigint)",
                dl, &ue) != 0)
        e->broken = true; /* the lock goes with the connection */
    return rc;
}

int kv_pg_migrate_url(const char *url, unsigned connect_timeout_ms, unsigned lock_wait_ms, unsigned wait_ms,
                      FILE *out, char *err, size_t errlen) {
    uint64_t until = hale_now_ns() + (uint64_t)wait_ms * 1000000u;
    for (unsigned attempt = 0;; attempt++) {
        pgx_err e;
        memset(&e, 0, sizeof e);
        PGconn *c = pgx_connect(url, hale_now_ns() + (uint64_t)connect_timeout_ms * 1000000u, &e);
        if (c) {
            int from = 0, to = 0;
            int rc = kv_pg_migrate(c, true, lock_wait_ms, &from, &to, &e);
            PQfinish(c);
            if (rc != 0) return hale_err(err, errlen, "%s", e.msg);
            if (from == to) fprintf(out, "postgres: schema is up to date (version %d)\n", to);
            else fprintf(out, "postgres: schema migrated from version %d to %d\n", from, to);
            return 0;
        }
        uint64_t wait = hale_backoff_ms(attempt, 200, 5000);
        if (hale_now_ns() + wait * 1000000u > until) return hale_err(err, errlen, "%s", e.msg);
        fprintf(out, "%s; retrying in %llu ms\n", e.msg, (unsigned long long)wait);
        if (hale_wait_shutdown(wait)) return hale_err(err, errlen, "interrupted");
    }
}

#endif /* HALE_HAVE_PQ */
