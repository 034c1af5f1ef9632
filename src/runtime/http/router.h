/** @file
 * router: maps (method, path) to a registered endpoint by route template.
 *
 * Promises:
 *  - Templates are literal segments and `{name}` captures, e.g.
 *    "/v1/kv/{key}". A capture matches exactly one non-empty segment of the
 *    raw (still percent-encoded) path; decoding is the caller's business.
 *  - Matching is by template, so a route label never contains a raw path.
 *  - hale_router_match() tells apart "no such path" (404) from "path exists
 *    but not with this method" (405) and fills the Allow list for the latter.
 *  - A HEAD request matches a GET route.
 *  - Routes are added at start-up only; matching is read-only and thread-safe.
 */
#ifndef HALE_ROUTER_H
#define HALE_ROUTER_H

#include <stddef.h>

/* exported by libhale.so (the rest of the library is hidden) */
#pragma GCC visibility push(default)

/** Most `{name}` captures one template may have. */
#define HALE_ROUTE_MAX_PARAMS 4

/** Route flags. */
enum {
    HALE_ROUTE_NO_SHED = 1u << 0,  /**< never load-shed (health endpoints) */
    HALE_ROUTE_AUTH = 1u << 1,     /**< passes the server's auth filter first */
    HALE_ROUTE_BODY = 1u << 2,     /**< accepts a request body */
};

struct hale_req;
/** A route handler: answers req through hale_resp_* (see http.h); arg is the
 * route's arg. */
typedef void (*hale_handler_fn)(struct hale_req *req, void *arg);

/** One endpoint: method, template, handler. */
typedef struct hale_route {
    const char *method;    /**< "GET", "PUT", ... */
    const char *tmpl;      /**< "/v1/kv/{key}" */
    hale_handler_fn fn;    /**< called on a worker thread */
    void *arg;             /**< handed to fn */
    unsigned flags;        /**< HALE_ROUTE_* */
    unsigned index;        /**< filled by the router: registration order, for per-route metrics */
} hale_route;

/** A set of routes (opaque). */
typedef struct hale_router hale_router;

/** The result of hale_router_match. */
typedef struct hale_route_match {
    const hale_route *route;                 /**< NULL when not matched */
    size_t nparams;                          /**< captures filled */
    const char *param_name[HALE_ROUTE_MAX_PARAMS]; /**< capture names, from the template */
    const char *param_ptr[HALE_ROUTE_MAX_PARAMS]; /**< into the path */
    size_t param_len[HALE_ROUTE_MAX_PARAMS];      /**< capture lengths */
    char allow[96];                          /**< "GET, HEAD, PUT" for 405 */
} hale_route_match;

/** What hale_router_match found. */
typedef enum {
    HALE_MATCH_OK = 0,         /**< a route matched */
    HALE_MATCH_NOT_FOUND = 1,  /**< no route has this path */
    HALE_MATCH_METHOD = 2,   /**< path known, method not allowed */
} hale_match_result;

/** Returns a new empty router; never NULL. */
hale_router *hale_router_new(void);
/** Frees r and its routes (after every server using it stopped). */
void hale_router_free(hale_router *r);

/** Registers a route (copied). Returns 0, or -1 with err for a malformed
 * template (must start with '/', captures must be whole segments with
 * distinct names, at most HALE_ROUTE_MAX_PARAMS), or for a route that one
 * registered before hides (the same method, and a capture or the same
 * literal in every segment: the first registered route wins, so it could
 * never match). */
int hale_router_add(hale_router *r, const hale_route *route, char *err, size_t errlen);

/** Matches the path (no query string, length n). Thread-safe. */
hale_match_result hale_router_match(const hale_router *r, const char *method,
                                    const char *path, size_t n,
                                    hale_route_match *m);

/** Number of registered routes (for metrics pre-registration). */
size_t hale_router_count(const hale_router *r);

#pragma GCC visibility pop

#endif
