/* probe: a tiny blocking HTTP/1.1 client for `hale --health-check`, so
 * images need no shell and no curl.
 *
 * Promise: one GET with a hard total deadline; never hangs longer than
 * timeout_ms; no allocation. */
#ifndef HALE_PROBE_H
#define HALE_PROBE_H

#include <stddef.h>

/* GETs http://host:port/path. Returns the HTTP status (>= 100), or -1 with
 * a reason in err (connection refused, timeout, malformed answer). A listen
 * host of 0.0.0.0 or :: is probed on the loopback address. */
int hale_probe_get(const char *host, unsigned port, const char *path, unsigned timeout_ms,
                   char *err, size_t errlen);

#endif
