/* redis_pool: see redis_pool.h. */
#ifdef HALE_HAVE_HIREDIS

#include "redis_pool.h"

#include "url_check.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* ---- URL ---- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out (cap bytes, NUL-terminated). */
static int decode(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n) return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (ch == '\0' || o + 1 >= cap) return -1;
        out[o++] = ch;
    }
    out[o] = '\0';
    return 0;
}

static int parse_uint(const char *s, size_t n, unsigned lo, unsigned hi, unsigned *out) {
    if (n == 0 || n > 5) return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int kv_redis_parse_url(const char *url, kv_redis_addr *a, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    a->port = 6379;
    if (!url) return hale_err(err, errlen, "redis: no URL");
    if (strncmp(url, "rediss://", 9) == 0)
        return hale_err(err, errlen, "redis: rediss:// (TLS) is not supported by this build");
    if (strncmp(url, "redis://", 8) != 0)
        return hale_err(err, errlen, "redis: the URL must start with redis://");
    const char *p = url + 8;
    size_t alen = strcspn(p, "/?#");
    const char *end = p + alen;
    /* userinfo: up to the last '@' of the authority */
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@') at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (decode(p, (size_t)(colon - p), a->user, sizeof a->user) != 0 ||
                decode(colon + 1, (size_t)(at - colon - 1), a->pass, sizeof a->pass) != 0)
                return hale_err(err, errlen, "redis: bad user or password encoding in the URL");
        } else if (decode(p, (size_t)(at - p), a->user, sizeof a->user) != 0) {
            return hale_err(err, errlen, "redis: bad user encoding in the URL");
        }
        p = at + 1;
    }
    const char *hend, *port = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb) return hale_err(err, errlen, "redis: unterminated [ in the URL host");
        if ((size_t)(rb - p - 1) >= sizeof a->host) return hale_err(err, errlen, "redis: host too long");
        memcpy(a->host, p + 1, (size_t)(rb - p - 1));
        hend = rb + 1;
        if (hend < end && *hend != ':') return hale_err(err, errlen, "redis: junk after the URL host");
        if (hend < end) port = hend + 1;
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        hend = colon ? colon : end;
        if ((size_t)(hend - p) >= sizeof a->host) return hale_err(err, errlen, "redis: host too long");
        memcpy(a->host, p, (size_t)(hend - p));
        if (colon) port = colon + 1;
    }
    if (!a->host[0]) return hale_err(err, errlen, "redis: the URL has no host");
    if (port && parse_uint(port, (size_t)(end - port), 1, 65535, &a->port) != 0)
        return hale_err(err, errlen, "redis: the URL port is not a number from 1 to 65535");
    if (*end == '/') {
        const char *d = end + 1;
        size_t dlen = strcspn(d, "?#");
        if (dlen && parse_uint(d, dlen, 0, 65535, &a->db) != 0)
            return hale_err(err, errlen, "redis: the URL path must be a database number");
    }
    return 0;
}

/* ---- commands ---- */

redisReply *kv_redis_cmd(redisContext *c, int argc, const char **argv, const size_t *lens, bool *broken,
                         char *err, size_t errlen) {
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    if (!r) {
        *broken = true;
        bool tmo = c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
        hale_err(err, errlen, "redis: %s", tmo ? "no answer within the timeout" : c->errstr);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOSCRIPT", 8) == 0) *broken = true;
        hale_err(err, errlen, "redis: %.200s", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* Runs a setup command and expects no error reply. */
static int setup_cmd(redisContext *c, int argc, const char **argv, char *err, size_t errlen,
                     redisReply **keep) {
    size_t lens[4];
    for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    bool broken = false;
    redisReply *r = kv_redis_cmd(c, argc, argv, lens, &broken, err, errlen);
    if (!r) return -1;
    if (keep) *keep = r;
    else freeReplyObject(r);
    return 0;
}

static redisContext *connect_one(kv_redis_pool *p, char *err, size_t errlen) {
    struct timeval tv = {.tv_sec = p->timeout_ms / 1000, .tv_usec = (suseconds_t)(p->timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(p->addr.host, (int)p->addr.port, tv);
    if (!c) {
        hale_err(err, errlen, "redis: out of memory");
        return NULL;
    }
    if (c->err) {
        hale_err(err, errlen, "redis: connect to %s:%u: %s", p->addr.host, p->addr.port, c->errstr);
        goto fail;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        hale_err(err, errlen, "redis: cannot set socket timeouts");
        goto fail;
    }
    redisEnableKeepAlive(c);
    if (p->addr.pass[0] || p->addr.user[0]) {
        const char *argv[3] = {"AUTH", p->addr.user, p->addr.pass};
        int rc = p->addr.user[0] ? setup_cmd(c, 3, argv, err, errlen, NULL)
                                 : setup_cmd(c, 2, (const char *[]){"AUTH", p->addr.pass}, err, errlen, NULL);
        if (rc != 0) goto fail; /* the reply names no password */
    }
    if (p->addr.db) {
        char db[12];
        snprintf(db, sizeof db, "%u", p->addr.db);
        if (setup_cmd(c, 2, (const char *[]){"SELECT", db}, err, errlen, NULL) != 0) goto fail;
    }
    for (size_t i = 0; i < p->nscripts; i++) {
        redisReply *r = NULL;
        if (setup_cmd(c, 3, (const char *[]){"SCRIPT", "LOAD", p->scripts[i]}, err, errlen, &r) != 0)
            goto fail;
        bool ok = r->type == REDIS_REPLY_STRING && r->len == 40;
        if (ok) {
            pthread_mutex_lock(&p->mu);
            if (!p->sha[i][0]) memcpy(p->sha[i], r->str, 41);
            pthread_mutex_unlock(&p->mu);
        }
        freeReplyObject(r);
        if (!ok) {
            hale_err(err, errlen, "redis: unexpected answer to SCRIPT LOAD");
            goto fail;
        }
    }
    return c;
fail:
    /* Y7: whatever hiredis or the server said, never the credentials */
    app_scrub(err, errlen, p->addr.pass, strlen(p->addr.pass));
    redisFree(c);
    return NULL;
}

/* ---- pool ---- */

void kv_redis_pool_init(kv_redis_pool *p, const kv_redis_addr *a, unsigned size, unsigned timeout_ms,
                        const char *const *scripts, size_t nscripts) {
    memset(p, 0, sizeof *p);
    HALE_ASSERT(size >= 1 && nscripts <= KV_REDIS_MAX_SCRIPTS);
    p->addr = *a;
    p->size = size;
    p->timeout_ms = timeout_ms ? timeout_ms : 1;
    for (size_t i = 0; i < nscripts; i++) p->scripts[i] = scripts[i];
    p->nscripts = nscripts;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->ctx = xcalloc(size, sizeof(redisContext *));
    p->free = xcalloc(size, sizeof *p->free);
    for (unsigned i = 0; i < size; i++) p->free[i] = size - 1 - i;
    p->nfree = size;
}

void kv_redis_pool_destroy(kv_redis_pool *p) {
    HALE_ASSERT(p->nfree == p->size);
    for (unsigned i = 0; i < p->size; i++)
        if (p->ctx[i]) redisFree(p->ctx[i]);
    free(p->ctx);
    free(p->free);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    explicit_bzero(&p->addr, sizeof p->addr);
}

static bool idle_ok(redisContext *c) {
    if (c->err) return false;
    struct pollfd pf = {.fd = c->fd, .events = POLLIN};
    /* nothing may arrive on an idle connection but EOF or an error */
    return poll(&pf, 1, 0) == 0;
}

static void drop(kv_redis_pool *p, unsigned slot) {
    redisFree(p->ctx[slot]);
    p->ctx[slot] = NULL;
    atomic_fetch_sub(&p->open, 1);
}

kv_redis_rc kv_redis_acquire(kv_redis_pool *p, kv_redis_lease *l, char *err, size_t errlen) {
    uint64_t dl = hale_now_ns() + (uint64_t)p->timeout_ms * 1000000u;
    pthread_mutex_lock(&p->mu);
    while (p->nfree == 0) {
        struct timespec ts = {.tv_sec = (time_t)(dl / 1000000000u), .tv_nsec = (long)(dl % 1000000000u)};
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT && p->nfree == 0) {
            pthread_mutex_unlock(&p->mu);
            atomic_fetch_add(&p->busy, 1);
            hale_err(err, errlen, "redis: all %u connections busy", p->size);
            return KV_REDIS_BUSY;
        }
    }
    unsigned slot = p->free[--p->nfree];
    pthread_mutex_unlock(&p->mu);
    atomic_fetch_add(&p->in_use, 1);
    l->slot = slot;
    if (p->ctx[slot] && !idle_ok(p->ctx[slot])) drop(p, slot);
    if (!p->ctx[slot]) {
        redisContext *c = connect_one(p, err, errlen);
        if (!c) {
            atomic_fetch_add(&p->connect_failures, 1);
            l->c = NULL;
            kv_redis_release(p, l, false);
            return KV_REDIS_DOWN;
        }
        atomic_fetch_add(&p->connects, 1);
        atomic_fetch_add(&p->open, 1);
        p->ctx[slot] = c;
    }
    l->c = p->ctx[slot];
    return KV_REDIS_OK;
}

void kv_redis_release(kv_redis_pool *p, kv_redis_lease *l, bool broken) {
    if (broken && p->ctx[l->slot]) drop(p, l->slot);
    atomic_fetch_sub(&p->in_use, 1);
    pthread_mutex_lock(&p->mu);
    HALE_ASSERT(p->nfree < p->size);
    if (p->ctx[l->slot]) {
        p->free[p->nfree++] = l->slot;
    } else {
        memmove(p->free + 1, p->free, p->nfree * sizeof *p->free);
        p->free[0] = l->slot;
        p->nfree++;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    l->c = NULL;
}

#endif /* HALE_HAVE_HIREDIS */
