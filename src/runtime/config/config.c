/* config: declarations, typed values, getters and diagnostics.
 * See config.h; loading is in config_sources.c, output in config_print.c. */
#include "config_int.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The settings this module owns. */
static const hale_setting cfg_own[] = {
    {"config.strict", HALE_SETTING_BOOL, "false", 0, 0, NULL, NULL, 0,
     "Treat unknown keys in config files and APP_ variables that name no "
     "setting as errors instead of warnings.", HALE_NO_FIELD},
    {"secrets.dir", HALE_SETTING_STRING, "/var/secrets", 0, 0, NULL, "HALE_SECRET_DIR", 0,
     "Directory of secret files, one per setting that has an env name, named "
     "in kebab case (DATABASE_URL -> database-url); empty disables it.", HALE_NO_FIELD},
};

hale_cfg *hale_cfg_new(void) {
    hale_cfg *cfg = xcalloc(1, sizeof *cfg);
    hale_cfg_declare(cfg, cfg_own, sizeof cfg_own / sizeof cfg_own[0]);
    return cfg;
}

static void val_free(cfg_val *v) {
    free(v->s);
    v->s = NULL;
}

static void diags_clear(hale_cfg *cfg) {
    for (size_t i = 0; i < cfg->ndiag; i++) free((char *)cfg->diags[i].d.msg);
    cfg->ndiag = 0;
}

void hale_cfg_free(hale_cfg *cfg) {
    if (!cfg) return;
    for (size_t i = 0; i < cfg->n; i++) {
        val_free(&cfg->items[i].val);
        free(cfg->items[i].source);
    }
    free(cfg->items);
    diags_clear(cfg);
    free(cfg->diags);
    free(cfg->run_env);
    free(cfg->config_dir);
    free(cfg);
}

cfg_item *cfg_find(const hale_cfg *cfg, const char *name) {
    for (size_t i = 0; i < cfg->n; i++)
        if (strcmp(cfg->items[i].def->name, name) == 0) return &cfg->items[i];
    return NULL;
}

/* ---- parsing text ----------------------------------------------------- */

static int parse_i64(const char *s, int64_t *out) {
    bool neg = false;
    if (*s == '+' || *s == '-') neg = *s++ == '-';
    if (!*s) return -1;
    int64_t x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        int d = *s - '0';
        if (__builtin_mul_overflow(x, 10, &x) ||
            __builtin_add_overflow(x, neg ? -d : d, &x))
            return -1;
    }
    *out = x;
    return 0;
}

static bool bounded(const hale_setting *d) { return d->min != 0 || d->max != 0; }

static int in_range(const hale_setting *d, int64_t x) {
    return !bounded(d) || (x >= d->min && x <= d->max) ? 0 : -1;
}

static int parse_ms(const char *s, int64_t *out) {
    static const struct { const char *unit; int64_t mul; } units[] = {
        {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
    };
    size_t nd = 0;
    while (s[nd] >= '0' && s[nd] <= '9') nd++;
    if (nd == 0 || nd > 18) return -1;
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        if (strcasecmp(s + nd, units[u].unit) != 0) continue;
        char num[20];
        memcpy(num, s, nd);
        num[nd] = '\0';
        int64_t x;
        if (parse_i64(num, &x) < 0 || __builtin_mul_overflow(x, units[u].mul, &x)) return -1;
        *out = x;
        return 0;
    }
    return -1;
}

static int parse_bool(const char *s, bool *out) {
    static const char *yes[] = {"true", "1", "yes", "on"}, *no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) { *out = true; return 0; }
        if (strcasecmp(s, no[i]) == 0) { *out = false; return 0; }
    }
    return -1;
}

int cfg_parse_text(const hale_setting *d, const char *text, cfg_val *out) {
    memset(out, 0, sizeof *out);
    switch (d->type) {
    case HALE_SETTING_STRING:
        out->s = xstrdup(text);
        return 0;
    case HALE_SETTING_INT:
        return parse_i64(text, &out->i) < 0 ? -1 : in_range(d, out->i);
    case HALE_SETTING_DURATION:
        return parse_ms(text, &out->i) < 0 || out->i < 0 ? -1 : in_range(d, out->i);
    case HALE_SETTING_BOOL:
        return parse_bool(text, &out->b);
    case HALE_SETTING_ENUM: {
        size_t tl = strlen(text);
        for (const char *c = d->choices; *c;) {
            size_t n = strcspn(c, "|");
            if (n == tl && strncasecmp(c, text, n) == 0) {
                out->s = xstrndup(c, n);
                return 0;
            }
            c += n + (c[n] == '|');
        }
        return -1;
    }
    }
    return -1;
}

void cfg_fmt_ms(char *buf, size_t cap, int64_t ms) {
    if (ms != 0 && ms % 3600000 == 0) snprintf(buf, cap, "%lldh", (long long)(ms / 3600000));
    else if (ms != 0 && ms % 60000 == 0) snprintf(buf, cap, "%lldm", (long long)(ms / 60000));
    else if (ms != 0 && ms % 1000 == 0) snprintf(buf, cap, "%llds", (long long)(ms / 1000));
    else snprintf(buf, cap, "%lldms", (long long)ms);
}

void cfg_type_text(hale_buf *b, const hale_setting *d, bool doc) {
    /* an error message: "an integer 1-65535"; the settings table:
     * "integer 1..65535", choices in backticks */
    const char *dash = doc ? ".." : "-";
    char lo[32], hi[32];
    switch (d->type) {
    case HALE_SETTING_STRING:
        hale_buf_puts(b, doc ? "string" : "a string");
        return;
    case HALE_SETTING_INT:
        hale_buf_puts(b, doc ? "integer" : "an integer");
        if (!bounded(d)) return;
        if (d->min < 0 && !doc)
            hale_buf_printf(b, " from %lld to %lld", (long long)d->min, (long long)d->max);
        else
            hale_buf_printf(b, " %lld%s%lld", (long long)d->min, dash, (long long)d->max);
        return;
    case HALE_SETTING_DURATION:
        hale_buf_puts(b, doc ? "duration" : "a duration");
        if (bounded(d)) {
            cfg_fmt_ms(lo, sizeof lo, d->min);
            cfg_fmt_ms(hi, sizeof hi, d->max);
            hale_buf_printf(b, " %s%s%s", lo, dash, hi);
        }
        if (!doc) hale_buf_puts(b, " (like 250ms, 5s, 2m, 1h; a bare number is ms)");
        return;
    case HALE_SETTING_BOOL:
        hale_buf_puts(b, doc ? "boolean" : "true or false");
        return;
    case HALE_SETTING_ENUM:
        hale_buf_puts(b, "one of ");
        for (const char *c = d->choices; *c;) {
            size_t n = strcspn(c, "|");
            hale_buf_printf(b, doc ? "%s`%.*s`" : "%s%.*s", c == d->choices ? "" : ", ", (int)n, c);
            c += n + (c[n] == '|');
        }
        return;
    }
}

void cfg_show_string(hale_buf *b, const char *s, size_t n) {
    enum { MAX_SHOWN = 64 };
    hale_buf_puts(b, "\"");
    size_t i = 0;
    for (; i < n && i < MAX_SHOWN; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') hale_buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7F) hale_buf_printf(b, "\\x%02x", c);
        else hale_buf_append(b, &s[i], 1);
    }
    /* do not end inside a UTF-8 sequence */
    while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) hale_buf_append(b, &s[i++], 1);
    hale_buf_puts(b, i < n ? "...\"" : "\"");
}

/* ---- values and diagnostics ------------------------------------------- */

void cfg_set(cfg_item *it, cfg_val *v, const char *source, int layer) {
    val_free(&it->val);
    it->val = *v;
    v->s = NULL;
    free(it->source);
    it->source = xstrdup(source);
    it->layer = layer;
}

bool cfg_is_redacted(const cfg_item *it) {
    return (it->def->flags & HALE_SETTING_SECRET) || it->layer == L_SECRET;
}

int cfg_apply_text(hale_cfg *cfg, cfg_item *it, const char *text, const char *where,
                   const char *source, int layer, bool secret_source) {
    cfg_val v;
    if (cfg_parse_text(it->def, text, &v) == 0) {
        cfg_set(it, &v, source, layer);
        return 0;
    }
    val_free(&v);
    hale_buf b;
    hale_buf_init(&b);
    hale_buf_puts(&b, "expected ");
    cfg_type_text(&b, it->def, false);
    hale_buf_puts(&b, ", got ");
    if ((it->def->flags & HALE_SETTING_SECRET) || secret_source)
        hale_buf_puts(&b, "<redacted>");
    else
        cfg_show_string(&b, text, strlen(text));
    cfg_diag(cfg, HALE_DIAG_ERROR, false, "%s: %s", where, b.data);
    hale_buf_free(&b);
    return -1;
}

__attribute__((format(printf, 4, 0)))
static void diag_vadd(hale_cfg *cfg, hale_diag_level level, bool unknown, const char *fmt,
                      va_list ap) {
    hale_buf b;
    hale_buf_init(&b);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    if (n >= 0) {
        hale_buf_reserve(&b, (size_t)n);
        vsnprintf(b.data, (size_t)n + 1, fmt, ap2);
        b.len = (size_t)n;
    }
    va_end(ap2);
    if (cfg->ndiag == cfg->capdiag) {
        cfg->capdiag = cfg->capdiag ? cfg->capdiag * 2 : 8;
        cfg->diags = xrealloc(cfg->diags, cfg->capdiag * sizeof(cfg_diag_entry));
    }
    cfg_diag_entry *d = &cfg->diags[cfg->ndiag++];
    d->d.level = level;
    d->d.msg = b.data ? b.data : xstrdup("");
    d->unknown = unknown;
}

void cfg_diag(hale_cfg *cfg, hale_diag_level level, bool unknown, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(cfg, level, unknown, fmt, ap);
    va_end(ap);
}

void hale_cfg_add_diag(hale_cfg *cfg, hale_diag_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(cfg, level, false, fmt, ap);
    va_end(ap);
}

size_t hale_cfg_diag_count(const hale_cfg *cfg) { return cfg->ndiag; }

const hale_cfg_diag *hale_cfg_diag_at(const hale_cfg *cfg, size_t i) {
    if (i >= cfg->ndiag) hale_panic("config: diagnostic %zu out of range", i);
    return &cfg->diags[i].d;
}

size_t hale_cfg_error_count(const hale_cfg *cfg) {
    size_t n = 0;
    for (size_t i = 0; i < cfg->ndiag; i++) n += cfg->diags[i].d.level == HALE_DIAG_ERROR;
    return n;
}

void cfg_reset(hale_cfg *cfg) {
    diags_clear(cfg);
    for (size_t i = 0; i < cfg->n; i++) {
        cfg_item *it = &cfg->items[i];
        cfg_val v;
        if (cfg_parse_text(it->def, it->def->def ? it->def->def : "", &v) < 0)
            hale_panic("config: default of %s does not parse", it->def->name);
        cfg_set(it, &v, "default", L_DEFAULT);
    }
}

/* ---- declarations ----------------------------------------------------- */

static bool valid_name(const char *s) {
    if (!*s || *s == '.') return false;
    for (; *s; s++) {
        if (*s == '.' && (s[1] == '.' || s[1] == '\0')) return false;
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '.'))
            return false;
    }
    return true;
}

static bool valid_alias(const char *s) {
    if (!*s) return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_')) return false;
    return true;
}

/* True when a is b followed by '.' (a setting cannot also be a table). */
static bool nests(const char *a, const char *b) {
    size_t n = strlen(b);
    return strncmp(a, b, n) == 0 && a[n] == '.';
}

void hale_cfg_declare(hale_cfg *cfg, const hale_setting *table, size_t n) {
    for (size_t k = 0; k < n; k++) {
        const hale_setting *d = &table[k];
        if (!d->name || !valid_name(d->name))
            hale_panic("config: bad setting name \"%s\"", d->name ? d->name : "(null)");
        if (d->type > HALE_SETTING_ENUM) hale_panic("config: %s: bad type", d->name);
        if (d->type != HALE_SETTING_STRING && !d->def)
            hale_panic("config: %s: a default is required", d->name);
        if ((d->type == HALE_SETTING_INT || d->type == HALE_SETTING_DURATION) && d->min > d->max)
            hale_panic("config: %s: min > max", d->name);
        if (d->type == HALE_SETTING_ENUM && (!d->choices || !*d->choices))
            hale_panic("config: %s: an enum needs choices", d->name);
        if (d->env_alias && !valid_alias(d->env_alias))
            hale_panic("config: %s: bad env name \"%s\"", d->name, d->env_alias);
        for (size_t i = 0; i < cfg->n; i++) {
            const hale_setting *o = cfg->items[i].def;
            if (strcmp(o->name, d->name) == 0 || nests(o->name, d->name) || nests(d->name, o->name))
                hale_panic("config: %s clashes with %s", d->name, o->name);
            if (d->env_alias && o->env_alias && strcmp(d->env_alias, o->env_alias) == 0)
                hale_panic("config: %s and %s share env name %s", d->name, o->name, d->env_alias);
        }
        cfg_check_binding(d);
        cfg_val v;
        if (cfg_parse_text(d, d->def ? d->def : "", &v) < 0)
            hale_panic("config: %s: default \"%s\" does not fit its type", d->name, d->def);
        if (cfg->n == cfg->cap) {
            cfg->cap = cfg->cap ? cfg->cap * 2 : 32;
            cfg->items = xrealloc(cfg->items, cfg->cap * sizeof(cfg_item));
        }
        cfg_item *it = &cfg->items[cfg->n++];
        memset(it, 0, sizeof *it);
        it->def = d;
        cfg_set(it, &v, "default", L_DEFAULT);
    }
}

/* ---- getters ---------------------------------------------------------- */

static const cfg_item *get(const hale_cfg *cfg, const char *name, unsigned types,
                           const char *getter) {
    const cfg_item *it = cfg_find(cfg, name);
    if (!it) hale_panic("config: %s(\"%s\"): no such setting", getter, name);
    if (!(types & (1u << it->def->type)))
        hale_panic("config: %s(\"%s\"): wrong type for this setting", getter, name);
    return it;
}

int64_t hale_cfg_int(const hale_cfg *cfg, const char *name) {
    return get(cfg, name, 1u << HALE_SETTING_INT, "hale_cfg_int")->val.i;
}

int64_t hale_cfg_ms(const hale_cfg *cfg, const char *name) {
    return get(cfg, name, 1u << HALE_SETTING_DURATION, "hale_cfg_ms")->val.i;
}

const char *hale_cfg_str(const hale_cfg *cfg, const char *name) {
    return get(cfg, name, 1u << HALE_SETTING_STRING | 1u << HALE_SETTING_ENUM, "hale_cfg_str")
        ->val.s;
}

bool hale_cfg_bool(const hale_cfg *cfg, const char *name) {
    return get(cfg, name, 1u << HALE_SETTING_BOOL, "hale_cfg_bool")->val.b;
}

const char *hale_cfg_source(const hale_cfg *cfg, const char *name) {
    return get(cfg, name, ~0u, "hale_cfg_source")->source;
}

bool hale_cfg_is_default(const hale_cfg *cfg, const char *name) {
    return get(cfg, name, ~0u, "hale_cfg_is_default")->layer == L_DEFAULT;
}

const char *hale_cfg_run_env(const hale_cfg *cfg) { return cfg->run_env ? cfg->run_env : "dev"; }

const char *hale_cfg_config_dir(const hale_cfg *cfg) {
    return cfg->config_dir ? cfg->config_dir : "config";
}
