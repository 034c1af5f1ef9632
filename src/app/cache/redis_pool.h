/* redis_pool: Redis URLs, connections with timeouts, and a bounded pool of
 * hiredis contexts shared by every thread. Used by the cache.
 *
 * Promises:
 *  - At most `size` connections, made on demand; an idle connection that
 *    the server closed (restart, timeout) is noticed before reuse and
 *    replaced, so a Redis restart costs no failed command.
 *  - Connecting and every command are bounded by timeout_ms (hiredis
 *    connect timeout, then SO_RCVTIMEO/SO_SNDTIMEO). Known limit: the bound
 *    is per socket call, so a server dripping a reply byte by byte could
 *    stretch one command; replies here are small. Name resolution is
 *    synchronous (getaddrinfo inside hiredis).
 *  - Scripts given at init are loaded (SCRIPT LOAD) on every new connection
 *    and run by SHA; a server that lost them (SCRIPT FLUSH) fails the call
 *    and the connection is replaced, which reloads them.
 *  - Passwords are never put in an error message.
 * Thread-safety: acquire/release from any thread; a lease's context is used
 * by one thread at a time.
 */
#ifndef APP_REDIS_POOL_H
#define APP_REDIS_POOL_H

#ifdef HALE_HAVE_HIREDIS

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pool.h"

typedef struct kv_redis_addr {
    char host[256];
    unsigned port;
    char user[128];     /* "" unless the URL names one (Redis 6 ACL) */
    char pass[256];     /* "" when none */
    unsigned db;
} kv_redis_addr;

/* Parses redis://[[user]:password@]host[:port][/db]. user and password are
 * percent-decoded; host may be a [v6] literal. rediss:// (TLS) and unix
 * sockets are refused with a message. Returns 0, or -1 with err (which
 * never contains the password). */
int kv_redis_parse_url(const char *url, kv_redis_addr *a, char *err, size_t errlen);

#define KV_REDIS_MAX_SCRIPTS 4

typedef struct kv_redis_pool {
    hale_pool base;                      /* the redisContext slots and their counters */
    kv_redis_addr addr;
    unsigned timeout_ms;
    const char *scripts[KV_REDIS_MAX_SCRIPTS];
    size_t nscripts;
    pthread_mutex_t sha_mu;
    char sha[KV_REDIS_MAX_SCRIPTS][41];  /* filled by the first SCRIPT LOAD */
} kv_redis_pool;

typedef struct kv_redis_lease {
    hale_pool_lease l;
    redisContext *c;
} kv_redis_lease;

/* size >= 1; scripts (at most KV_REDIS_MAX_SCRIPTS, borrowed: static text)
 * are loaded on each connection. Connects nothing yet. */
void kv_redis_pool_init(kv_redis_pool *p, const kv_redis_addr *a, unsigned size, unsigned timeout_ms,
                        const char *const *scripts, size_t nscripts);
void kv_redis_pool_destroy(kv_redis_pool *p);

/* Result of an acquire. */
typedef enum { KV_REDIS_OK = 0, KV_REDIS_BUSY, KV_REDIS_DOWN } kv_redis_rc;

/* A connected context: waits up to timeout_ms for a free slot (BUSY when
 * none came: not the server's fault) and connects when needed (DOWN with
 * err when that fails). */
kv_redis_rc kv_redis_acquire(kv_redis_pool *p, kv_redis_lease *l, char *err, size_t errlen);
/* Gives the slot back; broken drops its connection. */
void kv_redis_release(kv_redis_pool *p, kv_redis_lease *l, bool broken);

/* Runs one command (binary-safe argv). Returns the reply (caller frees with
 * freeReplyObject) or NULL with err; *broken is set when the connection
 * must be dropped (I/O error, timeout, protocol error, NOSCRIPT). An error
 * reply from the server is returned as NULL with err too. */
redisReply *kv_redis_cmd(redisContext *c, int argc, const char **argv, const size_t *lens, bool *broken,
                         char *err, size_t errlen);

#endif /* HALE_HAVE_HIREDIS */
#endif
