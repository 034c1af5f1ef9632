/* toml_lex: TOML scalars (strings, numbers, booleans, datetimes).
 * See toml.h for what the module promises; toml.c owns the structure.
 * The whole input has been checked for valid UTF-8 before any of this runs,
 * so these functions only police TOML's own character rules. */
#include "toml_int.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tp_fail_at(tparser *ps, toml_pos pos, const char *fmt, ...) {
    if (ps->failed) return -1;
    ps->failed = true;
    if (ps->err) {
        ps->err->pos = pos;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err->msg, sizeof ps->err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int tp_fail(tparser *ps, const char *fmt, ...) {
    if (ps->failed) return -1;
    ps->failed = true;
    if (ps->err) {
        ps->err->pos = tp_pos(ps);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err->msg, sizeof ps->err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- strings ---------------------------------------------------------- */

static bool is_ctrl(int c) { return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7F; }

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void put_utf8(hale_buf *b, uint32_t cp) {
    char s[4];
    size_t n;
    if (cp < 0x80) { s[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { s[0] = (char)(0xC0 | cp >> 6); s[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        s[0] = (char)(0xE0 | cp >> 12); s[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        s[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        s[0] = (char)(0xF0 | cp >> 18); s[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        s[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); s[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    hale_buf_append(b, s, n);
}

/* After a backslash in a basic string (cursor on the escape letter). */
static int escape(tparser *ps, hale_buf *b) {
    toml_pos at = tp_pos(ps);
    int c = tp_peek(ps, 0);
    const char *simple = NULL;
    switch (c) {
    case 'b': simple = "\b"; break;
    case 't': simple = "\t"; break;
    case 'n': simple = "\n"; break;
    case 'f': simple = "\f"; break;
    case 'r': simple = "\r"; break;
    case '"': simple = "\""; break;
    case '\\': simple = "\\"; break;
    case 'u': case 'U': break;
    default:
        return tp_fail_at(ps, at, "invalid escape sequence (expected one of "
                          "\\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX)");
    }
    tp_adv(ps);
    if (simple) {
        hale_buf_append(b, simple, 1);
        return 0;
    }
    int digits = c == 'u' ? 4 : 8;
    uint32_t cp = 0;
    for (int i = 0; i < digits; i++) {
        int h = hexval(tp_peek(ps, 0));
        if (h < 0)
            return tp_fail(ps, "expected %d hex digits after \\%c", digits, c);
        cp = cp << 4 | (uint32_t)h;
        tp_adv(ps);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return tp_fail_at(ps, at, "escape is not a Unicode scalar value");
    put_utf8(b, cp);
    return 0;
}

/* Consume a newline (LF or CRLF) at the cursor; 1 if one was there. */
static int eat_newline(tparser *ps) {
    int c = tp_peek(ps, 0);
    if (c == '\n') { tp_adv(ps); return 1; }
    if (c == '\r' && tp_peek(ps, 1) == '\n') { tp_adv(ps); tp_adv(ps); return 1; }
    return 0;
}

static int string_body(tparser *ps, char q, bool multi, toml_pos start, hale_buf *b) {
    for (;;) {
        int c = tp_peek(ps, 0);
        if (c < 0)
            return tp_fail_at(ps, start, "expected %s to close the string "
                              "started here", multi ? (q == '"' ? "\"\"\"" : "'''")
                              : (q == '"' ? "'\"'" : "\"'\""));
        if (c == q) {
            if (!multi) { tp_adv(ps); return 0; }
            size_t n = 0;
            while (tp_peek(ps, n) == q) n++;
            if (n >= 3) {
                if (n > 5)
                    return tp_fail(ps, "too many quotes at the end of a "
                                   "multi-line string");
                hale_buf_append(b, ps->p, n - 3);
                for (size_t i = 0; i < n; i++) tp_adv(ps);
                return 0;
            }
            hale_buf_append(b, ps->p, n);
            for (size_t i = 0; i < n; i++) tp_adv(ps);
            continue;
        }
        if (multi && (c == '\n' || c == '\r')) {
            if (!eat_newline(ps))
                return tp_fail(ps, "carriage return not followed by a line feed");
            hale_buf_append(b, "\n", 1);
            continue;
        }
        if (c == '\n' || c == '\r')
            return tp_fail(ps, "expected %s before the end of the line",
                           q == '"' ? "'\"'" : "\"'\"");
        if (is_ctrl(c))
            return tp_fail(ps, "control character U+%04X must be escaped", c);
        if (c == '\\' && q == '"') {
            tp_adv(ps);
            int d = tp_peek(ps, 0);
            if (multi && (d == ' ' || d == '\t' || d == '\n' || d == '\r')) {
                /* line-ending backslash: only whitespace may follow it on
                 * its line; then all whitespace and newlines are dropped */
                size_t k = 0;
                while (tp_peek(ps, k) == ' ' || tp_peek(ps, k) == '\t') k++;
                int e = tp_peek(ps, k);
                if (e != '\n' && !(e == '\r' && tp_peek(ps, k + 1) == '\n'))
                    return tp_fail(ps, "invalid escape sequence (a '\\' "
                                   "followed by spaces must end the line)");
                for (;;) {
                    d = tp_peek(ps, 0);
                    if (d == ' ' || d == '\t') tp_adv(ps);
                    else if (!eat_newline(ps)) break;
                }
                if (d == '\r')
                    return tp_fail(ps, "carriage return not followed by a line feed");
                continue;
            }
            if (escape(ps, b) < 0) return -1;
            continue;
        }
        /* copy a run of ordinary bytes */
        const char *s = ps->p;
        while (!tp_eof(ps)) {
            int e = (unsigned char)*ps->p;
            if (e == q || (e == '\\' && q == '"') || e == '\n' || e == '\r' || is_ctrl(e))
                break;
            tp_adv(ps);
        }
        hale_buf_append(b, s, (size_t)(ps->p - s));
    }
}

int tp_string(tparser *ps, bool allow_multi, char **out, size_t *len) {
    toml_pos start = tp_pos(ps);
    char q = *ps->p;
    bool multi = tp_peek(ps, 1) == q && tp_peek(ps, 2) == q;
    if (multi && !allow_multi)
        return tp_fail(ps, "a multi-line string cannot be a key");
    tp_adv(ps);
    if (multi) {
        tp_adv(ps);
        tp_adv(ps);
        if (tp_peek(ps, 0) == '\r' && tp_peek(ps, 1) != '\n')
            return tp_fail(ps, "carriage return not followed by a line feed");
        eat_newline(ps); /* a newline right after the opening quotes is trimmed */
    }
    hale_buf b;
    hale_buf_init(&b);
    hale_buf_append(&b, "", 0); /* allocated and NUL-terminated even when empty */
    if (string_body(ps, q, multi, start, &b) < 0) {
        hale_buf_free(&b);
        return -1;
    }
    *out = b.data;
    *len = b.len;
    return 0;
}

/* ---- numbers ---------------------------------------------------------- */

static bool isdig(int c) { return c >= '0' && c <= '9'; }

/* Digits of base `base` with '_' only between two digits; copies the digits
 * (no underscores) to out. Returns the count, or -1 on a misplaced '_'. */
static int digits(const char *s, size_t n, int base, char *out, size_t *outlen) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '_') {
            if (i == 0 || i + 1 == n || s[i - 1] == '_') return -1;
            continue;
        }
        int v = hexval(c);
        if (v < 0 || v >= base) return -1;
        out[o++] = (char)c;
    }
    *outlen = o;
    return o ? (int)o : -1;
}

static int number(tparser *ps, toml_value *v) {
    toml_pos at = tp_pos(ps);
    const char *s = ps->p;
    size_t n = 0;
    for (;;) {
        int c = tp_peek(ps, n);
        if (c < 0 || !(isdig(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       c == '_' || c == '.' || c == '+' || c == '-'))
            break;
        n++;
    }
    if (n == 0) return tp_fail(ps, "expected a value");
    if (n > 128) return tp_fail(ps, "number too long");
    char buf[130];
    size_t blen = 0;
    const char *bad = "invalid number";
    size_t i = 0;
    bool neg = false, sign = false;
    if (s[0] == '+' || s[0] == '-') { neg = s[0] == '-'; sign = true; i = 1; }
    const char *r = s + i;
    size_t rn = n - i;
    if ((rn == 3 && (!memcmp(r, "inf", 3) || !memcmp(r, "nan", 3)))) {
        v->type = TOML_FLOAT;
        v->u.f = r[0] == 'i' ? (neg ? -INFINITY : INFINITY) : (neg ? -NAN : NAN);
        goto done;
    }
    if (rn > 2 && r[0] == '0' && (r[1] == 'x' || r[1] == 'o' || r[1] == 'b')) {
        int base = r[1] == 'x' ? 16 : r[1] == 'o' ? 8 : 2;
        if (sign) { bad = "a sign is not allowed on hex, octal or binary integers"; goto fail; }
        if (digits(r + 2, rn - 2, base, buf, &blen) < 0) goto fail;
        uint64_t acc = 0;
        for (size_t k = 0; k < blen; k++) {
            uint64_t d = (uint64_t)hexval((unsigned char)buf[k]);
            if (acc > (UINT64_C(0x7FFFFFFFFFFFFFFF) - d) / (uint64_t)base) {
                bad = "integer does not fit in 64 bits";
                goto fail;
            }
            acc = acc * (uint64_t)base + d;
        }
        v->type = TOML_INTEGER;
        v->u.i = (int64_t)acc;
        goto done;
    }
    /* decimal: int part, optional fraction, optional exponent */
    size_t ip = 0;
    while (ip < rn && (isdig(r[ip]) || r[ip] == '_')) ip++;
    size_t clean = 0;
    if (sign) buf[blen++] = s[0];
    if (ip == 0 || digits(r, ip, 10, buf + blen, &clean) < 0) goto fail;
    if (buf[blen] == '0' && clean > 1) { bad = "leading zeros are not allowed"; goto fail; }
    blen += clean;
    size_t k = ip;
    bool isfloat = false;
    if (k < rn && r[k] == '.') {
        size_t f0 = ++k;
        while (k < rn && (isdig(r[k]) || r[k] == '_')) k++;
        buf[blen++] = '.';
        if (digits(r + f0, k - f0, 10, buf + blen, &clean) < 0) goto fail;
        blen += clean;
        isfloat = true;
    }
    if (k < rn && (r[k] == 'e' || r[k] == 'E')) {
        buf[blen++] = 'e';
        k++;
        if (k < rn && (r[k] == '+' || r[k] == '-')) buf[blen++] = r[k++];
        size_t e0 = k;
        while (k < rn && (isdig(r[k]) || r[k] == '_')) k++;
        if (digits(r + e0, k - e0, 10, buf + blen, &clean) < 0) goto fail;
        blen += clean;
        isfloat = true;
    }
    if (k != rn) goto fail;
    buf[blen] = '\0';
    errno = 0;
    if (isfloat) {
        v->type = TOML_FLOAT;
        v->u.f = strtod(buf, NULL);
    } else {
        long long x = strtoll(buf, NULL, 10);
        if (errno == ERANGE) { bad = "integer does not fit in 64 bits"; goto fail; }
        v->type = TOML_INTEGER;
        v->u.i = x;
    }
done:
    for (size_t j = 0; j < n; j++) tp_adv(ps);
    return 0;
fail:
    return tp_fail_at(ps, at, "%s", bad);
}

/* ---- datetimes -------------------------------------------------------- */

/* Exactly n ASCII digits at offset k; value or -1. */
static int fixed(tparser *ps, size_t k, int n) {
    int x = 0;
    for (int i = 0; i < n; i++) {
        int c = tp_peek(ps, k + (size_t)i);
        if (!isdig(c)) return -1;
        x = x * 10 + (c - '0');
    }
    return x;
}

static int days_in(int y, int m) {
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return dm[m - 1];
}

static void skip(tparser *ps, size_t n) {
    while (n--) tp_adv(ps);
}

/* HH:MM:SS[.frac] at the cursor. */
static int time_part(tparser *ps, toml_datetime *dt) {
    int h = fixed(ps, 0, 2), m = fixed(ps, 3, 2), s = fixed(ps, 6, 2);
    if (h < 0 || tp_peek(ps, 2) != ':' || m < 0 || tp_peek(ps, 5) != ':' || s < 0)
        return tp_fail(ps, "expected a time as HH:MM:SS");
    if (h > 23 || m > 59 || s > 60)
        return tp_fail(ps, "time out of range");
    dt->hour = h;
    dt->minute = m;
    dt->second = s;
    skip(ps, 8);
    if (tp_peek(ps, 0) == '.') {
        tp_adv(ps);
        if (!isdig(tp_peek(ps, 0)))
            return tp_fail(ps, "expected digits after '.' in a time");
        int ns = 0, nd = 0;
        while (isdig(tp_peek(ps, 0))) {
            if (nd < 9) {
                ns = ns * 10 + (*ps->p - '0');
                nd++;
            }
            tp_adv(ps);
        }
        dt->frac_digits = nd;
        for (int i = nd; i < 9; i++) ns *= 10;
        dt->nanosecond = ns;
    }
    return 0;
}

static int datetime(tparser *ps, toml_value *v) {
    toml_datetime *dt = &v->u.dt;
    memset(dt, 0, sizeof *dt);
    v->type = TOML_DATETIME;
    if (tp_peek(ps, 2) == ':') {
        dt->kind = TOML_DT_TIME;
        return time_part(ps, dt);
    }
    int y = fixed(ps, 0, 4), mo = fixed(ps, 5, 2), d = fixed(ps, 8, 2);
    if (y < 0 || tp_peek(ps, 4) != '-' || mo < 0 || tp_peek(ps, 7) != '-' || d < 0)
        return tp_fail(ps, "expected a date as YYYY-MM-DD");
    if (mo < 1 || mo > 12 || d < 1 || d > days_in(y, mo))
        return tp_fail(ps, "date out of range");
    dt->year = y;
    dt->month = mo;
    dt->day = d;
    dt->kind = TOML_DT_DATE;
    skip(ps, 10);
    int c = tp_peek(ps, 0);
    bool t = c == 'T' || c == 't';
    if (c == ' ' && isdig(tp_peek(ps, 1)) && isdig(tp_peek(ps, 2)) && tp_peek(ps, 3) == ':')
        t = true;
    if (!t) return 0;
    tp_adv(ps);
    if (time_part(ps, dt) < 0) return -1;
    dt->kind = TOML_DT_LOCAL;
    c = tp_peek(ps, 0);
    if (c == 'Z' || c == 'z') {
        tp_adv(ps);
        dt->kind = TOML_DT_OFFSET;
        dt->offset_z = true;
    } else if (c == '+' || c == '-') {
        int oh = fixed(ps, 1, 2), om = fixed(ps, 4, 2);
        if (oh < 0 || tp_peek(ps, 3) != ':' || om < 0)
            return tp_fail(ps, "expected a UTC offset as +HH:MM or -HH:MM");
        if (oh > 23 || om > 59) return tp_fail(ps, "UTC offset out of range");
        dt->offset_minutes = (oh * 60 + om) * (c == '-' ? -1 : 1);
        dt->kind = TOML_DT_OFFSET;
        skip(ps, 6);
    }
    return 0;
}

int tp_scalar(tparser *ps, toml_value *v) {
    int c = tp_peek(ps, 0);
    if (c == 't' || c == 'f') {
        const char *w = c == 't' ? "true" : "false";
        size_t n = strlen(w);
        if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0)
            return tp_fail(ps, "expected a value (true and false are lowercase)");
        v->type = TOML_BOOL;
        v->u.b = c == 't';
        skip(ps, n);
        return 0;
    }
    if (isdig(c) && isdig(tp_peek(ps, 1)) &&
        (tp_peek(ps, 2) == ':' ||
         (isdig(tp_peek(ps, 2)) && isdig(tp_peek(ps, 3)) && tp_peek(ps, 4) == '-')))
        return datetime(ps, v);
    return number(ps, v);
}

size_t toml_datetime_format(const toml_datetime *dt, char *buf, size_t cap) {
    hale_buf b;
    hale_buf_init(&b);
    if (dt->kind != TOML_DT_TIME)
        hale_buf_printf(&b, "%04d-%02d-%02d", dt->year, dt->month, dt->day);
    if (dt->kind != TOML_DT_DATE) {
        if (dt->kind != TOML_DT_TIME) hale_buf_puts(&b, "T");
        hale_buf_printf(&b, "%02d:%02d:%02d", dt->hour, dt->minute, dt->second);
        if (dt->frac_digits > 0) {
            int ns = dt->nanosecond;
            for (int i = dt->frac_digits; i < 9; i++) ns /= 10;
            hale_buf_printf(&b, ".%0*d", dt->frac_digits, ns);
        }
    }
    if (dt->kind == TOML_DT_OFFSET) {
        if (dt->offset_z) {
            hale_buf_puts(&b, "Z");
        } else {
            int off = dt->offset_minutes;
            char sg = off < 0 ? '-' : '+';
            if (off < 0) off = -off;
            hale_buf_printf(&b, "%c%02d:%02d", sg, off / 60, off % 60);
        }
    }
    size_t n = b.len;
    if (cap) {
        size_t k = n < cap - 1 ? n : cap - 1;
        if (k) memcpy(buf, b.data, k);
        buf[k] = '\0';
    }
    hale_buf_free(&b);
    return n;
}
