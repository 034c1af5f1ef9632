/* cache_redis_rw: reads through the cache (lease, fill) and writes around
 * it (a delete before and after each write, the second one in the
 * completion path of asynchronous writes). See cache_redis.c for why. */
#ifdef HALE_HAVE_HIREDIS

#include "cache_redis_int.h"

#include <endian.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- entries: version (8 bytes BE), ctype length (1), [mtime], ctype, value
 * The ctype length is < 128; its top bit says that the write time (8 bytes
 * BE, ms) follows. Entries of the previous format (no bit, no time) still
 * decode (mtime unknown); a previous hale fails to decode a new entry and
 * reads the backend, so a rolling update serves nothing wrong. ---- */

#define ENTRY_HAS_MTIME 0x80u

static void encode(const kv_item *it, hale_buf *out) {
    hale_buf_init(out);
    uint64_t v = htobe64((uint64_t)it->version), m = htobe64((uint64_t)it->mtime_ms);
    size_t cl = strlen(it->ctype);
    unsigned char cl8 = (unsigned char)(cl | ENTRY_HAS_MTIME); /* ctype < 128 bytes (kv_item) */
    hale_buf_append(out, &v, 8);
    hale_buf_append(out, &cl8, 1);
    hale_buf_append(out, &m, 8);
    hale_buf_append(out, it->ctype, cl);
    hale_buf_append(out, it->value, it->len);
}

static bool decode(const char *p, size_t n, kv_item *out) {
    if (n < 9) return false;
    unsigned cl8 = (unsigned char)p[8];
    size_t cl = cl8 & ~ENTRY_HAS_MTIME, head = cl8 & ENTRY_HAS_MTIME ? 17 : 9;
    if (cl >= sizeof out->ctype || n < head + cl) return false;
    uint64_t v, m = 0;
    memcpy(&v, p, 8);
    if (head == 17) memcpy(&m, p + 9, 8);
    out->version = (int64_t)be64toh(v);
    out->mtime_ms = (int64_t)be64toh(m);
    memcpy(out->ctype, p + head, cl);
    out->ctype[cl] = '\0';
    out->len = n - head - cl;
    out->value = xmalloc(out->len + 1);
    memcpy(out->value, p + head + cl, out->len);
    out->value[out->len] = '\0';
    return true;
}

/* ---- the store ---- */

kv_status kvc_get(kv_store *base, const char *key, size_t klen, kv_item *out) {
    cache *c = (cache *)base;
    hale_buf rk;
    kvc_redis_key(c, key, klen, &rk);
    char token[TOKEN_MAX + 1];
    size_t toklen = 0;
    bool leased = false;
    if (kvc_usable(c)) {
        char mine[40];
        snprintf(mine, sizeof mine, "%016" PRIx64 "%016" PRIx64, c->token_seed,
                 atomic_fetch_add(&c->token_seq, 1));
        const char *argv[] = {"EVALSHA", NULL, "1", rk.data, mine, c->ttl};
        size_t lens[] = {7, 0, 1, rk.len, strlen(mine), strlen(c->ttl)};
        redisReply *r;
        rrc rc = kvc_run(c, SC_LEASE, 6, argv, lens, &r);
        if (rc == RC_OK) {
            bool shape = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                         r->element[0]->type == REDIS_REPLY_INTEGER &&
                         r->element[1]->type == REDIS_REPLY_STRING;
            if (shape && r->element[0]->integer == 1 && decode(r->element[1]->str, r->element[1]->len, out)) {
                atomic_fetch_add(&c->hits, 1);
                freeReplyObject(r);
                hale_buf_free(&rk);
                return KV_OK;
            }
            if (shape && r->element[0]->integer == 0 && r->element[1]->len <= TOKEN_MAX) {
                toklen = r->element[1]->len;
                memcpy(token, r->element[1]->str, toklen);
                token[toklen] = '\0';
                leased = true;
                atomic_fetch_add(&c->misses, 1);
            } else {
                atomic_fetch_add(&c->errors, 1); /* not ours, or corrupt: leave it to the TTL */
            }
            freeReplyObject(r);
        } else if (rc == RC_BUSY) {
            atomic_fetch_add(&c->bypassed, 1);
        }
    } else {
        atomic_fetch_add(&c->bypassed, 1);
    }
    kv_status st = c->backend->ops->get(c->backend, key, klen, out);
    if (st == KV_OK && leased && out->len <= c->max_value && hale_breaker_allow(&c->brk)) {
        hale_buf ent;
        encode(out, &ent);
        const char *argv[] = {"EVALSHA", NULL, "1", rk.data, token, ent.data, c->ttl};
        size_t lens[] = {7, 0, 1, rk.len, toklen, ent.len, strlen(c->ttl)};
        redisReply *r;
        if (kvc_run(c, SC_FILL, 7, argv, lens, &r) == RC_OK) {
            if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) atomic_fetch_add(&c->fills, 1);
            else atomic_fetch_add(&c->fill_conflicts, 1);
            freeReplyObject(r);
        }
        hale_buf_free(&ent);
    }
    hale_buf_free(&rk);
    return st;
}

/* The backend may have changed the key unless it said it did not. */
static bool may_have_changed(kv_status st) { return st != KV_PRECONDITION && st != KV_NOT_FOUND; }

static void after_write(cache *c, const hale_buf *rk, const char *key, size_t klen) {
    if (kvc_invalidate(c, rk)) return;
    atomic_fetch_add(&c->inval_fail, 1);
    kvc_pending_add(c, key, klen);
}

kv_status kvc_put(kv_store *base, const char *key, size_t klen, const char *val, size_t vlen,
                       const char *ctype, const kv_cond *cond, int64_t *version, bool *created) {
    cache *c = (cache *)base;
    hale_buf rk;
    kvc_redis_key(c, key, klen, &rk);
    kvc_invalidate(c, &rk);
    kv_status st = c->backend->ops->put(c->backend, key, klen, val, vlen, ctype, cond, version, created);
    if (may_have_changed(st)) after_write(c, &rk, key, klen);
    hale_buf_free(&rk);
    return st;
}

kv_status kvc_del(kv_store *base, const char *key, size_t klen, const kv_cond *cond) {
    cache *c = (cache *)base;
    hale_buf rk;
    kvc_redis_key(c, key, klen, &rk);
    kvc_invalidate(c, &rk);
    kv_status st = c->backend->ops->del(c->backend, key, klen, cond);
    if (may_have_changed(st)) after_write(c, &rk, key, klen);
    hale_buf_free(&rk);
    return st;
}

/* A write forwarded to the backend's submit, with the same invalidation as
 * c_put/c_del: the first delete, then the backend's write, then the second
 * delete in the completion path, before the caller's done runs (so the
 * client is answered only once the cache is clean or the delete is
 * remembered for replay). The Redis calls run on the cache's own
 * completion threads, never on an HTTP worker or the store's writer. */
typedef struct c_write {
    cache *c;
    hale_buf rk;
    bool written;                 /* the backend has answered */
    void (*done)(kv_op *);
    void *arg;
} c_write;

static void c_write_finish(kv_op *op) {
    c_write *w = op->arg;
    if (may_have_changed(op->st)) after_write(w->c, &w->rk, op->key, op->klen);
    op->done = w->done;
    op->arg = w->arg;
    hale_buf_free(&w->rk);
    free(w);
    op->done(op);
}

void kvc_write_step(void *ctx, kv_op *op) {
    (void)ctx;
    c_write *w = op->arg;
    if (w->written) {
        c_write_finish(op);
        return;
    }
    kvc_invalidate(w->c, &w->rk);
    kv_store_submit(w->c->backend, op);
}

/* On the backend's thread: the second delete goes to the completion
 * threads (inline only when their queue is full: never skipped). */
static void c_write_done(kv_op *op) {
    c_write *w = op->arg;
    w->written = true;
    if (!kv_async_try_submit(w->c->async, op)) c_write_finish(op);
}

void kvc_submit(kv_store *base, kv_op *op) {
    cache *c = (cache *)base;
    c_write *w = xcalloc(1, sizeof *w);
    w->c = c;
    w->done = op->done;
    w->arg = op->arg;
    kvc_redis_key(c, op->key, op->klen, &w->rk);
    op->done = c_write_done;
    op->arg = w;
    if (kv_async_try_submit(c->async, op)) return;
    /* full: nothing was written, answer at once */
    op->done = w->done;
    op->arg = w->arg;
    hale_buf_free(&w->rk);
    free(w);
    kv_op_finish(op, KV_UNAVAILABLE);
}

#endif
