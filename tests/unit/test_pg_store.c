/* Tests for src/app/store/store_pg.c, store_pg_pool.c and migrate.c against a
 * real PostgreSQL (scripts/services.sh start prints HALE_TEST_PG_URL).
 * Without HALE_TEST_PG_URL it does not run (ctest: Not Run) or, inside
 * make test (HALE_REQUIRE_SERVICES=1), fails: tests/unit/service_env.h. Each test gets a schema of
 * its own (search_path in the URL), dropped afterwards. R: A6 A1 A3 A4 Y5 L2 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "backends.h"
#include "service_env.h"
#include "store_pg.h"

#ifdef HALE_HAVE_PQ
#include <libpq-fe.h>

#include "migrate.h"

static const char *base_url;
static PGconn *admin;
static char schema[64];
static char url[1024];
static unsigned seq;

static void admin_exec(const char *sql) {
    PGresult *r = PQexec(admin, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail_msg("%s: %s", sql, PQerrorMessage(admin));
    PQclear(r);
}

static long admin_long(const char *sql) {
    PGresult *r = PQexec(admin, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("%s: %s", sql, PQerrorMessage(admin));
    long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static int setup(void **st) {
    (void)st;
    if (!base_url) return 0;
    snprintf(schema, sizeof schema, "ut_%d_%u", (int)getpid(), seq++);
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
    admin_exec(sql);
    snprintf(url, sizeof url, "%s%soptions=-csearch_path%%3D%s", base_url, strchr(base_url, '?') ? "&" : "?",
             schema);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    if (!base_url) return 0;
    char sql[256];
    snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
    admin_exec(sql);
    return 0;
}

static kv_pg_opts opts(unsigned pool, unsigned stmt_ms) {
    kv_pg_opts o = {.url = url, .max_connections = pool, .connect_timeout_ms = 2000,
                    .statement_timeout_ms = stmt_ms, .breaker_failures = 3, .breaker_open_ms = 300,
                    .migrate = true, .migrate_lock_wait_ms = 10000};
    return o;
}

static kv_store *open_ok(unsigned pool, unsigned stmt_ms) {
    char err[512];
    kv_pg_opts o = opts(pool, stmt_ms);
    kv_store *s = kv_pg_open(&o, err, sizeof err);
    if (!s) {
        fail_msg("open: %s", err);
        abort(); /* not reached: fail_msg does not return */
    }
    return s;
}


static kv_status put(kv_store *s, const char *k, const char *v, const kv_cond *c, int64_t *ver, bool *created) {
    int64_t vv = 0;
    bool cc = false;
    return s->ops->put(s, k, strlen(k), v, strlen(v), "text/plain", c, ver ? ver : &vv, created ? created : &cc);
}

/* Four replicas starting at once on an empty schema: the advisory lock
 * lets one migrate, the others find nothing to do. */
static void *open_thread(void *arg) {
    (void)arg;
    char err[512];
    kv_pg_opts o = opts(1, 2000);
    return kv_pg_open(&o, err, sizeof err);
}

static void test_concurrent_migrations(void **st) {
    (void)st;
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, open_thread, NULL);
    kv_store *s[4];
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], (void **)&s[i]);
        assert_non_null(s[i]);
    }
    const char *ns = kv_pg_cache_namespace(s[0]);
    assert_true(strlen(ns) >= 16);
    for (int i = 1; i < 4; i++) assert_string_equal(kv_pg_cache_namespace(s[i]), ns);
    for (int i = 0; i < 4; i++) kv_store_close(s[i]);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.schema_migrations", schema);
    assert_int_equal(admin_long(sql), kv_pg_schema_latest());
}

static void test_check_only_mode_reports_missing_migrations(void **st) {
    (void)st;
    char err[512];
    kv_pg_opts o = opts(1, 2000);
    o.migrate = false;
    assert_null(kv_pg_open(&o, err, sizeof err));
    assert_non_null(strstr(err, "hale migrate"));
    app_store_cfg cfg;
    app_store_cfg_get(NULL, &cfg);
    cfg.database_url = url;
    FILE *out = tmpfile();
    assert_int_equal(app_migrate(&cfg, 1000, out, err, sizeof err), 0);
    assert_int_equal(app_migrate(&cfg, 1000, out, err, sizeof err), 0); /* idempotent */
    fclose(out);
    kv_store *s = kv_pg_open(&o, err, sizeof err);
    assert_non_null(s);
    kv_store_close(s);
}

/* Compare-and-swap increments from many threads, each through its own
 * store (its own pool, like separate replicas). */
typedef struct cas_arg {
    int rounds;
    int ok;
} cas_arg;

static void *cas_thread(void *arg) {
    cas_arg *a = arg;
    char err[512];
    kv_pg_opts o = opts(2, 2000);
    kv_store *s = kv_pg_open(&o, err, sizeof err);
    if (!s) return NULL;
    for (int i = 0; i < a->rounds; i++) {
        kv_item it = {0};
        if (s->ops->get(s, "n", 1, &it) != KV_OK) continue;
        char buf[32];
        snprintf(buf, sizeof buf, "%ld", strtol(it.value, NULL, 10) + 1);
        kv_cond c = {.if_match = it.version};
        free(it.value);
        int64_t v;
        bool cr;
        if (s->ops->put(s, "n", 1, buf, strlen(buf), "text/plain", &c, &v, &cr) == KV_OK) a->ok++;
    }
    kv_store_close(s);
    return NULL;
}

static void test_cas_increments_are_atomic(void **st) {
    (void)st;
    kv_store *s = open_ok(1, 2000);
    assert_int_equal(put(s, "n", "0", NULL, NULL, NULL), KV_OK);
    pthread_t t[6];
    cas_arg a[6];
    for (int i = 0; i < 6; i++) {
        a[i] = (cas_arg){.rounds = 60};
        pthread_create(&t[i], NULL, cas_thread, &a[i]);
    }
    int total = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        total += a[i].ok;
    }
    kv_item it = {0};
    assert_int_equal(s->ops->get(s, "n", 1, &it), KV_OK);
    assert_int_equal(strtol(it.value, NULL, 10), total);
    assert_true(total > 0);
    free(it.value);
    kv_store_close(s);
}

/* The server kills our connections: the next calls reconnect by themselves. */
static void test_reconnects_after_backends_are_killed(void **st) {
    (void)st;
    kv_store *s = open_ok(3, 2000);
    assert_int_equal(put(s, "k", "v", NULL, NULL, NULL), KV_OK);
    kv_pg_stats before;
    kv_pg_get_stats(s, &before);
    admin_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
               " WHERE application_name = 'hale' AND pid <> pg_backend_pid()");
    usleep(100000);
    for (int i = 0; i < 5; i++) {
        kv_item it = {0};
        assert_int_equal(s->ops->get(s, "k", 1, &it), KV_OK);
        free(it.value);
    }
    assert_int_equal(put(s, "k", "w", NULL, NULL, NULL), KV_OK); /* a write too: no failed request */
    kv_pg_stats after;
    kv_pg_get_stats(s, &after);
    assert_true(after.connects > before.connects);
    assert_true(after.dropped > before.dropped);
    kv_store_close(s);
}

/* A table lock held elsewhere makes every call wait: each must still end
 * within statement_timeout + grace with KV_UNAVAILABLE; after 3 such
 * failures the breaker answers at once; once the lock is gone, the probe
 * (here the readiness ping) closes it again. */
static void test_deadline_and_breaker(void **st) {
    (void)st;
    kv_store *s = open_ok(2, 300);
    assert_int_equal(put(s, "k", "v", NULL, NULL, NULL), KV_OK);
    char sql[256];
    snprintf(sql, sizeof sql, "BEGIN; LOCK TABLE %s.kv IN ACCESS EXCLUSIVE MODE", schema);
    admin_exec(sql);
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = hale_now_ns();
        kv_item it = {0};
        assert_int_equal(s->ops->get(s, "k", 1, &it), KV_UNAVAILABLE);
        uint64_t ms = (hale_now_ns() - t0) / 1000000u;
        assert_true(ms >= 250);
        assert_true(ms <= 300 + KV_PG_GRACE_MS + 150);
    }
    kv_pg_stats ps;
    kv_pg_get_stats(s, &ps);
    assert_int_equal(ps.breaker_state, 1);
    assert_true(ps.timeouts >= 3);
    uint64_t t0 = hale_now_ns();
    assert_int_equal(put(s, "k", "x", NULL, NULL, NULL), KV_UNAVAILABLE);
    assert_true(hale_now_ns() - t0 < 20000000u); /* fast: no round trip */
    admin_exec("ROLLBACK");
    usleep(350000); /* open_ms */
    char err[256];
    assert_int_equal(s->ops->ping(s, err, sizeof err), 0);
    kv_pg_get_stats(s, &ps);
    assert_int_equal(ps.breaker_state, 0);
    kv_item it = {0};
    assert_int_equal(s->ops->get(s, "k", 1, &it), KV_OK);
    assert_memory_equal(it.value, "v", 1);
    free(it.value);
    kv_store_close(s);
}

/* Submitted writes (the API's path) keep the deadline from their submit,
 * time queued behind the completion threads included. */
static atomic_int async_left;
static _Atomic uint64_t async_worst_ns;
static void async_done(kv_op *op) {
    uint64_t took = hale_now_ns() - op->submit_ns;
    uint64_t w = atomic_load(&async_worst_ns);
    while (took > w && !atomic_compare_exchange_weak(&async_worst_ns, &w, took)) {}
    if (op->st == KV_UNAVAILABLE) atomic_fetch_sub(&async_left, 1);
    else atomic_fetch_sub(&async_left, 1000); /* anything else is wrong */
    kv_op_free(op);
}

static void test_async_writes_keep_the_deadline(void **st) {
    (void)st;
    kv_store *s = open_ok(2, 300);
    assert_int_equal(put(s, "k", "v", NULL, NULL, NULL), KV_OK);
    char sql[256];
    snprintf(sql, sizeof sql, "BEGIN; LOCK TABLE %s.kv IN ACCESS EXCLUSIVE MODE", schema);
    admin_exec(sql);
    atomic_store(&async_left, 6);
    atomic_store(&async_worst_ns, 0);
    for (int i = 0; i < 6; i++) { /* 3 per completion thread */
        kv_op *op = i % 2 ? kv_op_new_del("k", 1, NULL, async_done, NULL)
                          : kv_op_new_put("k", 1, "x", 1, "text/plain", NULL, async_done, NULL);
        kv_store_submit(s, op);
    }
    for (int i = 0; i < 1000 && atomic_load(&async_left) > 0; i++) usleep(10000); /* liveness: 10 s */
    admin_exec("ROLLBACK");
    assert_int_equal(atomic_load(&async_left), 0);
    /* the bound of store_pg.h, plus slack for a loaded (sanitizer) machine */
    assert_true(atomic_load(&async_worst_ns) / 1000000u <= 300 + KV_PG_GRACE_MS + 400);
    kv_store_close(s);
}

/* The pool never holds more than max_connections, whatever the threads. */
static kv_store *shared;
static void *reader(void *arg) {
    (void)arg;
    for (int i = 0; i < 200; i++) {
        kv_item it = {0};
        if (shared->ops->get(shared, "k", 1, &it) == KV_OK) free(it.value);
    }
    return NULL;
}

static void test_pool_is_bounded(void **st) {
    (void)st;
    shared = open_ok(2, 2000);
    assert_int_equal(put(shared, "k", "v", NULL, NULL, NULL), KV_OK);
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, reader, NULL);
    long peak = 0;
    for (int i = 0; i < 20; i++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hale'");
        long n = admin_long(sql);
        if (n > peak) peak = n;
        usleep(2000);
    }
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    kv_pg_stats ps;
    kv_pg_get_stats(shared, &ps);
    assert_true(ps.open <= 2);
    assert_int_equal(ps.in_use, 0);
    assert_true(peak >= 1 && peak <= 2);
    kv_store_close(shared);
}

static void test_unreachable_fails_fast_without_password(void **st) {
    (void)st;
    char err[512];
    kv_pg_opts o = opts(1, 1000);
    o.url = "postgres://hale:sup3rs3cret@127.0.0.1:1/hale";
    uint64_t t0 = hale_now_ns();
    assert_null(kv_pg_open(&o, err, sizeof err));
    assert_true(hale_now_ns() - t0 < 2000000000u);
    assert_null(strstr(err, "sup3rs3cret"));
    o.url = url;
    char bad[1100];
    snprintf(bad, sizeof bad, "%s", url);
    char *pw = strstr(bad, ":hale@");
    if (pw) {
        memcpy(pw, ":nope@", 6); /* wrong password */
        o.url = bad;
        assert_null(kv_pg_open(&o, err, sizeof err));
        assert_null(strstr(err, "nope@"));
    }
}

/* A server that accepts TCP connections but never answers: the connect
 * attempt ends at its deadline, not at the kernel's TCP timeouts. */
static void test_hung_server_connect_deadline(void **st) {
    (void)st;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    char hung[256];
    snprintf(hung, sizeof hung, "postgres://hale:x@127.0.0.1:%u/hale?sslmode=disable", ntohs(sa.sin_port));
    kv_pg_opts o = opts(1, 1000);
    o.url = hung;
    o.connect_timeout_ms = 400;
    char err[512];
    uint64_t t0 = hale_now_ns();
    assert_null(kv_pg_open(&o, err, sizeof err));
    uint64_t ms = (hale_now_ns() - t0) / 1000000u;
    assert_true(ms >= 350 && ms < 1000);
    assert_non_null(strstr(err, "deadline"));
    close(fd);
}

static void test_metrics_registered(void **st) {
    (void)st;
    kv_store *s = open_ok(2, 2000);
    assert_int_equal(put(s, "k", "v", NULL, NULL, NULL), KV_OK);
    hale_metrics *reg = hale_metrics_new();
    app_backends_register_metrics(reg, s);
    kv_item it = {0};
    assert_int_equal(s->ops->get(s, "k", 1, &it), KV_OK);
    free(it.value);
    hale_buf out;
    hale_buf_init(&out);
    hale_metrics_render(reg, &out);
    assert_non_null(strstr(out.data, "hale_store_info{backend=\"postgres\"} 1"));
    assert_non_null(strstr(out.data, "hale_db_pool_max_connections 2"));
    assert_non_null(strstr(out.data, "hale_db_query_duration_seconds_count{op=\"get\"} 1"));
    assert_non_null(strstr(out.data, "hale_db_breaker_state 0"));
    assert_non_null(strstr(out.data, "hale_db_pool_wait_seconds_bucket"));
    hale_buf_free(&out);
    hale_metrics_free(reg);
    kv_store_close(s);
}

int main(void) {
    base_url = service_env_url("HALE_TEST_PG_URL");
    if (!base_url) return service_env_missing("HALE_TEST_PG_URL is unset");
    {
        admin = PQconnectdb(base_url);
        if (PQstatus(admin) != CONNECTION_OK) {
            fprintf(stderr, "HALE_TEST_PG_URL is set but PostgreSQL is unreachable: %s", PQerrorMessage(admin));
            return 1;
        }
        PQclear(PQexec(admin, "SET client_min_messages = warning"));
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_concurrent_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_only_mode_reports_missing_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cas_increments_are_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnects_after_backends_are_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_and_breaker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_writes_keep_the_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_fails_fast_without_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hung_server_connect_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_registered, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (admin) PQfinish(admin);
    return rc;
}

#else
int main(void) {
    if (getenv("HALE_TEST_PG_URL")) {
        fprintf(stderr, "HALE_TEST_PG_URL is set but this build has no PostgreSQL support\n");
        return 1;
    }
    return service_env_missing("built without libpq");
}
#endif
