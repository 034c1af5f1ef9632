/* config_print: `hale config` output, diagnostics and the README settings
 * table. See config.h. Every value goes through shown_value(), the one
 * place that decides whether it is redacted. */
#include "config_int.h"

#include <stdlib.h>
#include <string.h>

/* TOML-style quoted string: "a\"b". */
static void quote(hale_buf *b, const char *s) {
    hale_buf_puts(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') hale_buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7F) hale_buf_printf(b, "\\u%04x", c);
        else hale_buf_append(b, s, 1);
    }
    hale_buf_puts(b, "\"");
}

/* The effective value as printed: <redacted> for secrets that are set. */
static void shown_value(hale_buf *b, const cfg_item *it) {
    const hale_setting *d = it->def;
    bool is_str = d->type == HALE_SETTING_STRING || d->type == HALE_SETTING_ENUM;
    if (cfg_is_redacted(it) && !(is_str && it->val.s[0] == '\0')) {
        hale_buf_puts(b, "<redacted>");
        return;
    }
    char tmp[32];
    switch (d->type) {
    case HALE_SETTING_STRING:
    case HALE_SETTING_ENUM:
        quote(b, it->val.s);
        return;
    case HALE_SETTING_INT:
        hale_buf_printf(b, "%lld", (long long)it->val.i);
        return;
    case HALE_SETTING_DURATION:
        cfg_fmt_ms(tmp, sizeof tmp, it->val.i);
        hale_buf_puts(b, tmp);
        return;
    case HALE_SETTING_BOOL:
        hale_buf_puts(b, it->val.b ? "true" : "false");
        return;
    }
}

/* Display width: characters, not bytes. */
static size_t width(const char *s) {
    size_t w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static void pad(FILE *out, const char *s, size_t w) {
    fputs(s, out);
    for (size_t n = width(s); n < w; n++) fputc(' ', out);
}

void hale_cfg_print(const hale_cfg *cfg, FILE *out) {
    enum { MAX_VALUE_COL = 40 };
    char **vals = xcalloc(cfg->n ? cfg->n : 1, sizeof(char *));
    size_t wn = strlen("SETTING"), wv = strlen("VALUE");
    for (size_t i = 0; i < cfg->n; i++) {
        hale_buf b;
        hale_buf_init(&b);
        shown_value(&b, &cfg->items[i]);
        vals[i] = b.data;
        size_t n = width(cfg->items[i].def->name), v = width(vals[i]);
        if (n > wn) wn = n;
        if (v > wv && v <= MAX_VALUE_COL) wv = v;
    }
    fprintf(out, "# RUN_ENV=%s, config dir: %s%s%s\n", hale_cfg_run_env(cfg), hale_cfg_config_dir(cfg),
            cfg->build_info ? "; build: " : "", cfg->build_info ? cfg->build_info : "");
    pad(out, "SETTING", wn + 2);
    pad(out, "VALUE", wv + 2);
    fputs("SOURCE\n", out);
    for (size_t i = 0; i < cfg->n; i++) {
        pad(out, cfg->items[i].def->name, wn + 2);
        pad(out, vals[i], wv + 2);
        fprintf(out, "%s\n", cfg->items[i].source);
        free(vals[i]);
    }
    free(vals);
}

void hale_cfg_print_diags(const hale_cfg *cfg, FILE *out) {
    for (size_t i = 0; i < cfg->ndiag; i++)
        fprintf(out, "%s: %s\n", cfg->diags[i].d.level == HALE_DIAG_ERROR ? "error" : "warning",
                cfg->diags[i].d.msg);
}

/* Markdown table cell text: '|' escaped, newlines flattened. */
static void cell(hale_buf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '|') hale_buf_puts(b, "\\|");
        else if (*s == '\n') hale_buf_puts(b, " ");
        else hale_buf_append(b, s, 1);
    }
}

static void type_text(hale_buf *b, const hale_setting *d) {
    cfg_type_text(b, d, true);
    if (d->flags & HALE_SETTING_SECRET) hale_buf_puts(b, ", secret");
    if (d->flags & HALE_SETTING_RELOADABLE) hale_buf_puts(b, ", reloadable");
}

void hale_cfg_markdown_table(const hale_cfg *cfg, FILE *out) {
    fputs("| Setting | Type | Default | Env | Description |\n"
          "|---|---|---|---|---|\n", out);
    for (size_t i = 0; i < cfg->n; i++) {
        const hale_setting *d = cfg->items[i].def;
        hale_buf b;
        hale_buf_init(&b);
        hale_buf_printf(&b, "| `%s` | ", d->name);
        type_text(&b, d);
        hale_buf_puts(&b, " | ");
        const char *def = d->def ? d->def : "";
        char tmp[32] = "";
        if (d->type == HALE_SETTING_DURATION) {
            cfg_val v;
            if (cfg_parse_text(d, def, &v) == 0) {
                cfg_fmt_ms(tmp, sizeof tmp, v.i);
                def = tmp;
            }
        }
        hale_buf_puts(&b, "`");
        if (*def) cell(&b, def);
        else hale_buf_puts(&b, "\"\"");
        hale_buf_puts(&b, "` | ");
        if (d->env_alias) hale_buf_printf(&b, "`%s`", d->env_alias);
        hale_buf_puts(&b, " | ");
        cell(&b, d->help ? d->help : "");
        hale_buf_puts(&b, " |\n");
        fputs(b.data, out);
        hale_buf_free(&b);
    }
}

/* "# " comment lines of at most 78 columns, broken at spaces. */
static void comment(FILE *out, const char *s) {
    enum { WIDTH = 76 };
    while (*s) {
        size_t n = strlen(s), cut = n;
        if (n > WIDTH) {
            cut = WIDTH;
            while (cut > 0 && s[cut] != ' ') cut--;
            if (cut == 0) cut = strcspn(s, " ");
        }
        fprintf(out, "# %.*s\n", (int)cut, s);
        s += cut;
        while (*s == ' ') s++;
    }
}

/* The section of a setting: "server" of "server.port" (names have one dot
 * at least below the section; checked by hale_cfg_declare). */
static size_t section_len(const char *name) { return strcspn(name, "."); }

void hale_cfg_print_toml(const hale_cfg *cfg, FILE *out) {
    fputs("# Every setting with its built-in default, written by `hale config --toml`\n"
          "# (do not edit by hand: change the settings table and run it again).\n"
          "# Sources override in this order (lowest first): built-in defaults <\n"
          "# default.toml < ${RUN_ENV}.toml < APP_ variables < direct variables\n"
          "# (PORT, DATABASE_URL...) < secret files. `hale config` shows each\n"
          "# effective value and where it came from.\n", out);
    bool *done = xcalloc(cfg->n ? cfg->n : 1, sizeof *done);
    for (size_t i = 0; i < cfg->n; i++) {
        if (done[i]) continue;
        const char *sec = cfg->items[i].def->name;
        size_t sl = section_len(sec);
        fprintf(out, "\n[%.*s]\n", (int)sl, sec);
        for (size_t j = i; j < cfg->n; j++) {
            const hale_setting *d = cfg->items[j].def;
            if (done[j] || section_len(d->name) != sl || strncmp(d->name, sec, sl) != 0) continue;
            done[j] = true;
            hale_buf b;
            hale_buf_init(&b);
            hale_buf_puts(&b, d->help ? d->help : "");
            if (d->env_alias) hale_buf_printf(&b, " (env %s)", d->env_alias);
            comment(out, b.data);
            hale_buf_free(&b);
            hale_buf_init(&b);
            cfg_val v;
            if (cfg_parse_text(d, d->def ? d->def : "", &v) < 0) hale_panic("config: %s: bad default", d->name);
            if (d->type == HALE_SETTING_DURATION) {
                char tmp[32];
                cfg_fmt_ms(tmp, sizeof tmp, v.i);
                quote(&b, tmp);
            } else if (d->type == HALE_SETTING_STRING || d->type == HALE_SETTING_ENUM) {
                quote(&b, v.s);
            } else if (d->type == HALE_SETTING_BOOL) {
                hale_buf_puts(&b, v.b ? "true" : "false");
            } else {
                hale_buf_printf(&b, "%lld", (long long)v.i);
            }
            fprintf(out, "%s = %s\n", d->name + sl + 1, b.data);
            hale_buf_free(&b);
            free(v.s);
        }
    }
    free(done);
}

void hale_cfg_set_build_info(hale_cfg *cfg, const char *info) { cfg->build_info = info; }
