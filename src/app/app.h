/* app: the key-value service's definition for the runtime: its settings
 * (database, redis, auth), how it opens its store, which routes and checks
 * it registers, and its own commands (`hale migrate`). */
#ifndef APP_APP_H
#define APP_APP_H

#include "service.h"

/* The service definition main() hands to hale_service_main. */
const hale_service_def *kv_app_def(void);

#endif
