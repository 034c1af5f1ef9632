/* observe: what every request leaves behind: one access-log line and the
 * HTTP metrics (http_requests_total, http_request_duration_seconds,
 * http_requests_in_flight, hale_http_rejected_total), plus the /metrics
 * endpoint for the admin listener.
 *
 * Promises: route labels are templates ("unmatched" for anything else) and
 * methods outside the known set are labelled "other", so label cardinality
 * is bounded whatever clients send. Hooks run on worker threads, take no
 * lock once a label set has been seen, and allocate nothing on the log
 * path. */
#ifndef HALE_OBSERVE_H
#define HALE_OBSERVE_H

#include <stdbool.h>

#include "http.h"
#include "metrics.h"
#include "router.h"

typedef struct hale_observe hale_observe;

hale_observe *hale_observe_new(hale_metrics *reg, bool access_log);
void hale_observe_free(hale_observe *o);

/* Hooks to pass to hale_http_start (arg = the hale_observe). */
void hale_observe_on_complete(const hale_http_event *ev, void *arg);
void hale_observe_on_reject(const char *server, const char *reason, void *arg);

/* Exposes http_requests_in_flight for this server. */
void hale_observe_track_server(hale_observe *o, const hale_http_server *s);

/* Registers GET /metrics on r. */
int hale_observe_register_metrics(hale_observe *o, hale_router *r, char *err, size_t errlen);

#endif
