/* Tests for src/runtime/observe/log.c. R: O1
 * Lines are parsed by a strict JSON reader below (RFC 8259: UTF-8 only, no
 * raw control characters, valid escapes, no duplicate keys) rather than
 * compared as blobs. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* ---- a strict flat-JSON-object reader ----------------------------------- */

typedef struct jval {
    char key[128];
    char type; /* 's' string, 'n' number, 't' true, 'f' false, 'z' null */
    char *s;   /* decoded string, or the number's text */
    size_t len;
} jval;

typedef struct jobj {
    jval v[64];
    size_t n;
} jobj;

static void jobj_free(jobj *o) {
    for (size_t i = 0; i < o->n; i++) free(o->v[i].s);
    o->n = 0;
}

static const jval *jget(const jobj *o, const char *key) {
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->v[i].key, key) == 0) return &o->v[i];
    return NULL;
}

static size_t utf8_ok(const unsigned char *s, size_t n) {
    unsigned c = s[0], cp, min;
    size_t len;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; min = 0x80; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; min = 0x800; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; min = 0x10000; cp = c & 0x07; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

static bool all_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t l = utf8_ok((const unsigned char *)s + i, n - i);
        if (!l) return false;
        i += l;
    }
    return true;
}

static void put_utf8(char *o, size_t *k, unsigned cp) {
    if (cp < 0x80) o[(*k)++] = (char)cp;
    else if (cp < 0x800) { o[(*k)++] = (char)(0xC0 | cp >> 6); o[(*k)++] = (char)(0x80 | (cp & 63)); }
    else if (cp < 0x10000) {
        o[(*k)++] = (char)(0xE0 | cp >> 12); o[(*k)++] = (char)(0x80 | (cp >> 6 & 63));
        o[(*k)++] = (char)(0x80 | (cp & 63));
    } else {
        o[(*k)++] = (char)(0xF0 | cp >> 18); o[(*k)++] = (char)(0x80 | (cp >> 12 & 63));
        o[(*k)++] = (char)(0x80 | (cp >> 6 & 63)); o[(*k)++] = (char)(0x80 | (cp & 63));
    }
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* Parse a JSON string at *p (pointing at the opening quote). */
static char *jstring(const char **pp, const char *end, size_t *len) {
    const char *p = *pp;
    if (p >= end || *p != '"') return NULL;
    p++;
    char *o = malloc((size_t)(end - p) + 1);
    size_t k = 0;
    while (p < end && *p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20) goto bad;
        if (c == '\\') {
            if (++p >= end) goto bad;
            switch (*p) {
            case '"': o[k++] = '"'; p++; break;
            case '\\': o[k++] = '\\'; p++; break;
            case '/': o[k++] = '/'; p++; break;
            case 'b': o[k++] = '\b'; p++; break;
            case 'f': o[k++] = '\f'; p++; break;
            case 'n': o[k++] = '\n'; p++; break;
            case 'r': o[k++] = '\r'; p++; break;
            case 't': o[k++] = '\t'; p++; break;
            case 'u': {
                unsigned cp, lo;
                if (end - p < 5 || hex4(p + 1, &cp) < 0) goto bad;
                p += 5;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) < 0 ||
                        lo < 0xDC00 || lo > 0xDFFF)
                        goto bad;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    goto bad;
                }
                put_utf8(o, &k, cp);
                break;
            }
            default: goto bad;
            }
            continue;
        }
        size_t l = utf8_ok((const unsigned char *)p, (size_t)(end - p));
        if (!l) goto bad;
        memcpy(o + k, p, l);
        k += l;
        p += l;
    }
    if (p >= end) goto bad;
    *pp = p + 1;
    o[k] = '\0';
    *len = k;
    return o;
bad:
    free(o);
    return NULL;
}

/* 0 when line[0..n) is exactly one flat JSON object. */
static int json_parse(const char *line, size_t n, jobj *o) {
    const char *p = line, *end = line + n;
    o->n = 0;
#define WS() while (p < end && (*p == ' ' || *p == '\t')) p++
    WS();
    if (p >= end || *p++ != '{') return -1;
    WS();
    if (p < end && *p == '}') { p++; goto done; }
    for (;;) {
        WS();
        size_t klen;
        char *key = jstring(&p, end, &klen);
        if (!key || klen >= sizeof o->v[0].key || o->n == 64) { free(key); goto fail; }
        for (size_t i = 0; i < o->n; i++)
            if (strcmp(o->v[i].key, key) == 0) { free(key); goto fail; } /* duplicate */
        jval *v = &o->v[o->n];
        memcpy(v->key, key, klen + 1);
        free(key);
        WS();
        if (p >= end || *p++ != ':') goto fail;
        WS();
        if (p < end && *p == '"') {
            v->type = 's';
            if (!(v->s = jstring(&p, end, &v->len))) goto fail;
        } else if (end - p >= 4 && memcmp(p, "true", 4) == 0) { v->type = 't'; v->s = NULL; p += 4; }
        else if (end - p >= 5 && memcmp(p, "false", 5) == 0) { v->type = 'f'; v->s = NULL; p += 5; }
        else if (end - p >= 4 && memcmp(p, "null", 4) == 0) { v->type = 'z'; v->s = NULL; p += 4; }
        else {
            const char *s = p;
            if (p < end && *p == '-') p++;
            if (p >= end || !(*p >= '0' && *p <= '9')) goto fail;
            if (*p == '0') p++;
            else while (p < end && *p >= '0' && *p <= '9') p++;
            if (p < end && *p == '.') {
                p++;
                if (p >= end || !(*p >= '0' && *p <= '9')) goto fail;
                while (p < end && *p >= '0' && *p <= '9') p++;
            }
            if (p < end && (*p == 'e' || *p == 'E')) {
                p++;
                if (p < end && (*p == '+' || *p == '-')) p++;
                if (p >= end || !(*p >= '0' && *p <= '9')) goto fail;
                while (p < end && *p >= '0' && *p <= '9') p++;
            }
            v->type = 'n';
            v->len = (size_t)(p - s);
            v->s = strndup(s, v->len);
        }
        o->n++;
        WS();
        if (p < end && *p == ',') { p++; continue; }
        if (p < end && *p == '}') { p++; break; }
        goto fail;
    }
done:
    WS();
    return p == end ? 0 : -1;
fail:
    jobj_free(o);
    return -1;
#undef WS
}

/* ---- capture helpers ---------------------------------------------------- */

static int cap_fd = -1;

static void capture_begin(void) {
    cap_fd = memfd_create("log", 0);
    assert_true(cap_fd >= 0);
    hale_log_set_fd(cap_fd);
}

/* Everything logged since capture_begin, NUL-terminated; caller frees. */
static char *capture_end(size_t *len) {
    hale_log_set_fd(1);
    off_t n = lseek(cap_fd, 0, SEEK_END);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(pread(cap_fd, buf, (size_t)n, 0), n);
    buf[n] = '\0';
    close(cap_fd);
    *len = (size_t)n;
    return buf;
}

/* Capture one event's output, check it is exactly one JSON line, parse it. */
static void one_json_line(const char *out, size_t len, jobj *o) {
    assert_true(len > 0);
    assert_int_equal(out[len - 1], '\n');
    assert_null(memchr(out, '\n', len - 1)); /* exactly one line */
    assert_true(len <= HALE_LOG_LINE_MAX);
    assert_int_equal(json_parse(out, len - 1, o), 0);
}

static void init_ok(const char *spec, const char *fmt) {
    char err[256] = "";
    int rc = hale_log_init(spec, fmt, err, sizeof err);
    if (rc != 0) fail_msg("hale_log_init(%s, %s): %s", spec, fmt, err);
}

/* ---- tests -------------------------------------------------------------- */

static void test_json_fields(void **state) { /* R: O1 */
    (void)state;
    init_ok("info", "json");
    capture_begin();
    HALE_LOG(HALE_LOG_INFO, "http", "request", HALE_F_STR("method", "GET"),
             HALE_F_INT("status", 200), HALE_F_DBL("duration_ms", 1.5), HALE_F_BOOL("cached", true),
             HALE_F_UINT("bytes", UINT64_MAX), HALE_F_INT("neg", INT64_MIN),
             HALE_F_STR("nothing", NULL), HALE_F_DBL("nan", NAN), HALE_F_DBL("inf", INFINITY),
             HALE_F_DBL("tenth", 0.1));
    size_t len;
    char *out = capture_end(&len);
    jobj o;
    one_json_line(out, len, &o);
    /* built-in keys come first, in order */
    assert_string_equal(o.v[0].key, "ts");
    assert_string_equal(o.v[1].key, "level");
    assert_string_equal(o.v[2].key, "target");
    assert_string_equal(o.v[3].key, "msg");
    assert_string_equal(jget(&o, "level")->s, "info");
    assert_string_equal(jget(&o, "target")->s, "http");
    assert_string_equal(jget(&o, "msg")->s, "request");
    assert_string_equal(jget(&o, "method")->s, "GET");
    assert_int_equal(jget(&o, "status")->type, 'n');
    assert_string_equal(jget(&o, "status")->s, "200");
    assert_string_equal(jget(&o, "duration_ms")->s, "1.5");
    assert_int_equal(jget(&o, "cached")->type, 't');
    assert_string_equal(jget(&o, "bytes")->s, "18446744073709551615");
    assert_string_equal(jget(&o, "neg")->s, "-9223372036854775808");
    assert_int_equal(jget(&o, "nothing")->type, 'z');
    assert_int_equal(jget(&o, "nan")->type, 'z');
    assert_int_equal(jget(&o, "inf")->type, 'z');
    assert_string_equal(jget(&o, "tenth")->s, "0.1");
    /* ts: RFC 3339 UTC with milliseconds, and close to now */
    const char *ts = jget(&o, "ts")->s;
    assert_int_equal(strlen(ts), 24);
    struct tm tm = {0};
    int ms = -1;
    assert_int_equal(sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
                            &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms), 7);
    assert_true(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    assert_true(llabs((long long)(t - time(NULL))) <= 2);
    assert_true(ms >= 0 && ms <= 999);
    jobj_free(&o);
    free(out);
}

static void test_json_nasty_inputs(void **state) { /* R: O1 */
    (void)state;
    init_ok("info", "json");
    static const struct { const char *in; size_t n; const char *want; } cases[] = {
        {"say \"hi\"", SIZE_MAX, "say \"hi\""},
        {"back\\slash", SIZE_MAX, "back\\slash"},
        {"line1\nline2\r\n{\"forged\":1}", SIZE_MAX, "line1\nline2\r\n{\"forged\":1}"},
        {"\x01\x02\x1b[31m\x7f\t", SIZE_MAX, "\x01\x02\x1b[31m\x7f\t"},
        {"nul\0inside", 10, "nul\0inside"},
        {"bad \xff byte", SIZE_MAX, "bad \xEF\xBF\xBD byte"},
        {"overlong \xc0\x80", SIZE_MAX, "overlong \xEF\xBF\xBD\xEF\xBF\xBD"},
        {"surrogate \xed\xa0\x80", SIZE_MAX, "surrogate \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"cut \xe2\x82", SIZE_MAX, "cut \xEF\xBF\xBD\xEF\xBF\xBD"},
        {"ok h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e", SIZE_MAX,
         "ok h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = cases[i].n == SIZE_MAX ? strlen(cases[i].in) : cases[i].n;
        size_t wn = cases[i].n == SIZE_MAX ? strlen(cases[i].want) : cases[i].n;
        capture_begin();
        /* the nasty string as message (NUL-free prefix), target, key and value */
        HALE_LOG(HALE_LOG_WARN, "t\"\n", cases[i].in, HALE_F_STRN("v", cases[i].in, n),
                 HALE_F_STR("k\"\n\xff", "x"));
        size_t len;
        char *out = capture_end(&len);
        jobj o;
        one_json_line(out, len, &o);
        const jval *v = jget(&o, "v");
        assert_non_null(v);
        assert_int_equal(v->len, wn);
        assert_memory_equal(v->s, cases[i].want, wn);
        assert_string_equal(jget(&o, "target")->s, "t\"\n");
        assert_non_null(jget(&o, "k\"\n\xEF\xBF\xBD"));
        assert_true(all_utf8(out, len));
        jobj_free(&o);
        free(out);
    }
}

static void test_json_random_bytes(void **state) { /* R: O1 */
    (void)state;
    init_ok("info", "json");
    unsigned seed = 12345;
    char val[600];
    for (int round = 0; round < 3000; round++) {
        size_t n = (size_t)(rand_r(&seed) % (int)(sizeof val - 4));
        if (round % 2) { /* random bytes */
            for (size_t i = 0; i < n; i++) val[i] = (char)(rand_r(&seed) & 0xFF);
        } else { /* random valid UTF-8: all code points but surrogates */
            size_t k = 0;
            while (k < n) {
                unsigned cp = (unsigned)rand_r(&seed) % (rand_r(&seed) % 2 ? 0x80 : 0x110000);
                if (cp >= 0xD800 && cp <= 0xDFFF) continue;
                put_utf8(val, &k, cp);
            }
            n = k;
        }
        char msg[64];
        size_t mn = (size_t)(rand_r(&seed) % 63);
        for (size_t i = 0; i < mn; i++) msg[i] = (char)(1 + rand_r(&seed) % 255);
        msg[mn] = '\0';
        capture_begin();
        HALE_LOG(HALE_LOG_ERROR, "fuzz", msg, HALE_F_STRN("v", val, n), HALE_F_INT("round", round));
        size_t len;
        char *out = capture_end(&len);
        jobj o;
        one_json_line(out, len, &o);
        const jval *r = jget(&o, "round");
        assert_non_null(r);
        assert_int_equal(atoi(r->s), round);
        if (all_utf8(val, n)) { /* valid input must come back unchanged */
            assert_int_equal(jget(&o, "v")->len, n);
            assert_memory_equal(jget(&o, "v")->s, val, n);
        }
        jobj_free(&o);
        free(out);
    }
}

static void test_truncation(void **state) { /* R: O1 */
    (void)state;
    init_ok("info", "json");
    /* worst-case expansions: plain, control characters (6x), multi-byte */
    const char *fills[] = {"a", "\x01", "\xe2\x82\xac", "\xff"};
    for (size_t f = 0; f < sizeof fills / sizeof fills[0]; f++) {
        size_t unit = strlen(fills[f]), n = 100000 / unit * unit;
        char *big = malloc(n + 1);
        for (size_t i = 0; i < n; i += unit) memcpy(big + i, fills[f], unit);
        big[n] = '\0';
        uint64_t t0, t1;
        hale_log_counters(&t0, NULL);
        capture_begin();
        HALE_LOG(HALE_LOG_INFO, "big", "huge value", HALE_F_INT("before", 1),
                 HALE_F_STRN("v", big, n), HALE_F_INT("after", 2));
        size_t len;
        char *out = capture_end(&len);
        hale_log_counters(&t1, NULL);
        assert_int_equal(t1, t0 + 1);
        assert_true(len > HALE_LOG_LINE_MAX - 200); /* the space was used */
        jobj o;
        one_json_line(out, len, &o);
        const jval *v = jget(&o, "v");
        assert_non_null(v);
        const char *mark = "\xE2\x80\xA6(truncated)";
        assert_true(v->len > strlen(mark));
        assert_string_equal(v->s + v->len - strlen(mark), mark);
        if (f == 2) /* a multi-byte character is never cut in half */
            assert_null(strstr(v->s, "\xEF\xBF\xBD"));
        assert_int_equal(jget(&o, "log_truncated")->type, 't');
        assert_non_null(jget(&o, "before"));
        assert_null(jget(&o, "after")); /* later fields are dropped */
        jobj_free(&o);
        free(out);
        free(big);
    }
    /* an over-long hale_logf message */
    char *big = malloc(20000);
    memset(big, 'm', 19999);
    big[19999] = '\0';
    capture_begin();
    hale_logf(HALE_LOG_INFO, "big", "%s", big);
    size_t len;
    char *out = capture_end(&len);
    jobj o;
    one_json_line(out, len, &o);
    assert_non_null(strstr(jget(&o, "msg")->s, "(truncated)"));
    assert_int_equal(jget(&o, "log_truncated")->type, 't');
    jobj_free(&o);
    free(out);
    free(big);
}

static void test_levels_per_target(void **state) { /* R: O1 */
    (void)state;
    init_ok("info,store=debug,http=warn", "json");
    assert_true(hale_log_enabled(HALE_LOG_INFO, "app"));
    assert_true(hale_log_enabled(HALE_LOG_INFO, NULL));
    assert_false(hale_log_enabled(HALE_LOG_DEBUG, "app"));
    assert_true(hale_log_enabled(HALE_LOG_DEBUG, "store"));
    assert_true(hale_log_enabled(HALE_LOG_DEBUG, "store.pg"));   /* dotted child */
    assert_false(hale_log_enabled(HALE_LOG_DEBUG, "storefront")); /* not a child */
    assert_false(hale_log_enabled(HALE_LOG_TRACE, "store"));
    assert_false(hale_log_enabled(HALE_LOG_INFO, "http"));
    assert_true(hale_log_enabled(HALE_LOG_WARN, "http"));
    assert_true(hale_log_enabled(HALE_LOG_ERROR, "http"));

    init_ok("WARN, store=trace , store.pg=error", "text"); /* case, spaces, longest match */
    assert_false(hale_log_enabled(HALE_LOG_INFO, "app"));
    assert_true(hale_log_enabled(HALE_LOG_TRACE, "store.sqlite"));
    assert_false(hale_log_enabled(HALE_LOG_WARN, "store.pg"));
    assert_true(hale_log_enabled(HALE_LOG_ERROR, "store.pg"));

    init_ok("off,audit=info", "json");
    assert_false(hale_log_enabled(HALE_LOG_ERROR, "app"));
    assert_true(hale_log_enabled(HALE_LOG_INFO, "audit"));

    /* filtering applies to what is written, and disabled fields are not evaluated */
    init_ok("info,store=debug", "json");
    int evaluated = 0;
    capture_begin();
    HALE_LOG(HALE_LOG_DEBUG, "app", "hidden", HALE_F_INT("n", ++evaluated));
    HALE_LOG(HALE_LOG_DEBUG, "store", "shown", HALE_F_INT("n", ++evaluated));
    hale_logf(HALE_LOG_TRACE, "store", "hidden %d", 1);
    hale_logf(HALE_LOG_INFO, "app", "shown %d", 2);
    hale_log(HALE_LOG_DEBUG, "app", "hidden", NULL, 0);
    HALE_LOG(HALE_LOG_ERROR, "app", "no fields");
    size_t len;
    char *out = capture_end(&len);
    assert_int_equal(evaluated, 1);
    int lines = 0;
    for (char *p = out; *p; p = strchr(p, '\n') + 1) {
        jobj o;
        assert_int_equal(json_parse(p, (size_t)(strchr(p, '\n') - p), &o), 0);
        assert_null(strstr(jget(&o, "msg")->s, "hidden"));
        lines++;
        jobj_free(&o);
    }
    assert_int_equal(lines, 3);
    free(out);
}

static void test_bad_specs(void **state) { /* R: O1 */
    (void)state;
    static const struct { const char *spec, *fmt, *want; } bad[] = {
        {"verbose", "json", "unknown level \"verbose\""},
        {"info,store=loud", "json", "unknown level \"loud\" for target \"store\""},
        {"info,,http=warn", "json", "entry 2 is empty"},
        {"info,=debug", "json", "no target"},
        {"info,debug", "json", "default level given twice"},
        {"info,st ore=debug", "json", "bad target name \"st ore\""},
        {"info,http=warn,http=debug", "json", "target \"http\" given twice"},
        {"info", "xml", "unknown format \"xml\""},
    };
    init_ok("debug", "json");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        assert_int_equal(hale_log_init(bad[i].spec, bad[i].fmt, err, sizeof err), -1);
        if (!strstr(err, bad[i].want)) fail_msg("spec %s: error \"%s\" lacks \"%s\"", bad[i].spec, err, bad[i].want);
    }
    /* the previous configuration stays in force */
    assert_true(hale_log_enabled(HALE_LOG_DEBUG, "x"));
    assert_int_equal(hale_log_init("info", "json", NULL, 0), 0);
    assert_int_equal(hale_log_init(NULL, NULL, NULL, 0), 0); /* defaults */
    assert_true(hale_log_enabled(HALE_LOG_INFO, "x"));
    assert_false(hale_log_enabled(HALE_LOG_DEBUG, "x"));
}

static void test_text_format(void **state) { /* R: O1 */
    (void)state;
    init_ok("info", "text");
    capture_begin();
    HALE_LOG(HALE_LOG_INFO, "http", "request", HALE_F_STR("method", "GET"),
             HALE_F_INT("status", 200), HALE_F_DBL("duration_ms", 1.5),
             HALE_F_STR("path", "/a b"), HALE_F_STR("q", "say \"hi\"\\"),
             HALE_F_STR("nl", "x\ny\x1b\xff"), HALE_F_STR("empty", ""), HALE_F_STR("eq", "a=b"));
    HALE_LOG(HALE_LOG_ERROR, "", "forged\nline \xe2\x82\xac");
    size_t len;
    char *out = capture_end(&len);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    *nl = '\0';
    /* timestamp, then the same event as the JSON writer would show */
    assert_int_equal(out[23], 'Z');
    assert_string_equal(out + 24,
                        "  INFO http: request method=GET status=200 duration_ms=1.5 path=\"/a b\" "
                        "q=\"say \\\"hi\\\"\\\\\" nl=\"x\\ny\\x1b\\xff\" empty=\"\" eq=\"a=b\"");
    char *second = nl + 1;
    assert_string_equal(second + 24, " ERROR forged\\nline \xe2\x82\xac\n");
    assert_int_equal(strlen(second) + (size_t)(second - out), len); /* two lines only */
    free(out);
}

static void test_reserved_keys_errno_drops(void **state) { /* R: O1 */
    (void)state;
    init_ok("info", "json");
    capture_begin();
    errno = EAGAIN;
    HALE_LOG(HALE_LOG_INFO, "x", "m", HALE_F_STR("msg", "shadow"), HALE_F_STR("level", "x"));
    assert_int_equal(errno, EAGAIN); /* logging does not clobber errno */
    size_t len;
    char *out = capture_end(&len);
    jobj o;
    one_json_line(out, len, &o); /* the parser rejects duplicate keys */
    assert_string_equal(jget(&o, "msg")->s, "m");
    assert_string_equal(jget(&o, "_msg")->s, "shadow");
    assert_string_equal(jget(&o, "_level")->s, "x");
    jobj_free(&o);
    free(out);

    uint64_t d0, d1;
    hale_log_counters(NULL, &d0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    signal(SIGPIPE, SIG_IGN);
    hale_log_set_fd(p[1]);
    HALE_LOG(HALE_LOG_INFO, "x", "to a closed pipe");
    hale_log_set_fd(1);
    close(p[1]);
    hale_log_counters(NULL, &d1);
    assert_int_equal(d1, d0 + 1);
    hale_log_flush();
}

static void test_secret_keys_redacted(void **state) { /* R: Y7 */
    (void)state;
    for (int fmt = 0; fmt < 2; fmt++) {
        init_ok("info", fmt ? "text" : "json");
        capture_begin();
        HALE_LOG(HALE_LOG_INFO, "cfg", "loaded", HALE_F_STR("db_password", "hunter2"),
                 HALE_F_STR("Authorization", "Bearer hunter2"), HALE_F_STR("x_api_key", "hunter2"),
                 HALE_F_INT("session_token", 1234567), HALE_F_STR("redis_secret", "hunter2"),
                 HALE_F_STR("cookie", "sid=hunter2"), HALE_F_STR("route", "/v1/kv/{key}"));
        size_t len;
        char *out = capture_end(&len);
        assert_null(strstr(out, "hunter2"));
        assert_null(strstr(out, "1234567"));
        assert_non_null(strstr(out, "/v1/kv/{key}")); /* ordinary fields untouched */
        if (!fmt) {
            jobj o;
            one_json_line(out, len, &o);
            assert_string_equal(jget(&o, "db_password")->s, "[redacted]");
            assert_string_equal(jget(&o, "session_token")->s, "[redacted]");
            jobj_free(&o);
        } else {
            assert_non_null(strstr(out, " db_password=[redacted] "));
        }
        free(out);
    }
}

/* ---- concurrency: one write(2) per line --------------------------------- */

#define THREADS 8
#define PER_THREAD 400

/* Longest pad value: near the line limit, or under PIPE_BUF for pipes. */
static int max_pad = 7000;

static void *writer(void *arg) {
    int id = (int)(intptr_t)arg;
    char pad[7000];
    memset(pad, 'p', sizeof pad);
    for (int i = 0; i < PER_THREAD; i++) {
        /* sizes from tiny to near the line limit; some nasty bytes */
        size_t n = (size_t)((i * 131 + id * 17) % max_pad);
        HALE_LOG(HALE_LOG_INFO, "thr", "line\n\"x\"", HALE_F_INT("thread", id),
                 HALE_F_INT("seq", i), HALE_F_STRN("pad", pad, n));
    }
    return NULL;
}

static void run_writers(void) {
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
}

static void *run_writers_thread(void *arg) {
    (void)arg;
    run_writers();
    return NULL;
}

/* Check one line and track per-thread sequence numbers. */
static void check_line(const char *p, size_t n, int next[THREADS]) {
    jobj o;
    if (json_parse(p, n, &o) != 0) fail_msg("unparseable line (%zu bytes): %.200s", n, p);
    int id = atoi(jget(&o, "thread")->s), seq = atoi(jget(&o, "seq")->s);
    assert_true(id >= 0 && id < THREADS);
    assert_int_equal(seq, next[id]); /* nothing lost, nothing reordered within a thread */
    next[id]++;
    jobj_free(&o);
}

/* SOCK_SEQPACKET keeps write boundaries: each recv returns exactly what one
 * write(2) sent, so this proves one write per line. */
static void test_threads_seqpacket(void **state) { /* R: O1 */
    (void)state;
    init_ok("info", "json");
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    int big = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    hale_log_set_fd(sv[0]);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_writers_thread, NULL), 0);
    int next[THREADS] = {0};
    char *buf = malloc(HALE_LOG_LINE_MAX * 2);
    for (int got = 0; got < THREADS * PER_THREAD; got++) {
        ssize_t n = recv(sv[1], buf, HALE_LOG_LINE_MAX * 2, 0);
        assert_true(n > 0 && n <= HALE_LOG_LINE_MAX);
        assert_int_equal(buf[n - 1], '\n');
        assert_null(memchr(buf, '\n', (size_t)n - 1));
        check_line(buf, (size_t)n - 1, next);
    }
    pthread_join(th, NULL);
    hale_log_set_fd(1);
    for (int i = 0; i < THREADS; i++) assert_int_equal(next[i], PER_THREAD);
    free(buf);
    close(sv[0]);
    close(sv[1]);
}

/* A pipe (what a container runtime gives stdout): lines up to PIPE_BUF
 * (4096) are atomic there; longer ones are not, by the kernel's rules. */
static void test_threads_pipe(void **state) { /* R: O1 */
    (void)state;
    init_ok("info", "json");
    int p[2];
    assert_int_equal(pipe(p), 0);
    hale_log_set_fd(p[1]);
    max_pad = 3900; /* + ~130 bytes of JSON stays under 4096 */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_writers_thread, NULL), 0);
    int next[THREADS] = {0};
    size_t cap = 1 << 16, len = 0, lines = 0;
    char *buf = malloc(cap);
    while (lines < THREADS * PER_THREAD) {
        ssize_t n = read(p[0], buf + len, cap - len);
        assert_true(n > 0);
        len += (size_t)n;
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', (size_t)(buf + len - start))) != NULL) {
            assert_true(nl - start < 4096);
            check_line(start, (size_t)(nl - start), next);
            lines++;
            start = nl + 1;
        }
        len -= (size_t)(start - buf);
        memmove(buf, start, len);
    }
    pthread_join(th, NULL);
    max_pad = 7000;
    hale_log_set_fd(1);
    assert_int_equal(len, 0);
    free(buf);
    close(p[0]);
    close(p[1]);
}

/* A regular file: concurrent lines of up to ~7 KB must never interleave. */
static void test_threads_file(void **state) { /* R: O1 */
    (void)state;
    init_ok("info", "json");
    char path[] = "/tmp/hale_test_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(fcntl(fd, F_SETFL, O_APPEND), 0);
    hale_log_set_fd(fd);
    run_writers();
    hale_log_set_fd(1);
    off_t size = lseek(fd, 0, SEEK_END);
    char *all = malloc((size_t)size + 1);
    assert_int_equal(pread(fd, all, (size_t)size, 0), size);
    all[size] = '\0';
    int next[THREADS] = {0};
    size_t lines = 0;
    for (char *p = all; p < all + size;) {
        char *nl = memchr(p, '\n', (size_t)(all + size - p));
        assert_non_null(nl);
        check_line(p, (size_t)(nl - p), next);
        lines++;
        p = nl + 1;
    }
    assert_int_equal(lines, THREADS * PER_THREAD);
    free(all);
    close(fd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_fields),
        cmocka_unit_test(test_json_nasty_inputs),
        cmocka_unit_test(test_json_random_bytes),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_levels_per_target),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_text_format),
        cmocka_unit_test(test_reserved_keys_errno_drops),
        cmocka_unit_test(test_secret_keys_redacted),
        cmocka_unit_test(test_threads_seqpacket),
        cmocka_unit_test(test_threads_pipe),
        cmocka_unit_test(test_threads_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
