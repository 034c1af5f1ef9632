/* Tests for src/app/cache/cache_redis.c against a real Redis (scripts/services.sh
 * start prints HALE_TEST_REDIS_URL), in front of an in-memory fake store
 * that counts calls and can run a hook in the middle of a read (to stage
 * the read/write race). Without HALE_TEST_REDIS_URL or hiredis it does not
 * run (ctest: Not Run) or, inside make test (HALE_REQUIRE_SERVICES=1),
 * fails: tests/unit/service_env.h.
 * Outages are made with CLIENT PAUSE (every command hangs: timeouts) and
 * with a URL to a closed port (connection refused). R: A7 Y5 */
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

#include "backends.h"
#include "service_env.h"
#include "cache.h"
#include "redis_pool.h"

#ifdef HALE_HAVE_HIREDIS

/* ---- a fake backend ---- */

#define FAKE_MAX 2048
typedef struct fake {
    kv_store base;
    pthread_mutex_t mu;
    struct { char key[32]; char val[64]; int64_t version; bool used; } e[FAKE_MAX];
    int64_t next;
    atomic_int gets, puts;
    void (*mid_get)(struct fake *f); /* runs after the value was read */
    void (*pre_submit)(struct fake *f); /* async path: before the write */
} fake;

static int find(fake *f, const char *k, size_t n) {
    for (int i = 0; i < FAKE_MAX; i++)
        if (f->e[i].used && strlen(f->e[i].key) == n && memcmp(f->e[i].key, k, n) == 0) return i;
    return -1;
}

static kv_status f_get(kv_store *s, const char *k, size_t n, kv_item *out) {
    fake *f = (fake *)s;
    atomic_fetch_add(&f->gets, 1);
    pthread_mutex_lock(&f->mu);
    int i = find(f, k, n);
    if (i >= 0) {
        out->value = strdup(f->e[i].val);
        out->len = strlen(f->e[i].val);
        snprintf(out->ctype, sizeof out->ctype, "text/plain");
        out->version = f->e[i].version;
    }
    pthread_mutex_unlock(&f->mu);
    if (f->mid_get) f->mid_get(f);
    return i >= 0 ? KV_OK : KV_NOT_FOUND;
}

static kv_status f_put(kv_store *s, const char *k, size_t n, const char *v, size_t vl, const char *ct,
                       const kv_cond *c, int64_t *ver, bool *created) {
    (void)ct;
    (void)c;
    fake *f = (fake *)s;
    atomic_fetch_add(&f->puts, 1);
    pthread_mutex_lock(&f->mu);
    int i = find(f, k, n);
    *created = i < 0;
    if (i < 0)
        for (i = 0; f->e[i].used; i++) {}
    f->e[i].used = true;
    snprintf(f->e[i].key, sizeof f->e[i].key, "%.*s", (int)n, k);
    snprintf(f->e[i].val, sizeof f->e[i].val, "%.*s", (int)vl, v);
    f->e[i].version = *ver = ++f->next;
    pthread_mutex_unlock(&f->mu);
    return KV_OK;
}

static kv_status f_del(kv_store *s, const char *k, size_t n, const kv_cond *c) {
    (void)c;
    fake *f = (fake *)s;
    pthread_mutex_lock(&f->mu);
    int i = find(f, k, n);
    if (i >= 0) f->e[i].used = false;
    pthread_mutex_unlock(&f->mu);
    return i >= 0 ? KV_OK : KV_NOT_FOUND;
}

static kv_status f_list(kv_store *s, const char *p, size_t pl, const char *a, size_t al, size_t lim, char ***keys,
                        size_t *n, bool *more) {
    (void)s; (void)p; (void)pl; (void)a; (void)al; (void)lim;
    *keys = NULL;
    *n = 0;
    *more = false;
    return KV_OK;
}

static int f_ping(kv_store *s, char *err, size_t errlen) {
    (void)s; (void)err; (void)errlen;
    return 0;
}

static void f_close(kv_store *s) {
    fake *f = (fake *)s;
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static const kv_store_ops FAKE_OPS = {
    .name = "fake", .get = f_get, .put = f_put, .del = f_del,
    .list = f_list, .ping = f_ping, .close = f_close,
};

/* The asynchronous entry: runs the hook, writes, then answers. */
static void f_submit(kv_store *s, kv_op *op) {
    fake *f = (fake *)s;
    if (f->pre_submit) f->pre_submit(f);
    kv_status st = op->kind == KV_OP_PUT
        ? f_put(s, op->key, op->klen, op->val, op->vlen, op->ctype, &op->cond, &op->version, &op->created)
        : f_del(s, op->key, op->klen, &op->cond);
    kv_op_finish(op, st);
}

static const kv_store_ops FAKE_ASYNC_OPS = {
    .name = "fake-async", .get = f_get, .put = f_put, .del = f_del,
    .list = f_list, .ping = f_ping, .close = f_close, .submit = f_submit,
};

static fake *fake_new(void) {
    fake *f = calloc(1, sizeof *f);
    f->base.ops = &FAKE_OPS;
    pthread_mutex_init(&f->mu, NULL);
    return f;
}

/* ---- Redis admin connection and helpers ---- */

static const char *redis_url;
static redisContext *admin;
static char ns[64];
static unsigned seq;

static redisReply *admin_cmd(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(admin, fmt, ap);
    va_end(ap);
    if (!r) fail_msg("redis admin: %s", admin->errstr);
    return r;
}

static int setup(void **st) {
    (void)st;
    snprintf(ns, sizeof ns, "ut%d_%u", (int)getpid(), seq++);
    return 0;
}

static kv_cache_opts opts(const char *url) {
    kv_cache_opts o = {.url = url, .pool_size = 4, .timeout_ms = 100, .breaker_failures = 2,
                       .breaker_open_ms = 200, .ttl_ms = 60000, .ns = ns};
    return o;
}

static kv_store *open_cache(fake *f, const char *url) {
    char err[256];
    kv_cache_opts o = opts(url);
    kv_store *c = kv_cache_open(&f->base, &o, err, sizeof err);
    if (!c) {
        fail_msg("open: %s", err);
        abort(); /* not reached: fail_msg does not return */
    }
    return c;
}


static void put(kv_store *c, const char *k, const char *v) {
    int64_t ver;
    bool cr;
    assert_int_equal(c->ops->put(c, k, strlen(k), v, strlen(v), "text/plain", NULL, &ver, &cr), KV_OK);
}

static void expect(kv_store *c, const char *k, const char *v) {
    kv_item it = {0};
    assert_int_equal(c->ops->get(c, k, strlen(k), &it), KV_OK);
    assert_string_equal(it.value, v);
    free(it.value);
}

static kv_cache_stats stats(kv_store *c) {
    kv_cache_stats s;
    kv_cache_get_stats(c, &s);
    return s;
}

static void test_read_through(void **st) {
    (void)st;
    fake *f = fake_new();
    kv_store *c = open_cache(f, redis_url);
    put(c, "k", "v1");
    expect(c, "k", "v1");                 /* miss: from the backend, then filled */
    assert_int_equal(atomic_load(&f->gets), 1);
    kv_item it = {0};
    assert_int_equal(c->ops->get(c, "k", 1, &it), KV_OK); /* hit */
    assert_int_equal(atomic_load(&f->gets), 1);
    assert_string_equal(it.ctype, "text/plain");
    assert_int_equal(it.version, 1);
    free(it.value);
    kv_item none = {0};
    assert_int_equal(c->ops->get(c, "absent", 6, &none), KV_NOT_FOUND);
    kv_cache_stats s = stats(c);
    assert_int_equal(s.hits, 1);
    assert_int_equal(s.misses, 2);
    assert_int_equal(s.fills, 1);
    assert_int_equal(s.errors, 0);
    char err[256];
    assert_int_equal(kv_cache_check(c, err, sizeof err), 0);
    kv_store_close(c);
}

/* A fresh cache whose first call is a read: the lease script's SHA is only
 * known once a connection loaded it (regression: it was read too early). */
static void test_first_call_is_a_read(void **st) {
    (void)st;
    fake *f = fake_new();
    int64_t v;
    bool cr;
    assert_int_equal(f_put(&f->base, "k", 1, "v", 1, "text/plain", NULL, &v, &cr), KV_OK);
    kv_store *c = open_cache(f, redis_url);
    expect(c, "k", "v");
    expect(c, "k", "v");
    kv_cache_stats s = stats(c);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.misses, 1);
    assert_int_equal(s.hits, 1);
    kv_store_close(c);
}

static void test_writes_invalidate(void **st) {
    (void)st;
    fake *f = fake_new();
    kv_store *c = open_cache(f, redis_url);
    put(c, "k", "old");
    expect(c, "k", "old");
    expect(c, "k", "old"); /* cached now */
    put(c, "k", "new");
    expect(c, "k", "new");
    assert_int_equal(c->ops->del(c, "k", 1, NULL), KV_OK);
    kv_item it = {0};
    assert_int_equal(c->ops->get(c, "k", 1, &it), KV_NOT_FOUND);
    kv_store_close(c);
}

/* The race a plain delete-after-write loses: a reader misses, reads OLD from
 * the backend, and before it stores OLD in the cache a writer writes NEW
 * and is acknowledged. The reader's fill must be refused. */
static kv_store *race_cache;
static void write_new_midway(fake *f) {
    f->mid_get = NULL;
    put(race_cache, "k", "new");
}

static void test_stale_fill_is_refused(void **st) {
    (void)st;
    fake *f = fake_new();
    kv_store *c = race_cache = open_cache(f, redis_url);
    put(c, "k", "old");
    f->mid_get = write_new_midway;
    expect(c, "k", "old");    /* the reader started before the write: old is fine */
    expect(c, "k", "new");    /* after the acknowledged write: never old */
    expect(c, "k", "new");    /* and now cached */
    kv_cache_stats s = stats(c);
    assert_int_equal(s.fill_conflicts, 1);
    assert_int_equal(s.hits, 1);
    kv_store_close(c);
}

/* The asynchronous path (kv_store_submit, as the API writes): a reader
 * that refills the old value while the write is on its way (after the
 * first delete, before the backend's commit) is cleaned up by the delete
 * in the completion path, before the writer's own callback runs. */
static kv_store *async_cache;
static char seen[64];
static void read_midway(fake *f) {
    f->pre_submit = NULL;
    kv_item it = {0};
    if (async_cache->ops->get(async_cache, "k", 1, &it) == KV_OK) /* fills the cache with "old" */
        snprintf(seen, sizeof seen, "refilled:%s", it.value);
    free(it.value);
}

static void read_in_done(kv_op *op) {
    kv_item it = {0};
    kv_status st = async_cache->ops->get(async_cache, "k", 1, &it);
    snprintf(seen, sizeof seen, "%s", st == KV_OK ? it.value : st == KV_NOT_FOUND ? "(none)" : "(error)");
    free(it.value);
    atomic_store((atomic_int *)op->arg, (int)op->st + 100);
    kv_op_free(op);
}

/* The completion runs on another thread: wait for it (liveness bound). */
static kv_status wait_done(atomic_int *res) {
    for (int i = 0; i < 10000 && !atomic_load(res); i++) usleep(1000);
    int v = atomic_exchange(res, 0);
    return v ? (kv_status)(v - 100) : KV_ERROR;
}

static void test_async_writes_invalidate_before_answering(void **st) {
    (void)st;
    fake *f = fake_new();
    f->base.ops = &FAKE_ASYNC_OPS;
    kv_store *c = async_cache = open_cache(f, redis_url);
    put(c, "k", "old");
    expect(c, "k", "old");
    f->pre_submit = read_midway;
    atomic_int res = 0;
    kv_store_submit(c, kv_op_new_put("k", 1, "new", 3, "text/plain", NULL, read_in_done, &res));
    assert_int_equal(wait_done(&res), KV_OK);
    assert_string_equal(seen, "new"); /* never the refilled "old" */
    expect(c, "k", "new");
    f->pre_submit = read_midway;
    kv_store_submit(c, kv_op_new_del("k", 1, NULL, read_in_done, &res));
    assert_int_equal(wait_done(&res), KV_OK);
    assert_string_equal(seen, "(none)");
    kv_store_close(c);
}

static void test_refused_connection_opens_breaker(void **st) {
    (void)st;
    fake *f = fake_new();
    kv_store *c = open_cache(f, "redis://:hunter2@127.0.0.1:1/0");
    put(c, "k", "v");
    for (int i = 0; i < 5; i++) expect(c, "k", "v"); /* the backend answers */
    kv_cache_stats s = stats(c);
    assert_int_equal(s.breaker_state, 1);
    assert_int_equal(s.errors, 2);                 /* then Redis was left alone */
    assert_true(s.bypassed >= 3);
    assert_int_equal(s.pending, 1);                /* the write's delete waits */
    char err[256];
    assert_int_equal(kv_cache_check(c, err, sizeof err), -1);
    assert_non_null(strstr(err, "circuit breaker open"));
    assert_null(strstr(err, "hunter2"));
    kv_store_close(c);
}

static void test_wrong_password(void **st) {
    (void)st;
    kv_redis_addr a;
    char err[256];
    assert_int_equal(kv_redis_parse_url(redis_url, &a, err, sizeof err), 0);
    char bad[512];
    snprintf(bad, sizeof bad, "redis://:wr0ngpass@%s:%u/0", a.host, a.port);
    fake *f = fake_new();
    kv_store *c = open_cache(f, bad);
    put(c, "k", "v");
    expect(c, "k", "v");
    assert_int_equal(kv_cache_check(c, err, sizeof err), -1);
    assert_null(strstr(err, "wr0ngpass"));
    kv_store_close(c);
}

/* Redis hangs (CLIENT PAUSE): calls time out, the breaker opens, reads and
 * writes keep working from the backend and stay bounded in time; a cached
 * OLD entry is not served after Redis returns, because the write's delete
 * is replayed (by the readiness check here) before the cache is used. */
static void test_hang_then_recovery_replays_deletes(void **st) {
    (void)st;
    fake *f = fake_new();
    kv_store *c = open_cache(f, redis_url);
    put(c, "k", "old");
    expect(c, "k", "old");
    expect(c, "k", "old"); /* cached */
    freeReplyObject(admin_cmd("CLIENT PAUSE 800 ALL"));
    uint64_t t0 = hale_now_ns();
    put(c, "k", "new");    /* both deletes time out: breaker opens */
    uint64_t put_ms = (hale_now_ns() - t0) / 1000000u;
    assert_true(put_ms < 2 * 100 + 150);
    kv_cache_stats s = stats(c);
    assert_int_equal(s.breaker_state, 1);
    assert_int_equal(s.pending, 1);
    t0 = hale_now_ns();
    expect(c, "k", "new"); /* bypass: straight to the backend */
    assert_true(hale_now_ns() - t0 < 20000000u);
    usleep(1000000);       /* the pause ends; the breaker is due a probe */
    char err[256];
    assert_int_equal(kv_cache_check(c, err, sizeof err), 0);
    s = stats(c);
    assert_int_equal(s.breaker_state, 0);
    assert_int_equal(s.pending, 0);
    expect(c, "k", "new");
    expect(c, "k", "new");
    assert_true(stats(c).hits >= 1);
    kv_store_close(c);
}

/* More remembered deletes than PENDING_MAX: the whole namespace is purged
 * on recovery, so no entry cached before the outage survives it. */
static void test_pending_overflow_purges_namespace(void **st) {
    (void)st;
    fake *f = fake_new();
    kv_store *c = open_cache(f, redis_url);
    char k[32], v[32];
    for (int i = 0; i < 5; i++) {
        snprintf(k, sizeof k, "key%d", i);
        put(c, k, "old");
        expect(c, k, "old");
    }
    freeReplyObject(admin_cmd("CLIENT PAUSE 600 ALL"));
    for (int i = 0; i < 1100; i++) {
        snprintf(k, sizeof k, "key%d", i % 1100);
        snprintf(v, sizeof v, "new%d", i);
        put(c, k, v);
    }
    kv_cache_stats s = stats(c);
    assert_true(s.purge_pending);
    usleep(800000);
    char err[256];
    assert_int_equal(kv_cache_check(c, err, sizeof err), 0);
    s = stats(c);
    assert_false(s.purge_pending);
    for (int i = 0; i < 5; i++) {
        snprintf(k, sizeof k, "key%d", i);
        snprintf(v, sizeof v, "new%d", i);
        expect(c, k, v);
    }
    redisReply *r = admin_cmd("KEYS hale:%s:kv:*", ns);
    assert_true(r->elements <= 5); /* only what was filled after the purge */
    freeReplyObject(r);
    kv_store_close(c);
}

/* The entry expires with its TTL. */
static void test_ttl_is_set(void **st) {
    (void)st;
    fake *f = fake_new();
    kv_store *c = open_cache(f, redis_url);
    put(c, "k", "v");
    expect(c, "k", "v");
    redisReply *r = admin_cmd("PTTL hale:%s:kv:k", ns);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_true(r->integer > 0 && r->integer <= 60000);
    freeReplyObject(r);
    kv_store_close(c);
}

/* Many threads reading and writing one key through one cache: every read
 * that starts after a write was acknowledged sees that write or a later
 * one (each writer checks its own write right after the ack). */
static kv_store *mt_cache;
static atomic_int stale;
static void *mt_writer(void *arg) {
    int id = (int)(intptr_t)arg;
    char v[32];
    for (int i = 0; i < 150; i++) {
        snprintf(v, sizeof v, "%d-%05d", id, i);
        put(mt_cache, "hot", v);
        kv_item it = {0};
        if (mt_cache->ops->get(mt_cache, "hot", 3, &it) == KV_OK) {
            /* another writer may have written since: only our older
             * values would be stale */
            if (strncmp(it.value, v, 2) == 0 && strcmp(it.value, v) < 0) atomic_fetch_add(&stale, 1);
            free(it.value);
        }
    }
    return NULL;
}
static void *mt_reader(void *arg) {
    (void)arg;
    for (int i = 0; i < 300; i++) {
        kv_item it = {0};
        if (mt_cache->ops->get(mt_cache, "hot", 3, &it) == KV_OK) free(it.value);
    }
    return NULL;
}

static void test_concurrent_readers_and_writers(void **st) {
    (void)st;
    fake *f = fake_new();
    mt_cache = open_cache(f, redis_url);
    put(mt_cache, "hot", "0-00000");
    pthread_t t[6];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, mt_writer, (void *)(intptr_t)(i + 1));
    for (int i = 3; i < 6; i++) pthread_create(&t[i], NULL, mt_reader, NULL);
    for (int i = 0; i < 6; i++) pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&stale), 0);
    kv_cache_stats s = stats(mt_cache);
    assert_int_equal(s.errors, 0);
    assert_true(s.hits > 0);
    kv_store_close(mt_cache);
}

static void test_metrics_registered(void **st) {
    (void)st;
    fake *f = fake_new();
    kv_store *c = open_cache(f, redis_url);
    hale_metrics *reg = hale_metrics_new();
    kv_cache_register_metrics(c, reg);
    put(c, "k", "v");
    expect(c, "k", "v");
    expect(c, "k", "v");
    hale_buf out;
    hale_buf_init(&out);
    hale_metrics_render(reg, &out);
    assert_non_null(strstr(out.data, "hale_cache_hits_total 1"));
    assert_non_null(strstr(out.data, "hale_cache_misses_total 1"));
    assert_non_null(strstr(out.data, "hale_cache_errors_total 0"));
    assert_non_null(strstr(out.data, "hale_cache_breaker_state 0"));
    assert_non_null(strstr(out.data, "hale_redis_pool_max_connections 4"));
    assert_non_null(strstr(out.data, "hale_redis_command_duration_seconds_count"));
    hale_buf_free(&out);
    hale_metrics_free(reg);
    kv_store_close(c);
}

int main(void) {
    redis_url = service_env_url("HALE_TEST_REDIS_URL");
    if (!redis_url) return service_env_missing("HALE_TEST_REDIS_URL is unset");
    {
        kv_redis_addr a;
        char err[256];
        if (kv_redis_parse_url(redis_url, &a, err, sizeof err) != 0) {
            fprintf(stderr, "HALE_TEST_REDIS_URL: %s\n", err);
            return 1;
        }
        admin = redisConnect(a.host, (int)a.port);
        if (!admin || admin->err) {
            fprintf(stderr, "HALE_TEST_REDIS_URL is set but Redis is unreachable\n");
            return 1;
        }
        if (a.pass[0]) freeReplyObject(redisCommand(admin, "AUTH %s", a.pass));
        if (a.db) freeReplyObject(redisCommand(admin, "SELECT %u", a.db));
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_read_through, setup),
        cmocka_unit_test_setup(test_first_call_is_a_read, setup),
        cmocka_unit_test_setup(test_writes_invalidate, setup),
        cmocka_unit_test_setup(test_stale_fill_is_refused, setup),
        cmocka_unit_test_setup(test_async_writes_invalidate_before_answering, setup),
        cmocka_unit_test_setup(test_refused_connection_opens_breaker, setup),
        cmocka_unit_test_setup(test_wrong_password, setup),
        cmocka_unit_test_setup(test_hang_then_recovery_replays_deletes, setup),
        cmocka_unit_test_setup(test_pending_overflow_purges_namespace, setup),
        cmocka_unit_test_setup(test_ttl_is_set, setup),
        cmocka_unit_test_setup(test_concurrent_readers_and_writers, setup),
        cmocka_unit_test_setup(test_metrics_registered, setup),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (admin) redisFree(admin);
    return rc;
}

#else
int main(void) { return service_env_missing("built without hiredis"); }
#endif
