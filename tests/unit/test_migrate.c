/* Tests for src/app/store/migrate.c on the real PostgreSQL of scripts/services.sh
 * (HALE_TEST_PG_URL; unset is a failure, never a skip). Each test works in
 * a schema of its own, so migrations start from version 0: a check-only run
 * names the missing version, apply runs every migration once, a lock held
 * by another replica is waited for (bounded), a failing migration is
 * reported with its number and leaves nothing recorded, and a database
 * newer than this binary is accepted (R: L2, K2, A6). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrate.h"
#include "util.h"

#ifndef HALE_HAVE_PQ
int main(void) {
    fprintf(stderr, "test_migrate: this build has no libpq: PostgreSQL migrations cannot be tested\n");
    return 1;
}
#else

static const char *url;
static int schema_no;

static uint64_t soon(void) { return hale_now_ns() + 10000000000ull; }

/* A connection whose current schema is a fresh one. */
static PGconn *fresh(char *schema, size_t n) {
    pgx_err e;
    PGconn *c = pgx_connect(url, soon(), &e);
    if (!c) fail_msg("connect: %s", e.msg);
    snprintf(schema, n, "hale_mig_%d_%d", (int)getpid(), ++schema_no);
    char sql[256];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s; SET search_path TO %s",
             schema, schema, schema);
    if (pgx_run(c, sql, soon(), &e) != 0) fail_msg("%s: %s", sql, e.msg);
    return c;
}

static void drop(PGconn *c, const char *schema) {
    char sql[160];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
    pgx_err e;
    PGconn *d = pgx_connect(url, soon(), &e);
    assert_non_null(d);
    assert_int_equal(pgx_run(d, sql, soon(), &e), 0);
    PQfinish(d);
    if (c) PQfinish(c);
}

static int64_t count(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int64_t n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

/* R: L2, A6 - check-only on an empty schema names the versions; apply
 * runs 1..latest once; a second apply finds nothing to do */
static void test_check_then_apply(void **st) {
    (void)st;
    char schema[64];
    PGconn *c = fresh(schema, sizeof schema);
    int from = -1, to = -1;
    pgx_err e;
    assert_int_equal(kv_pg_migrate(c, false, 1000, &from, &to, &e), -1);
    char want[160];
    snprintf(want, sizeof want, "postgres: the schema is at version 0, this hale needs %d: run `hale migrate`",
             kv_pg_schema_latest());
    assert_string_equal(e.msg, want);
    assert_int_equal(e.st, KV_UNAVAILABLE);
    assert_int_equal(kv_pg_migrate(c, true, 1000, &from, &to, &e), 0);
    assert_int_equal(from, 0);
    assert_int_equal(to, kv_pg_schema_latest());
    assert_int_equal(count(c, "SELECT count(*) FROM schema_migrations"), kv_pg_schema_latest());
    assert_int_equal(count(c, "SELECT count(*) FROM kv"), 0);
    assert_int_equal(count(c, "SELECT count(*) FROM hale_meta WHERE name = 'cache_namespace'"), 1);
    assert_int_equal(kv_pg_migrate(c, true, 1000, &from, &to, &e), 0);
    assert_int_equal(from, kv_pg_schema_latest());
    assert_int_equal(to, kv_pg_schema_latest());
    assert_int_equal(kv_pg_migrate(c, false, 1000, &from, &to, &e), 0);
    /* the lock was released: another session can take it at once */
    PGconn *other = pgx_connect(url, soon(), &e);
    assert_non_null(other);
    char sql[256];
    snprintf(sql, sizeof sql, "SET search_path TO %s", schema);
    assert_int_equal(pgx_run(other, sql, soon(), &e), 0);
    assert_int_equal(count(other, "SELECT pg_try_advisory_lock(hashtext('hale.migrate.' || current_schema())::bigint)::int"), 1);
    PQfinish(other);
    drop(c, schema);
}

/* R: K2, L2 - a replica holding the lock makes the other wait, then give up
 * with a clear reason after lock_wait_ms */
static void test_lock_wait_is_bounded(void **st) {
    (void)st;
    char schema[64];
    PGconn *c = fresh(schema, sizeof schema);
    pgx_err e;
    PGconn *holder = pgx_connect(url, soon(), &e);
    assert_non_null(holder);
    char sql[256];
    snprintf(sql, sizeof sql, "SET search_path TO %s;"
             " SELECT pg_advisory_lock(hashtext('hale.migrate.' || current_schema())::bigint)", schema);
    assert_int_equal(pgx_run(holder, sql, soon(), &e), 0);
    int from = -1, to = -1;
    uint64_t t0 = hale_now_ns();
    assert_int_equal(kv_pg_migrate(c, true, 300, &from, &to, &e), -1);
    assert_true(hale_now_ns() - t0 >= 300000000ull); /* it did wait */
    assert_string_equal(e.msg, "postgres: another instance has held the migration lock for over 300 ms");
    assert_true(e.timeout);
    assert_false(e.broken);
    PQfinish(holder); /* the lock dies with the session */
    assert_int_equal(kv_pg_migrate(c, true, 3000, &from, &to, &e), 0);
    assert_int_equal(to, kv_pg_schema_latest());
    drop(c, schema);
}

/* R: A6 - a migration that fails is reported by number and name, the
 * connection is marked broken, and nothing of it is recorded */
static void test_failed_migration(void **st) {
    (void)st;
    char schema[64];
    PGconn *c = fresh(schema, sizeof schema);
    pgx_err e;
    /* a table in the way of migration 1 */
    assert_int_equal(pgx_run(c, "CREATE TABLE kv (x int)", soon(), &e), 0);
    int from = -1, to = -1;
    assert_int_equal(kv_pg_migrate(c, true, 1000, &from, &to, &e), -1);
    assert_non_null(strstr(e.msg, "migration 1 (kv table and version sequence) failed: "));
    assert_true(e.broken);
    PQfinish(c);
    c = pgx_connect(url, soon(), &e);
    assert_non_null(c);
    char sql[160];
    snprintf(sql, sizeof sql, "SET search_path TO %s", schema);
    assert_int_equal(pgx_run(c, sql, soon(), &e), 0);
    assert_int_equal(count(c, "SELECT count(*) FROM schema_migrations"), 0);
    drop(c, schema);
}

/* R: K2 - a database migrated by a newer hale (a version this binary does
 * not know) is accepted as is */
static void test_newer_database_accepted(void **st) {
    (void)st;
    char schema[64];
    PGconn *c = fresh(schema, sizeof schema);
    pgx_err e;
    int from = -1, to = -1;
    assert_int_equal(kv_pg_migrate(c, true, 1000, &from, &to, &e), 0);
    assert_int_equal(pgx_run(c, "INSERT INTO schema_migrations (version, name) VALUES (99, 'future')",
                             soon(), &e), 0);
    assert_int_equal(kv_pg_migrate(c, false, 1000, &from, &to, &e), 0);
    assert_int_equal(from, 99);
    assert_int_equal(to, 99);
    assert_int_equal(kv_pg_migrate(c, true, 1000, &from, &to, &e), 0);
    assert_int_equal(to, 99);
    drop(c, schema);
}

static int group_setup(void **st) {
    (void)st;
    url = getenv("HALE_TEST_PG_URL");
    if (!url || !*url) {
        fprintf(stderr, "HALE_TEST_PG_URL is not set: start the services (scripts/services.sh start)\n");
        return -1; /* every test fails: a missing service is never a pass */
    }
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_then_apply),
        cmocka_unit_test(test_lock_wait_is_bounded),
        cmocka_unit_test(test_failed_migration),
        cmocka_unit_test(test_newer_database_accepted),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
#endif
