/* store_op: the owned write op of store.h and the generic helpers over the
 * vtable (submit with a blocking fallback, run = submit and wait). */
#include "store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static kv_op *op_new(kv_op_kind kind, const char *key, size_t klen, const kv_cond *c,
                     void (*done)(kv_op *), void *arg) {
    kv_op *op = xcalloc(1, sizeof *op);
    op->kind = kind;
    op->key = xmalloc(klen + 1);
    if (klen) memcpy(op->key, key, klen);
    op->key[klen] = '\0';
    op->klen = klen;
    if (c) op->cond = *c;
    op->submit_ns = hale_now_ns();
    op->st = KV_ERROR;
    op->done = done;
    op->arg = arg;
    return op;
}

kv_op *kv_op_new_put(const char *key, size_t klen, const char *val, size_t vlen, const char *ctype,
                     const kv_cond *c, void (*done)(kv_op *), void *arg) {
    kv_op *op = op_new(KV_OP_PUT, key, klen, c, done, arg);
    op->val = xmalloc(vlen + 1);
    if (vlen) memcpy(op->val, val, vlen);
    op->val[vlen] = '\0';
    op->vlen = vlen;
    snprintf(op->ctype, sizeof op->ctype, "%s", ctype ? ctype : "application/octet-stream");
    return op;
}

kv_op *kv_op_new_del(const char *key, size_t klen, const kv_cond *c, void (*done)(kv_op *), void *arg) {
    return op_new(KV_OP_DEL, key, klen, c, done, arg);
}

void kv_op_free(kv_op *op) {
    if (!op) return;
    free(op->key);
    free(op->val);
    free(op);
}

void kv_op_finish(kv_op *op, kv_status st) {
    op->st = st;
    op->done(op);
}

void kv_store_submit(kv_store *s, kv_op *op) {
    if (s->ops->submit) {
        s->ops->submit(s, op);
        return;
    }
    kv_status st;
    if (op->kind == KV_OP_PUT)
        st = s->ops->put(s, op->key, op->klen, op->val, op->vlen, op->ctype, &op->cond, &op->version,
                         &op->created);
    else
        st = s->ops->del(s, op->key, op->klen, &op->cond);
    kv_op_finish(op, st);
}

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} waiter;

static void wake(kv_op *op) {
    waiter *w = op->arg;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

kv_status kv_store_run(kv_store *s, kv_op *op) {
    waiter w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    op->done = wake;
    /* w outlives the op's use of it: we wait for done below */
    // cppcheck-suppress autoVariables
    op->arg = &w;
    kv_store_submit(s, op);
    pthread_mutex_lock(&w.mu);
    while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    op->done = NULL;
    op->arg = NULL;
    return op->st;
}
