/* app: the key-value service's definition for the runtime: its settings
 * (database, redis, auth), how it opens its store, which routes and checks
 * it registers, and its own commands (`hale migrate`, `hale copy`).
 *
 * Names in src/app follow one rule: kv_ for what the key-value service is
 * (kv_store and its backends kv_sqlite_* / kv_pg_*, the cache, kv_api),
 * app_ for the glue that turns settings into those (app_store_cfg,
 * app_open_store, app_migrate, app_url_check); include guards
 * are APP_<FILE>_H, the runtime's HALE_<FILE>_H. */
#ifndef APP_APP_H
#define APP_APP_H

#include "service.h"

/* The service definition main() hands to hale_service_main. */
const hale_service_def *kv_app_def(void);

#endif
