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
            pthread_mutex_lock(&p->sha_mu);
            if (!p->sha[i][0]) memcpy(p->sha[i], r->str, 41);
            pthread_mutex_unlock(&p->sha_mu);
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

/* ---- pool (hale_pool of redisContext) ---- */

typedef struct open_ctx { char *err; size_t errlen; } open_ctx;

static void *pool_open(void *arg, uint64_t deadline_ns, void *ctx) {
    (void)deadline_ns; /* hiredis bounds the connect by timeout_ms itself */
    open_ctx *o = ctx;
    return connect_one(arg, o->err, o->errlen);
}

static bool pool_idle_ok(void *conn, void *arg) {
    (void)arg;
    redisContext *c = conn;
    if (c->err) return false;
    struct pollfd pf = {.fd = c->fd, .events = POLLIN};
    /* nothing may arrive on an idle connection but EOF or an error */
    return poll(&pf, 1, 0) == 0;
}

static void pool_close(void *conn, void *arg) {
    (void)arg;
    redisFree(conn);
}

static const hale_pool_ops redis_pool_ops = {pool_open, pool_idle_ok, pool_close};

void kv_redis_pool_init(kv_redis_pool *p, const kv_redis_addr *a, unsigned size, unsigned timeout_ms,
                        const char *const *scripts, size_t nscripts) {
    memset(p, 0, sizeof *p);
    HALE_ASSERT(nscripts <= KV_REDIS_MAX_SCRIPTS);
    p->addr = *a;
    p->timeout_ms = timeout_ms ? timeout_ms : 1;
    for (size_t i = 0; i < nscripts; i++) p->scripts[i] = scripts[i];
    p->nscripts = nscripts;
    pthread_mutex_init(&p->sha_mu, NULL);
    hale_pool_init(&p->base, size, p->timeout_ms, &redis_pool_ops, p);
}

void kv_redis_pool_destroy(kv_redis_pool *p) {
    hale_pool_destroy(&p->base);
    pthread_mutex_destroy(&p->sha_mu);
    explicit_bzero(&p->addr, sizeof p->addr);
}

kv_redis_rc kv_redis_acquire(kv_redis_pool *p, kv_redis_lease *l, char *err, size_t errlen) {
    uint64_t dl = hale_now_ns() + (uint64_t)p->timeout_ms * 1000000u;
    open_ctx o = {err, errlen};
    hale_pool_rc rc = hale_pool_acquire(&p->base, dl, &l->l, NULL, &o);
    l->c = l->l.conn;
    if (rc == HALE_POOL_BUSY) {
        hale_err(err, errlen, "redis: all %u connections busy", p->base.size);
        return KV_REDIS_BUSY;
    }
    return rc == HALE_POOL_OK ? KV_REDIS_OK : KV_REDIS_DOWN;
}

void kv_redis_release(kv_redis_pool *p, kv_redis_lease *l, bool broken) {
    hale_pool_release(&p->base, &l->l, broken);
    l->c = NULL;
}

#endif /* HALE_HAVE_HIREDIS */
