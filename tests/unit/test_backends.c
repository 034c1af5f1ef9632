/* Tests for src/app/backends.c: settings to a store (SQLite, PostgreSQL,
 * each with or without the Redis cache, R: A6, A7), refused URLs whose
 * errors never echo a password (R: Y7), the readiness checks that fail
 * until the store is open and follow Redis (R: H2), the store metrics
 * (R: O3) and `hale migrate` (R: L2). PostgreSQL and Redis are the real
 * servers of scripts/services.sh (HALE_TEST_PG_URL, HALE_TEST_REDIS_URL);
 * without them the tests that need them fail: a missing service is never a
 * pass. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends.h"
#include "health.h"
#include "metrics.h"

static char dir[64];

static const char *need_env(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) fail_msg("%s is not set: start the services (scripts/services.sh start)", name);
    return v;
}

static void sqlite_cfg(app_store_cfg *c, const char *file) {
    static char path[128];
    app_store_cfg_get(NULL, c);
    snprintf(path, sizeof path, "%s/%s", dir, file);
    c->sqlite_path = path;
}

/* The store keeps pointers into the registry: free it after the store
 * (metrics_done). */
static hale_metrics *reg_in_use;

static char *metrics_of(kv_store *s) {
    assert_null(reg_in_use);
    reg_in_use = hale_metrics_new();
    app_backends_register_metrics(reg_in_use, s);
    hale_buf b;
    hale_buf_init(&b);
    hale_metrics_render(reg_in_use, &b);
    return b.data;
}

/* closes the store, then the registry its metrics live in */
static void close_store(kv_store *s) {
    kv_store_close(s);
    hale_metrics_free(reg_in_use);
    reg_in_use = NULL;
}

/* R: A6, A7 - the documented defaults */
static void test_defaults(void **st) {
    (void)st;
    app_store_cfg c;
    app_store_cfg_get(NULL, &c);
    assert_string_equal(c.database_url, "");
    assert_string_equal(c.sqlite_path, "./data/hale.db");
    assert_int_equal(c.max_connections, 10);
    assert_int_equal(c.connect_timeout_ms, 3000);
    assert_int_equal(c.statement_timeout_ms, 2000);
    assert_int_equal(c.redis_pool_size, 8);
    assert_int_equal(c.redis_timeout_ms, 200);
    assert_false(c.redis_required);
    assert_int_equal(c.breaker_failures, 5);
    assert_int_equal(c.breaker_open_ms, 5000);
    assert_int_equal(c.db_breaker_failures, 5);
    assert_int_equal(c.db_breaker_open_ms, 1000);
    assert_int_equal(c.cache_ttl_ms, 60000);
    assert_true(c.migrate_on_start);
    assert_int_equal(c.migrate_lock_wait_ms, 60000);
}

/* R: A6, O3 - no database URL: SQLite at sqlite_path, kind "sqlite",
 * hale_store_info{backend="sqlite"} 1, and the value round-trips */
static void test_sqlite(void **st) {
    (void)st;
    app_store_cfg c;
    sqlite_cfg(&c, "a.db");
    char err[256] = "";
    kv_store *s = app_open_store(&c, err, sizeof err);
    if (!s) fail_msg("%s", err);
    assert_string_equal(app_store_kind(s), "sqlite");
    int64_t v = 0;
    bool created = false;
    kv_cond cond = {0};
    assert_int_equal(s->ops->put(s, "k", 1, "v", 1, "text/plain", &cond, &v, &created), KV_OK);
    assert_true(created);
    char *m = metrics_of(s);
    assert_non_null(strstr(m, "hale_store_info{backend=\"sqlite\"} 1\n"));
    free(m);
    close_store(s);
    assert_int_equal(access(c.sqlite_path, F_OK), 0);
    /* an unusable path is an error, not a crash */
    c.sqlite_path = "/proc/nonexistent/dir/x.db";
    assert_null(app_open_store(&c, err, sizeof err));
    assert_true(strlen(err) > 0);
}

/* R: Y7, A6 - a wrong scheme or a malformed URL is refused without the
 * password in the message; a Redis URL that is not redis:// too */
static void test_refused_urls(void **st) {
    (void)st;
    app_store_cfg c;
    sqlite_cfg(&c, "b.db");
    char err[256] = "";
    c.database_url = "mysql://app:hunter2@db:3306/kv";
    assert_null(app_open_store(&c, err, sizeof err));
    assert_string_equal(err, "database: unsupported URL scheme (expected postgres:// or postgresql://)");
    c.database_url = "postgres://app:hunter2@db:notaport/kv";
    assert_null(app_open_store(&c, err, sizeof err));
    assert_non_null(strstr(err, "database.url"));
    assert_null(strstr(err, "hunter2"));
    c.database_url = NULL;
    c.redis_url = "http://:hunter2@cache:6379/0";
    assert_null(app_open_store(&c, err, sizeof err));
    assert_non_null(strstr(err, "redis.url"));
    assert_null(strstr(err, "hunter2"));
    /* migrate refuses the same way */
    c.redis_url = NULL;
    c.database_url = "mysql://app:hunter2@db/kv";
    assert_int_equal(app_migrate(&c, 0, stdout, err, sizeof err), -1);
    assert_string_equal(err, "database: unsupported URL scheme (expected postgres:// or postgresql://)");
    c.database_url = "postgresql://app:hunter2@db:x/kv";
    assert_int_equal(app_migrate(&c, 0, stdout, err, sizeof err), -1);
    assert_null(strstr(err, "hunter2"));
}

/* R: H2 - the checks fail with "not open yet" until the slot holds the
 * store, then pass; without a Redis URL there is only "store" */
static void test_checks_follow_the_slot(void **st) {
    (void)st;
    app_store_cfg c;
    sqlite_cfg(&c, "c.db");
    _Atomic(kv_store *) slot = NULL;
    hale_health *h = hale_health_new(NULL, NULL);
    c.check_interval_ms = 50;
    c.check_timeout_ms = 1000;
    assert_int_equal(app_backends_add_checks(h, &slot, &c), 0);
    hale_health_set_started(h);
    assert_false(hale_health_ready(h));
    hale_buf b;
    hale_buf_init(&b);
    hale_health_render_json(h, &b);
    assert_non_null(strstr(b.data, "\"last_error\":\"the store is not open yet\""));
    assert_null(strstr(b.data, "\"redis\""));
    hale_buf_free(&b);
    char err[256] = "";
    kv_store *s = app_open_store(&c, err, sizeof err);
    assert_non_null(s);
    atomic_store(&slot, s);
    hale_health_set_started(h); /* runs every check once more */
    assert_true(hale_health_ready(h));
    hale_health_free(h);
    close_store(s);
}

/* R: A7, H2, O3 - SQLite with the Redis cache: kind "sqlite+redis", a
 * "redis" check (optional unless redis_required) that passes against the
 * real Redis and fails against a closed port, and the cache metrics */
static void test_sqlite_with_redis(void **st) {
    (void)st;
    const char *redis = need_env("HALE_TEST_REDIS_URL");
    app_store_cfg c;
    sqlite_cfg(&c, "d.db");
    c.redis_url = redis;
    c.redis_required = true;
    char err[256] = "";
    kv_store *s = app_open_store(&c, err, sizeof err);
    if (!s) fail_msg("%s", err);
    assert_string_equal(app_store_kind(s), "sqlite+redis");
    char *m = metrics_of(s);
    assert_non_null(strstr(m, "hale_store_info{backend=\"sqlite+redis\"} 1\n"));
    assert_non_null(strstr(m, "hale_cache_"));
    free(m);
    _Atomic(kv_store *) slot = NULL;
    hale_health *h = hale_health_new(NULL, NULL);
    c.check_interval_ms = 50;
    c.check_timeout_ms = 2000;
    assert_int_equal(app_backends_add_checks(h, &slot, &c), 0);
    atomic_store(&slot, s);
    hale_health_set_started(h);
    hale_buf b;
    hale_buf_init(&b);
    hale_health_render_json(h, &b);
    assert_non_null(strstr(b.data, "\"redis\":{\"status\":\"pass\",\"required\":true"));
    hale_buf_free(&b);
    assert_true(hale_health_ready(h));
    hale_health_free(h);
    close_store(s);

    /* a Redis nobody answers: the store still opens (only cache hits are
     * lost), and the required check fails */
    c.redis_url = "redis://127.0.0.1:1/0";
    s = app_open_store(&c, err, sizeof err);
    if (!s) fail_msg("%s", err);
    h = hale_health_new(NULL, NULL);
    slot = NULL;
    c.check_interval_ms = 50;
    c.check_timeout_ms = 2000;
    assert_int_equal(app_backends_add_checks(h, &slot, &c), 0);
    atomic_store(&slot, s);
    hale_health_set_started(h);
    assert_false(hale_health_ready(h));
    hale_health_render_json(h, &b);
    assert_non_null(strstr(b.data, "\"redis\":{\"status\":\"fail\""));
    hale_buf_free(&b);
    hale_health_free(h);
    close_store(s);
}

/* R: A6, A7, O3 - PostgreSQL, alone and behind the cache */
static void test_postgres(void **st) {
    (void)st;
    const char *pg = need_env("HALE_TEST_PG_URL");
    const char *redis = need_env("HALE_TEST_REDIS_URL");
    app_store_cfg c;
    app_store_cfg_get(NULL, &c);
    c.database_url = pg;
    c.max_connections = 2;
    char err[256] = "";
    kv_store *s = app_open_store(&c, err, sizeof err);
    if (!s) fail_msg("%s", err);
    assert_string_equal(app_store_kind(s), "postgres");
    char *m = metrics_of(s);
    assert_non_null(strstr(m, "hale_store_info{backend=\"postgres\"} 1\n"));
    assert_non_null(strstr(m, "hale_db_"));
    free(m);
    _Atomic(kv_store *) slot = s;
    hale_health *h = hale_health_new(NULL, NULL);
    c.check_interval_ms = 50;
    c.check_timeout_ms = 2000;
    assert_int_equal(app_backends_add_checks(h, &slot, &c), 0);
    hale_health_set_started(h);
    assert_true(hale_health_ready(h));
    hale_health_free(h);
    close_store(s);

    c.redis_url = redis;
    s = app_open_store(&c, err, sizeof err);
    if (!s) fail_msg("%s", err);
    assert_string_equal(app_store_kind(s), "postgres+redis");
    m = metrics_of(s);
    assert_non_null(strstr(m, "hale_store_info{backend=\"postgres+redis\"} 1\n"));
    assert_non_null(strstr(m, "hale_db_"));
    assert_non_null(strstr(m, "hale_cache_"));
    free(m);
    close_store(s);
}

/* R: L2, Y7 - an unreachable database fails the open within its connect
 * timeout, and the message has no password */
static void test_postgres_unreachable(void **st) {
    (void)st;
    app_store_cfg c;
    app_store_cfg_get(NULL, &c);
    c.database_url = "postgres://hale:hunter2@127.0.0.1:1/hale";
    c.connect_timeout_ms = 500;
    char err[256] = "";
    assert_null(app_open_store(&c, err, sizeof err));
    assert_true(strlen(err) > 0);
    assert_null(strstr(err, "hunter2"));
}

/* R: L2 - `hale migrate`: SQLite reports its schema; PostgreSQL is up to
 * date after the first run; an unreachable one is retried with backoff
 * (each retry reported) until wait_ms, then the error */
static void test_migrate(void **st) {
    (void)st;
    const char *pg = need_env("HALE_TEST_PG_URL");
    char *out = NULL;
    size_t outn = 0;
    FILE *f = open_memstream(&out, &outn);
    app_store_cfg c;
    sqlite_cfg(&c, "m.db");
    char err[256] = "";
    assert_int_equal(app_migrate(&c, 0, f, err, sizeof err), 0);
    c.database_url = pg;
    assert_int_equal(app_migrate(&c, 1000, f, err, sizeof err), 0);
    assert_int_equal(app_migrate(&c, 1000, f, err, sizeof err), 0);
    c.database_url = "postgres://hale:hunter2@127.0.0.1:1/hale";
    c.connect_timeout_ms = 200;
    assert_int_equal(app_migrate(&c, 700, f, err, sizeof err), -1);
    assert_null(strstr(err, "hunter2"));
    fclose(f);
    assert_non_null(strstr(out, "sqlite: schema ready in "));
    assert_non_null(strstr(out, "postgres: schema is up to date (version "));
    assert_non_null(strstr(out, "; retrying in "));
    assert_null(strstr(out, "hunter2"));
    free(out);
    c.database_url = NULL;
    c.sqlite_path = "/proc/nonexistent/x.db";
    assert_int_equal(app_migrate(&c, 0, stdout, err, sizeof err), -1);
}

static int group_setup(void **st) {
    (void)st;
    snprintf(dir, sizeof dir, "/tmp/hale-backends-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int group_teardown(void **st) {
    (void)st;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_sqlite),
        cmocka_unit_test(test_refused_urls),
        cmocka_unit_test(test_checks_follow_the_slot),
        cmocka_unit_test(test_sqlite_with_redis),
        cmocka_unit_test(test_postgres),
        cmocka_unit_test(test_postgres_unreachable),
        cmocka_unit_test(test_migrate),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
