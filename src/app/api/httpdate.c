/* httpdate: see httpdate.h. */
#include "httpdate.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *const WDAY[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const WDAY_LONG[] = {"Sunday", "Monday", "Tuesday", "Wednesday",
                                        "Thursday", "Friday", "Saturday"};
static const char *const MON[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), and back. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void app_httpdate_format(int64_t t, char out[APP_HTTPDATE_LEN]) {
    if (t < 0) t = 0;
    if (t > 253402300799) t = 253402300799; /* 9999-12-31T23:59:59Z: four-digit years */
    int64_t days = t / 86400, secs = t % 86400, y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s, %02u %s %04lld %02d:%02d:%02d GMT", WDAY[(days + 4) % 7], d,
             MON[m - 1], (long long)y, (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
    memcpy(out, tmp, APP_HTTPDATE_LEN - 1);
    out[APP_HTTPDATE_LEN - 1] = '\0';
}

/* n digits at *p (a leading space allowed when sp), advancing *p. */
static bool digits(const char **p, int n, bool sp, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (sp && i == 0 && c == ' ') continue;
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool lit(const char **p, const char *s) {
    size_t n = strlen(s);
    if (strncmp(*p, s, n) != 0) return false;
    *p += n;
    return true;
}

static int month(const char **p) {
    for (int i = 0; i < 12; i++)
        if (strncmp(*p, MON[i], 3) == 0) { *p += 3; return i + 1; }
    return 0;
}

/* "HH:MM:SS" */
static bool hms(const char **p, int *h, int *mi, int *s) {
    return digits(p, 2, false, h) && lit(p, ":") && digits(p, 2, false, mi) && lit(p, ":") &&
           digits(p, 2, false, s) && *h < 24 && *mi < 60 && *s < 61;
}

static int64_t assemble(int64_t y, int m, int d, int h, int mi, int s, int wday) {
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || d < 1 || d > mdays[m - 1]) return -1;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (m == 2 && d == 29 && !leap) return -1;
    int64_t days = days_from_civil(y, (unsigned)m, (unsigned)d);
    if (days < 0 || (days + 4) % 7 != wday) return -1; /* the weekday must agree */
    return days * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + (s > 59 ? 59 : s);
}

int64_t app_httpdate_parse(const char *s) {
    if (!s) return -1;
    const char *p = s;
    int wday = -1;
    for (int i = 0; i < 7 && wday < 0; i++) {
        size_t n = strlen(WDAY_LONG[i]);
        if (strncmp(p, WDAY_LONG[i], n) == 0 && p[n] == ',') { wday = i; p += n; }
    }
    int d, m, y, h, mi, sec;
    if (wday >= 0) { /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
        if (!lit(&p, ", ") || !digits(&p, 2, false, &d) || !lit(&p, "-") || !(m = month(&p)) ||
            !lit(&p, "-") || !digits(&p, 2, false, &y) || !lit(&p, " ") || !hms(&p, &h, &mi, &sec) ||
            !lit(&p, " GMT") || *p)
            return -1;
        /* two-digit years: RFC 9110 says a year that looks more than 50
         * years in the future is in the past; 1970..2069 is that rule for
         * any date this code will see */
        y += y < 70 ? 2000 : 1900;
        return assemble(y, m, d, h, mi, sec, wday);
    }
    for (int i = 0; i < 7 && wday < 0; i++)
        if (strncmp(p, WDAY[i], 3) == 0) { wday = i; p += 3; }
    if (wday < 0) return -1;
    if (*p == ',') { /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
        if (!lit(&p, ", ") || !digits(&p, 2, false, &d) || !lit(&p, " ") || !(m = month(&p)) ||
            !lit(&p, " ") || !digits(&p, 4, false, &y) || !lit(&p, " ") || !hms(&p, &h, &mi, &sec) ||
            !lit(&p, " GMT") || *p)
            return -1;
        return assemble(y, m, d, h, mi, sec, wday);
    }
    /* asctime: Sun Nov  6 08:49:37 1994 */
    if (!lit(&p, " ") || !(m = month(&p)) || !lit(&p, " ") || !digits(&p, 2, true, &d) ||
        !lit(&p, " ") || !hms(&p, &h, &mi, &sec) || !lit(&p, " ") || !digits(&p, 4, false, &y) || *p)
        return -1;
    return assemble(y, m, d, h, mi, sec, wday);
}
