/* auth: API-key access control as a request filter that routes opt into
 * (HALE_ROUTE_AUTH); routes without the flag (probes, /metrics) stay open.
 *
 * Promises:
 *  - A request passes with `Authorization: Bearer <key>` or
 *    `X-API-Key: <key>` matching any configured key; otherwise 401 with
 *    `WWW-Authenticate: Bearer` and the same JSON error whether the key was
 *    missing or wrong (no hint which part failed).
 *  - Comparison is constant-time in the presented key: every configured key
 *    is compared over its full length, with no early exit on the first
 *    differing byte and no short-circuit between keys. (What is not hidden:
 *    the number of configured keys and their lengths, which are not secret
 *    in a useful sense.)
 *  - Keys come one per line (blank lines, comment lines starting with '#'
 *    and surrounding spaces ignored). Only the parsed key set counts: text
 *    with no usable key ("", " \n", comments only) is "no key" everywhere.
 *    When they came from a file, the file is re-checked every
 *    `reload_ms` (stat of the path, following Kubernetes' symlink swap), a
 *    task of the runtime's timer (timer.h) that keeps running during the
 *    drain, until the timer stops; a
 *    change swaps the key set atomically for new requests and is logged
 *    with the key count only. A change that leaves no usable key (file
 *    emptied, truncated mid-rotation, comments only) or is too large keeps
 *    the previous keys, logs an error and counts it in
 *    hale_auth_reload_refused_total: a reload never opens the API.
 *    Replaced key memory is wiped before release.
 *  - Keys never reach logs, metrics or error bodies.
 *  - Counts outcomes in hale_auth_requests_total{outcome="ok|missing|invalid"}.
 *  Thread-safety: hale_auth_check may run on any worker concurrently with a
 *  reload.
 */
#ifndef HALE_AUTH_H
#define HALE_AUTH_H

#include <stdbool.h>

#include "http.h"
#include "metrics.h"
#include "timer.h"

typedef struct hale_auth hale_auth;

/* keys_text: the configured keys (may be empty: then every request passes
 * until a watched file gains keys).
 * watch_path: the file the keys came from, or NULL for static keys. */
hale_auth *hale_auth_new(const char *keys_text, const char *watch_path, unsigned reload_ms,
                         hale_metrics *reg);
void hale_auth_free(hale_auth *a);

/* Number of usable keys in text, by the same rules as hale_auth_new (0 for
 * NULL). The startup check uses it: whitespace is not a key. */
unsigned hale_auth_count_keys(const char *text);

/* Schedules the reload on t when keys came from a file (first at once,
 * then every reload_ms; nothing to do for static keys). t must outlive a:
 * hale_auth_free takes the task off t (waiting for a reload in progress).
 * Returns 0, or -1 with err when t is NULL or has no room. */
int hale_auth_start(hale_auth *a, hale_timer *t, char *err, size_t errlen);

/* Number of keys currently configured. */
unsigned hale_auth_key_count(const hale_auth *a);

/* The filter (hale_http_hooks.auth): true lets the request through. */
bool hale_auth_check(hale_req *r, void *auth);

/* Re-reads the watched file now if it changed (the reload task calls
 * this; exposed for tests). Returns 1 when the key set changed. */
int hale_auth_reload(hale_auth *a);

#endif
