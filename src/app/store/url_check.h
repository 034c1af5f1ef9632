/* url_check: hale's own check of the database and Redis URLs, before libpq
 * or hiredis sees them, and the scrubbing of driver messages.
 *
 * Why: libpq's URI errors quote the offending part of the URL ("invalid
 * percent-encoded token: \"Sup3rS3cret%zz\""), and that part may be the
 * password; hale logs those errors on every retry. So the URL is checked
 * here first, with errors that name the setting and the position (1-based
 * byte offset) and the part ("in the password"), but never quote a byte of
 * the URL. Whatever a driver still says about a connection is scrubbed of
 * the URL's userinfo and password (raw and percent-decoded).
 *
 * Promises: no allocation; thread-safe (no state). Errors follow util.h
 * (0, or -1 with err).
 */
#ifndef APP_URL_CHECK_H
#define APP_URL_CHECK_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    APP_URL_POSTGRES, /* postgres:// or postgresql://, multi-host allowed */
    APP_URL_REDIS,    /* redis:// or rediss:// */
} app_url_kind;

/* Checks url's syntax: scheme, only visible ASCII, every '%' followed by two
 * hex digits and never %00, at most one '@' (PostgreSQL: libpq ends the
 * userinfo at the first one, so a raw '@' in the password moves the host
 * into it), bracketed IPv6 hosts closed, ports 1..65535. setting names the
 * setting in the message ("database.url"). Returns 0, or -1 with err. */
int app_url_check(const char *setting, const char *url, app_url_kind kind, char *err, size_t errlen);

/* Replaces in msg (NUL-terminated, cap bytes) every occurrence of url's
 * userinfo, of its password, raw and percent-decoded, and of the whole
 * url, with "[redacted]". Does nothing when url has no userinfo. */
void app_url_scrub(const char *url, char *msg, size_t cap);

/* Replaces every occurrence of secret[0..n) in msg with "[redacted]"
 * (n == 0: nothing). */
void app_scrub(char *msg, size_t cap, const char *secret, size_t n);

#endif
