/* kv_api: the /v1/kv HTTP handlers (A1-A5, A8) on top of a kv_store.
 *
 * Promises: keys are validated (1..512 bytes of percent-decoded UTF-8, no
 * control characters) before the store is touched; ETags are the store's
 * versions as strong quoted strings; every error is a JSON body. The API
 * holds no state of its own beyond the store pointer. */
#ifndef APP_KV_API_H
#define APP_KV_API_H

#include "router.h"
#include "store.h"

#define KV_MAX_KEY_BYTES 512
#define KV_LIST_DEFAULT 100
#define KV_LIST_MAX 1000

typedef struct kv_api {
    /* NULL until the store is open (requests then get 503); set once. */
    _Atomic(kv_store *) store;
    /* Cache-Control of KV GET/HEAD answers (200 and 304), e.g. "no-cache";
     * NULL means "no-cache". Every other answer is no-store (the engine's
     * default for a response without a policy). */
    const char *cache_control;
} kv_api;

/* Adds the /v1/kv routes to r, all flagged HALE_ROUTE_AUTH. Returns 0 or
 * -1 with err. `api` must outlive the router. */
int kv_api_register(kv_api *api, hale_router *r, char *err, size_t errlen);

/* Validates a decoded key; returns NULL when fine, else the reason. */
const char *kv_key_problem(const char *key, size_t n);

#endif
