/* service_env.h: how a unit test that needs a real service (PostgreSQL,
 * Redis) or an optional library learns whether it may run. It promises:
 * a test never passes by doing nothing. Without the service URL (or the
 * library) the test exits SERVICE_ENV_SKIP (77), which ctest reports as
 * "Not Run", never as passed; with HALE_REQUIRE_SERVICES=1 (run-tests.sh,
 * i.e. inside make test) it fails with exit 1 instead. */
#ifndef HALE_TEST_SERVICE_ENV_H
#define HALE_TEST_SERVICE_ENV_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SERVICE_ENV_SKIP 77

/* exit code for "cannot run here": why is printed on stderr */
static inline int service_env_missing(const char *why) {
    const char *req = getenv("HALE_REQUIRE_SERVICES");
    if (req && strcmp(req, "1") == 0) {
        fprintf(stderr, "%s; HALE_REQUIRE_SERVICES=1 (make test): failing\n", why);
        return 1;
    }
    fprintf(stderr, "%s: not run (eval \"$(scripts/services.sh start)\")\n", why);
    return SERVICE_ENV_SKIP;
}

/* the URL in VAR, or NULL when unset or empty */
static inline const char *service_env_url(const char *var) {
    const char *v = getenv(var);
    return v && *v ? v : NULL;
}

#endif
