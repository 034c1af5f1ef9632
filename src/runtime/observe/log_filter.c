/* log_filter: the level spec ("info,store=debug") and the per-target
 * check behind hale_log_enabled. See log.h for the promises. */
#include "log_int.h"

#include "util.h"

#include <stdatomic.h>
#include <string.h>
#include <strings.h>

#define LEVEL_OFF (-1)
#define LEVEL_UNKNOWN (-2)

typedef struct log_override {
    char name[HALE_LOG_TARGET_MAX];
    size_t len;
    int level;
} log_override;

typedef struct log_config {
    int deflt;                 /* threshold for targets with no override */
    size_t n;
    log_override ov[HALE_LOG_MAX_OVERRIDES];
} log_config;

/* Written by hale_log_filter_set only (start-up), read everywhere. g_max,
 * the loosest threshold of all, is the hot-path early exit. */
static log_config g_cfg = {.deflt = HALE_LOG_INFO, .n = 0};
static _Atomic int g_max = HALE_LOG_INFO;

/* Level from a name of n bytes; LEVEL_UNKNOWN when none. */
static int parse_level(const char *s, size_t n) {
    static const struct { const char *name; int level; } names[] = {
        {"error", HALE_LOG_ERROR}, {"warn", HALE_LOG_WARN},
        {"warning", HALE_LOG_WARN}, {"info", HALE_LOG_INFO},
        {"debug", HALE_LOG_DEBUG}, {"trace", HALE_LOG_TRACE},
        {"off", LEVEL_OFF},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == n && strncasecmp(s, names[i].name, n) == 0)
            return names[i].level;
    return LEVEL_UNKNOWN;
}

static void trim(const char **s, size_t *n) {
    while (*n && (**s == ' ' || **s == '\t')) { (*s)++; (*n)--; }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t')) (*n)--;
}

static bool target_char_ok(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.' || c == ':';
}

#define BAD_LEVEL_HINT "expected error, warn, info, debug, trace or off"

/* Parse one comma-separated entry of the level spec into cfg. */
static int parse_entry(log_config *cfg, bool *have_default, const char *s, size_t n,
                       unsigned idx, char *err, size_t errlen) {
    trim(&s, &n);
    if (n == 0)
        return hale_err(err, errlen, "log level: entry %u is empty", idx);
    const char *eq = memchr(s, '=', n);
    if (!eq) {
        int lv = parse_level(s, n);
        if (lv == LEVEL_UNKNOWN)
            return hale_err(err, errlen, "log level: unknown level \"%.*s\" (" BAD_LEVEL_HINT ")",
                            (int)(n > 64 ? 64 : n), s);
        if (*have_default)
            return hale_err(err, errlen, "log level: default level given twice (\"%.*s\")",
                            (int)(n > 64 ? 64 : n), s);
        *have_default = true;
        cfg->deflt = lv;
        return 0;
    }
    const char *t = s, *l = eq + 1;
    size_t tn = (size_t)(eq - s), ln = n - tn - 1;
    trim(&t, &tn);
    trim(&l, &ln);
    if (tn == 0)
        return hale_err(err, errlen, "log level: entry %u \"%.*s\" has no target before '='",
                        idx, (int)(n > 64 ? 64 : n), s);
    for (size_t i = 0; i < tn; i++)
        if (!target_char_ok(t[i]))
            return hale_err(err, errlen,
                            "log level: bad target name \"%.*s\" (letters, digits, _ - . : only)",
                            (int)(tn > 64 ? 64 : tn), t);
    if (tn >= HALE_LOG_TARGET_MAX)
        return hale_err(err, errlen, "log level: target name \"%.*s...\" longer than %d bytes",
                        32, t, HALE_LOG_TARGET_MAX - 1);
    int lv = parse_level(l, ln);
    if (lv == LEVEL_UNKNOWN)
        return hale_err(err, errlen,
                        "log level: unknown level \"%.*s\" for target \"%.*s\" (" BAD_LEVEL_HINT ")",
                        (int)(ln > 64 ? 64 : ln), l, (int)tn, t);
    for (size_t i = 0; i < cfg->n; i++)
        if (cfg->ov[i].len == tn && memcmp(cfg->ov[i].name, t, tn) == 0)
            return hale_err(err, errlen, "log level: target \"%.*s\" given twice", (int)tn, t);
    if (cfg->n == HALE_LOG_MAX_OVERRIDES)
        return hale_err(err, errlen, "log level: more than %d target overrides",
                        HALE_LOG_MAX_OVERRIDES);
    log_override *o = &cfg->ov[cfg->n++];
    memcpy(o->name, t, tn);
    o->name[tn] = '\0';
    o->len = tn;
    o->level = lv;
    return 0;
}

int hale_log_filter_set(const char *level_spec, char *err, size_t errlen) {
    log_config cfg = {.deflt = HALE_LOG_INFO, .n = 0};
    bool have_default = false;
    if (level_spec && *level_spec) {
        const char *p = level_spec;
        for (unsigned idx = 1;; idx++) {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            if (parse_entry(&cfg, &have_default, p, n, idx, err, errlen) < 0) return -1;
            if (!comma) break;
            p = comma + 1;
        }
    }
    int max = cfg.deflt;
    for (size_t i = 0; i < cfg.n; i++)
        if (cfg.ov[i].level > max) max = cfg.ov[i].level;
    g_cfg = cfg;
    atomic_store_explicit(&g_max, max, memory_order_relaxed);
    return 0;
}

bool hale_log_enabled(hale_log_level lvl, const char *target) {
    if ((int)lvl > atomic_load_explicit(&g_max, memory_order_relaxed)) return false;
    if (g_cfg.n == 0 || !target) return (int)lvl <= g_cfg.deflt;
    /* Longest override that equals target or is a dotted prefix of it. */
    int level = g_cfg.deflt;
    size_t best = 0;
    for (size_t i = 0; i < g_cfg.n; i++) {
        const log_override *o = &g_cfg.ov[i];
        if (o->len >= best && strncmp(target, o->name, o->len) == 0 &&
            (target[o->len] == '\0' || target[o->len] == '.')) {
            level = o->level;
            best = o->len;
        }
    }
    return (int)lvl <= level;
}
