/* httpdate: HTTP-date (RFC 9110 §5.6.7) to and from seconds since the Unix
 * epoch, for Last-Modified, If-Modified-Since and If-Unmodified-Since.
 *
 * Promises: formats IMF-fixdate only ("Sun, 06 Nov 1994 08:49:37 GMT");
 * parses the three forms a recipient must accept (IMF-fixdate, RFC 850
 * "Sunday, 06-Nov-94 08:49:37 GMT", asctime "Sun Nov  6 08:49:37 1994"),
 * exactly, with nothing before or after. No locale, no allocation, no
 * state: thread-safe. */
#ifndef APP_HTTPDATE_H
#define APP_HTTPDATE_H

#include <stdint.h>

#define APP_HTTPDATE_LEN 30 /* 29 characters and the NUL */

/* Writes the IMF-fixdate of t (seconds, >= 0) into out. */
void app_httpdate_format(int64_t t, char out[APP_HTTPDATE_LEN]);

/* The time an HTTP-date names, in seconds; -1 when s is not one. */
int64_t app_httpdate_parse(const char *s);

#endif
