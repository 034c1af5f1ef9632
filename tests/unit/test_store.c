/* The SQLite store (R: A1 A2 A3 A4 A6). */
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

#include "store_sqlite.h"

static char dir[64];
static char path[128];

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/hale-store-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(path, sizeof path, "%s/sub/dir/hale.db", dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static kv_store *open_store(void) {
    char err[256];
    kv_store *s = kv_sqlite_open(path, err, sizeof err);
    if (!s) fail_msg("open: %s", err);
    return s;
}

static kv_status put(kv_store *s, const char *k, const char *v, const kv_cond *c, int64_t *ver, bool *created) {
    int64_t dv;
    bool dc;
    return s->ops->put(s, k, strlen(k), v, strlen(v), "text/plain", c, ver ? ver : &dv, created ? created : &dc);
}

typedef struct {
    kv_store *s;
    int id;
    int64_t versions[200];
} worker;

static void *writer(void *arg) {
    worker *w = arg;
    char key[32];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "w%d-%d", w->id, i);
        bool c;
        if (w->s->ops->put(w->s, key, strlen(key), key, strlen(key), "t", NULL, &w->versions[i], &c) != KV_OK)
            w->versions[i] = -1;
    }
    return NULL;
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* R: A6: concurrent writers share commits; every write is applied once and
 * gets a distinct version. */
static void test_group_commit_concurrency(void **state) {
    (void)state;
    kv_store *s = open_store();
    enum { N = 8 };
    worker w[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        w[i].s = s;
        w[i].id = i;
        pthread_create(&t[i], NULL, writer, &w[i]);
    }
    int64_t *all = calloc(N * 200, sizeof *all);
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        memcpy(all + i * 200, w[i].versions, sizeof w[i].versions);
    }
    qsort(all, N * 200, sizeof *all, cmp64);
    assert_true(all[0] > 0);
    for (int i = 1; i < N * 200; i++) assert_true(all[i] > all[i - 1]);
    free(all);
    kv_store_close(s);
    s = open_store();
    kv_item it;
    assert_int_equal(s->ops->get(s, "w7-199", 6, &it), KV_OK);
    free(it.value);
    kv_store_close(s);
}

/* R: L2: an unusable path fails with a reason, no crash. */
static void test_open_failure(void **state) {
    (void)state;
    char err[256] = "";
    char bad[160];
    snprintf(bad, sizeof bad, "%s/file", dir);
    FILE *f = fopen(bad, "w");
    fclose(f);
    snprintf(bad, sizeof bad, "%s/file/hale.db", dir);
    assert_null(kv_sqlite_open(bad, err, sizeof err));
    assert_non_null(strstr(err, "sqlite"));
}

/* R: Y1 - a read never fails for want of a reader connection, whatever the
 * number of threads that read (the store once allowed 256, and workers +
 * check thread + main thread needed more: 503). 280 threads read at once,
 * held together by a barrier, then 280 more one after the other. */
typedef struct many_ctx {
    kv_store *s;
    pthread_barrier_t *bar;
    kv_status st;
} many_ctx;

static void *many_reader(void *arg) {
    many_ctx *c = arg;
    kv_item it;
    memset(&it, 0, sizeof it);
    if (c->bar) pthread_barrier_wait(c->bar);
    c->st = c->s->ops->get(c->s, "k", 1, &it);
    free(it.value);
    if (c->bar) pthread_barrier_wait(c->bar);
    return NULL;
}

static void test_reads_never_run_out_of_connections(void **state) {
    (void)state;
    kv_store *s = open_store();
    int64_t v;
    bool created;
    assert_int_equal(put(s, "k", "v", NULL, &v, &created), KV_OK);
    enum { N = 280 };
    static pthread_t th[N];
    static many_ctx ctx[N];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, N);
    for (int i = 0; i < N; i++) {
        ctx[i] = (many_ctx){.s = s, .bar = &bar, .st = KV_ERROR};
        assert_int_equal(pthread_create(&th[i], NULL, many_reader, &ctx[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ctx[i].st, KV_OK);
    }
    pthread_barrier_destroy(&bar);
    for (int i = 0; i < N; i++) {
        ctx[i] = (many_ctx){.s = s, .bar = NULL, .st = KV_ERROR};
        assert_int_equal(pthread_create(&th[i], NULL, many_reader, &ctx[i]), 0);
        pthread_join(th[i], NULL);
        assert_int_equal(ctx[i].st, KV_OK);
    }
    kv_store_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_group_commit_concurrency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_never_run_out_of_connections, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
