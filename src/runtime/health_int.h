/* health_int: the runtime's internal side of health.h (not installed).
 *
 * Promise: hale_health_use_timer(h, t) before hale_health_start makes the
 * checks tasks of t (the service's one timer thread) instead of a timer h
 * makes and owns. t must outlive h; t is not started or stopped by h:
 * hale_health_stop_checks (and hale_health_free) take the checks off t,
 * waiting for a run in progress, so none runs after they return. Ignored
 * once the checks run.
 */
#ifndef HALE_HEALTH_INT_H
#define HALE_HEALTH_INT_H

#include "health.h"
#include "timer.h"

void hale_health_use_timer(hale_health *h, hale_timer *t);

#endif
