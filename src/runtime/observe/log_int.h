/* log_int: what log.c and log_filter.c share; not for other modules. */
#ifndef HALE_LOG_INT_H
#define HALE_LOG_INT_H

#include "log.h"

/* Parse a level spec (grammar in log.h, hale_log_init) and make it the
 * filter that hale_log_enabled applies. Returns 0, or -1 with a message
 * naming the bad part in err; on failure the filter is unchanged.
 * Start-up only: not safe against concurrent hale_log_enabled calls. */
int hale_log_filter_set(const char *level_spec, char *err, size_t errlen);

#endif
