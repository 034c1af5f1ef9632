/* testhooks: endpoints that exist only in test builds (HALE_TEST_HOOKS,
 * CMake option -DHALE_TEST_HOOKS=ON). Release builds compile none of this.
 *
 * Promises:
 *  - GET /debug/block?ms=N (main listener) keeps its worker inside the
 *    handler for N ms (1..60000, default 1000), then answers 200
 *    {"blocked_ms":N}. It stands in for a stuck or slow handler: the
 *    liveness watchdog, load shedding and the drain's "finish in-flight
 *    requests" step are tested with it. It is an ordinary (sheddable) route.
 */
#ifndef HALE_TESTHOOKS_H
#define HALE_TESTHOOKS_H

#include <stddef.h>

#include "router.h"

#ifdef HALE_TEST_HOOKS
/* Registers the test-only routes. Returns 0, or -1 with err. */
int hale_testhooks_register(hale_router *r, char *err, size_t errlen);
#endif

#endif
