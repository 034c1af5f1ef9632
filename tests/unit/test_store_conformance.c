/* One backend-conformance suite over the kv_store vtable, run unchanged on
 * SQLite, PostgreSQL and PostgreSQL behind the Redis cache (real servers:
 * HALE_TEST_PG_URL, HALE_TEST_REDIS_URL from scripts/services.sh start).
 * Without a URL that backend's group is skipped, unless
 * HALE_REQUIRE_SERVICES=1 (as in `make test`): then it fails.
 * Writes go through the asynchronous path the HTTP API uses (an owned
 * kv_op, kv_store_submit, one completion callback); the blocking put/del
 * of the same vtable are checked to agree with it. R: A1 A2 A6 A7 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "store_pg.h"
#include "store_sqlite.h"
#ifdef HALE_HAVE_PQ
#include <libpq-fe.h>
#endif

typedef enum { B_SQLITE, B_PG, B_PG_REDIS } backend;

static backend cur;           /* the group being run */
static const char *pg_url, *redis_url;
static bool require;
static unsigned seq;
static char dir[64], path[160];
static char ns[64];
#ifdef HALE_HAVE_PQ
static char schema[64], url[1024];
static PGconn *admin;

static void admin_exec(const char *sql) {
    PGresult *r = PQexec(admin, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail_msg("%s: %s", sql, PQerrorMessage(admin));
    PQclear(r);
}
#endif

/* Whether the current backend can run here; fails under require. */
static bool available(void) {
    bool ok = cur == B_SQLITE || (pg_url && (cur == B_PG || redis_url));
#ifndef HALE_HAVE_PQ
    if (cur != B_SQLITE) ok = false;
#endif
    if (!ok && require) fail_msg("HALE_REQUIRE_SERVICES=1 but the %s backend's server URL is not set",
                                 cur == B_PG ? "PostgreSQL" : "PostgreSQL+Redis");
    return ok;
}

static int setup(void **st) {
    (void)st;
    seq++;
    snprintf(dir, sizeof dir, "/tmp/hale-conf-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(path, sizeof path, "%s/hale.db", dir);
    snprintf(ns, sizeof ns, "conf%d_%u", (int)getpid(), seq);
#ifdef HALE_HAVE_PQ
    if (cur != B_SQLITE && admin) {
        snprintf(schema, sizeof schema, "conf_%d_%u", (int)getpid(), seq);
        char sql[128];
        snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
        admin_exec(sql);
        snprintf(url, sizeof url, "%s%soptions=-csearch_path%%3D%s", pg_url, strchr(pg_url, '?') ? "&" : "?",
                 schema);
    }
#endif
    return 0;
}

static int teardown(void **st) {
    (void)st;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    int rc = system(cmd);
#ifdef HALE_HAVE_PQ
    if (cur != B_SQLITE && admin) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
        admin_exec(sql);
    }
#endif
    return rc == 0 ? 0 : -1;
}

/* Opens (or reopens: same file, schema, namespace) the current backend. */
static kv_store *open_store(void) {
    char err[512];
    kv_store *s = NULL;
    if (cur == B_SQLITE) {
        s = kv_sqlite_open(path, err, sizeof err);
    } else {
#ifdef HALE_HAVE_PQ
        kv_pg_opts o = {.url = url, .max_connections = 4, .connect_timeout_ms = 2000,
                        .statement_timeout_ms = 5000, .breaker_failures = 5, .breaker_open_ms = 300,
                        .migrate = true, .migrate_lock_wait_ms = 10000};
        s = kv_pg_open(&o, err, sizeof err);
        if (s && cur == B_PG_REDIS) {
            kv_cache_opts co = {.url = redis_url, .pool_size = 4, .timeout_ms = 1000, .breaker_failures = 5,
                                .breaker_open_ms = 200, .ttl_ms = 60000, .ns = ns};
            kv_store *c = kv_cache_open(s, &co, err, sizeof err);
            if (!c) kv_store_close(s);
            s = c;
        }
#endif
    }
    if (!s) {
        fail_msg("open: %s", err);
        abort(); /* not reached */
    }
    return s;
}

/* A PUT through the asynchronous path. */
static kv_status put(kv_store *s, const char *k, const char *v, const kv_cond *c, int64_t *ver, bool *created) {
    kv_op *op = kv_op_new_put(k, strlen(k), v, strlen(v), "text/plain", c, NULL, NULL);
    kv_status st = kv_store_run(s, op);
    if (ver) *ver = op->version;
    if (created) *created = op->created;
    kv_op_free(op);
    return st;
}

static kv_status del(kv_store *s, const char *k, const kv_cond *c) {
    kv_op *op = kv_op_new_del(k, strlen(k), c, NULL, NULL);
    kv_status st = kv_store_run(s, op);
    kv_op_free(op);
    return st;
}

static void expect(kv_store *s, const char *k, const char *v, int64_t ver) {
    kv_item it;
    memset(&it, 0, sizeof it);
    assert_int_equal(s->ops->get(s, k, strlen(k), &it), KV_OK);
    assert_int_equal(it.len, strlen(v));
    assert_memory_equal(it.value, v, it.len);
    assert_string_equal(it.ctype, "text/plain");
    if (ver) assert_int_equal(it.version, ver);
    assert_true(it.mtime_ms > 0);
    free(it.value);
}

static void expect_absent(kv_store *s, const char *k) {
    kv_item it;
    memset(&it, 0, sizeof it);
    assert_int_equal(s->ops->get(s, k, strlen(k), &it), KV_NOT_FOUND);
}

#define NEED() do { if (!available()) skip(); } while (0)

/* R: A1 A2 */
static void test_crud(void **st) {
    (void)st;
    NEED();
    kv_store *s = open_store();
    int64_t v1, v2;
    bool created;
    expect_absent(s, "k");
    assert_int_equal(put(s, "k", "one", NULL, &v1, &created), KV_OK);
    assert_true(created);
    expect(s, "k", "one", v1);
    assert_int_equal(put(s, "k", "two", NULL, &v2, &created), KV_OK);
    assert_false(created);
    assert_true(v2 > v1);
    expect(s, "k", "two", v2);
    assert_int_equal(del(s, "k", NULL), KV_OK);
    expect_absent(s, "k");
    assert_int_equal(del(s, "k", NULL), KV_NOT_FOUND);
    /* binary key and value, empty value */
    const char bin[] = {'a', 0, (char)0xff, 'b'};
    kv_op *op = kv_op_new_put(bin, sizeof bin, bin, sizeof bin, "application/x-t\xe9", NULL, NULL, NULL);
    assert_int_equal(kv_store_run(s, op), KV_OK);
    kv_op_free(op);
    kv_item it;
    memset(&it, 0, sizeof it);
    assert_int_equal(s->ops->get(s, bin, sizeof bin, &it), KV_OK);
    assert_int_equal(it.len, sizeof bin);
    assert_memory_equal(it.value, bin, sizeof bin);
    assert_string_equal(it.ctype, "application/x-t\xe9"); /* bytes, not re-encoded */
    free(it.value);
    assert_int_equal(put(s, "e", "", NULL, NULL, NULL), KV_OK);
    expect(s, "e", "", 0);
    /* the blocking entries of the vtable are the same operations */
    int64_t v3;
    assert_int_equal(s->ops->put(s, "sync", 4, "x", 1, "text/plain", NULL, &v3, &created), KV_OK);
    assert_true(created);
    assert_true(v3 > v2);
    expect(s, "sync", "x", v3);
    assert_int_equal(s->ops->del(s, "sync", 4, NULL), KV_OK);
    assert_int_equal(s->ops->del(s, "sync", 4, NULL), KV_NOT_FOUND);
    kv_store_close(s);
}

/* R: A2 */
static void test_create_only_and_cas(void **st) {
    (void)st;
    NEED();
    kv_store *s = open_store();
    kv_cond create = {.if_none_match_any = true}, exists = {.if_match_any = true};
    int64_t v1, v2;
    bool created;
    assert_int_equal(put(s, "k", "x", &exists, NULL, NULL), KV_PRECONDITION);
    expect_absent(s, "k");
    assert_int_equal(put(s, "k", "one", &create, &v1, &created), KV_OK);
    assert_true(created);
    assert_int_equal(put(s, "k", "again", &create, NULL, NULL), KV_PRECONDITION);
    kv_cond stale = {.if_match = v1 + 1000}, match = {.if_match = v1};
    assert_int_equal(put(s, "k", "bad", &stale, NULL, NULL), KV_PRECONDITION);
    assert_int_equal(put(s, "k", "two", &match, &v2, &created), KV_OK);
    assert_false(created);
    assert_int_equal(put(s, "k", "three", &match, NULL, NULL), KV_PRECONDITION); /* v1 is gone */
    assert_int_equal(put(s, "k", "three", &exists, NULL, NULL), KV_OK);
    kv_cond both = {.if_none_match_any = true, .if_match_any = true};
    assert_int_equal(put(s, "k", "never", &both, NULL, NULL), KV_PRECONDITION);
    expect(s, "k", "three", 0);
    kv_store_close(s);
}

/* R: A2 */
static void test_delete_conditions(void **st) {
    (void)st;
    NEED();
    kv_store *s = open_store();
    int64_t v;
    assert_int_equal(put(s, "c", "x", NULL, &v, NULL), KV_OK);
    kv_cond stale = {.if_match = v + 1000}, none = {.if_none_match_any = true}, cur_v = {.if_match = v};
    assert_int_equal(del(s, "nope", &stale), KV_NOT_FOUND);
    assert_int_equal(del(s, "c", &stale), KV_PRECONDITION);
    assert_int_equal(del(s, "c", &none), KV_PRECONDITION);
    expect(s, "c", "x", v);
    assert_int_equal(del(s, "c", &cur_v), KV_OK);
    expect_absent(s, "c");
    kv_store_close(s);
}

static void list_is(kv_store *s, const char *prefix, const char *after, size_t limit, bool more,
                    const char *const *want, size_t nwant) {
    char **keys = NULL;
    size_t n = 0;
    bool m = !more;
    assert_int_equal(s->ops->list(s, prefix, strlen(prefix), after, strlen(after), limit, &keys, &n, &m), KV_OK);
    assert_int_equal(n, nwant);
    assert_int_equal(m, more);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(keys[i], want[i]);
        free(keys[i]);
    }
    free(keys);
}

/* R: A1 */
static void test_listing(void **st) {
    (void)st;
    NEED();
    kv_store *s = open_store();
    const char *all[] = {"a/1", "a/2", "a/3", "ab", "b/1"};
    for (size_t i = 0; i < 5; i++) assert_int_equal(put(s, all[i], "v", NULL, NULL, NULL), KV_OK);
    list_is(s, "", "", 100, false, all, 5);
    list_is(s, "a/", "", 2, true, all, 2);
    list_is(s, "a/", "a/2", 2, false, all + 2, 1);
    list_is(s, "a", "", 10, false, all, 4);
    list_is(s, "", "ab", 10, false, all + 4, 1);
    list_is(s, "c", "", 10, false, NULL, 0);
    /* byte order, and a prefix of 0xFF bytes (no upper bound) */
    const char *high[] = {"\xc3\xa9", "\xff\xff", "\xff\xff\x61"}; /* \x61 = 'a' */
    for (size_t i = 0; i < 3; i++) assert_int_equal(put(s, high[i], "v", NULL, NULL, NULL), KV_OK);
    list_is(s, "\xff\xff", "", 10, false, high + 1, 2);
    list_is(s, "", "b/1", 10, false, high, 3);
    assert_int_equal(del(s, "a/2", NULL), KV_OK);
    const char *after_del[] = {"a/1", "a/3"};
    list_is(s, "a/", "", 10, false, after_del, 2);
    kv_store_close(s);
}

/* R: A2 A6 */
static void test_versions_never_reused(void **st) {
    (void)st;
    NEED();
    kv_store *s = open_store();
    int64_t v1, v2, v3;
    bool created;
    assert_int_equal(put(s, "k", "one", NULL, &v1, NULL), KV_OK);
    assert_int_equal(del(s, "k", NULL), KV_OK);
    assert_int_equal(put(s, "k", "two", NULL, &v2, &created), KV_OK);
    assert_true(created);
    assert_true(v2 > v1);
    kv_cond old = {.if_match = v1};
    assert_int_equal(put(s, "k", "x", &old, NULL, NULL), KV_PRECONDITION);
    assert_int_equal(del(s, "k", &old), KV_PRECONDITION);
    assert_int_equal(del(s, "k", NULL), KV_OK);
    kv_store_close(s);
    s = open_store(); /* and across a restart */
    assert_int_equal(put(s, "k", "three", NULL, &v3, &created), KV_OK);
    assert_true(created);
    assert_true(v3 > v2);
    kv_store_close(s);
}

#define NTHREADS 4
#define NTRIES 40

typedef struct incr { kv_store *s; int ok; } incr;

static void *cas_incr(void *arg) {
    incr *a = arg;
    for (int i = 0; i < NTRIES; i++) {
        kv_item it;
        memset(&it, 0, sizeof it);
        if (a->s->ops->get(a->s, "n", 1, &it) != KV_OK) continue;
        long n = strtol(it.value, NULL, 10);
        free(it.value);
        char buf[32];
        snprintf(buf, sizeof buf, "%ld", n + 1);
        kv_cond c = {.if_match = it.version};
        if (put(a->s, "n", buf, &c, NULL, NULL) == KV_OK) a->ok++;
    }
    return NULL;
}

/* R: A2 */
static void test_concurrent_cas_increments(void **st) {
    (void)st;
    NEED();
    kv_store *s = open_store();
    assert_int_equal(put(s, "n", "0", NULL, NULL, NULL), KV_OK);
    pthread_t t[NTHREADS];
    incr a[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        a[i] = (incr){.s = s};
        assert_int_equal(pthread_create(&t[i], NULL, cas_incr, &a[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        ok += a[i].ok;
    }
    assert_true(ok > 0);
    char want[32];
    snprintf(want, sizeof want, "%d", ok);
    expect(s, "n", want, 0);
    kv_store_close(s);
}

typedef struct burst { kv_store *s; int id; int ok; } burst;

static void *burst_writer(void *arg) {
    burst *b = arg;
    for (int i = 0; i < 25; i++) {
        char k[32];
        snprintf(k, sizeof k, "d/%d/%02d", b->id, i);
        if (put(b->s, k, k, NULL, NULL, NULL) == KV_OK) b->ok++;
    }
    return NULL;
}

/* R: A6 */
static void test_durable_across_reopen(void **st) {
    (void)st;
    NEED();
    kv_store *s = open_store();
    pthread_t t[NTHREADS];
    burst b[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        b[i] = (burst){.s = s, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, burst_writer, &b[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
    assert_int_equal(del(s, "d/0/00", NULL), b[0].ok ? KV_OK : KV_NOT_FOUND);
    kv_store_close(s);
    s = open_store();
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(b[i].ok, 25);
        for (int j = i == 0 ? 1 : 0; j < 25; j++) {
            char k[32];
            snprintf(k, sizeof k, "d/%d/%02d", i, j);
            expect(s, k, k, 0);
        }
    }
    expect_absent(s, "d/0/00");
    kv_store_close(s);
}

int main(void) {
    pg_url = getenv("HALE_TEST_PG_URL");
    redis_url = getenv("HALE_TEST_REDIS_URL");
    if (pg_url && !*pg_url) pg_url = NULL;
    if (redis_url && !*redis_url) redis_url = NULL;
    const char *req = getenv("HALE_REQUIRE_SERVICES");
    require = req && strcmp(req, "1") == 0;
#ifdef HALE_HAVE_PQ
    if (pg_url) {
        admin = PQconnectdb(pg_url);
        if (PQstatus(admin) != CONNECTION_OK) {
            fprintf(stderr, "cannot connect to HALE_TEST_PG_URL: %s", PQerrorMessage(admin));
            return 1;
        }
    }
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_only_and_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_conditions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_versions_never_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_cas_increments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durable_across_reopen, setup, teardown),
    };
    int rc = 0;
    static const char *const names[] = {"sqlite", "postgres", "postgres+redis"};
    for (backend b = B_SQLITE; b <= B_PG_REDIS; b++) {
        cur = b;
        rc |= _cmocka_run_group_tests(names[b], tests, sizeof tests / sizeof tests[0], NULL, NULL);
    }
#ifdef HALE_HAVE_PQ
    if (admin) PQfinish(admin);
#endif
    return rc ? 1 : 0;
}
