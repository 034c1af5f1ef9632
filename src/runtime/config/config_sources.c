/* config_sources: hale_cfg_load, the layers of C7 in order: defaults,
 * default.toml, ${RUN_ENV}.toml, APP_ variables, direct env aliases, secret
 * files. See config.h for the contract. */
#include "config_int.h"
#include "toml.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

enum { SECRET_MAX = 64 * 1024 };

static const char *env_get(char **envp, const char *name) {
    if (!envp) return NULL;
    size_t n = strlen(name);
    for (; *envp; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=') return *envp + n + 1;
    return NULL;
}

/* Read a whole regular file of at most max bytes into out (NUL-terminated).
 * Returns 0 or an errno value: EFBIG when larger than max, EINVAL when not
 * a regular file (a FIFO would block, a device would never end). */
static int read_file(const char *path, size_t max, hale_buf *out, struct stat *st) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return errno ? errno : EIO;
    int rc = 0;
    if (fstat(fd, st) < 0) {
        rc = errno ? errno : EIO;
    } else if (!S_ISREG(st->st_mode)) {
        rc = S_ISDIR(st->st_mode) ? EISDIR : EINVAL;
    } else {
        char chunk[8192];
        hale_buf_append(out, "", 0); /* a C string even when empty */
        for (;;) {
            ssize_t got = read(fd, chunk, sizeof chunk);
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) { rc = errno ? errno : EIO; break; }
            if (got == 0) break;
            if (out->len + (size_t)got > max) { rc = EFBIG; break; }
            hale_buf_append(out, chunk, (size_t)got);
        }
    }
    close(fd);
    return rc;
}

static const char *read_error(int rc, size_t max, char *buf, size_t cap) {
    if (rc == EFBIG) snprintf(buf, cap, "larger than %zu bytes", max);
    else if (rc == EINVAL) snprintf(buf, cap, "not a regular file");
    else snprintf(buf, cap, "%s", strerror(rc));
    return buf;
}

static char *join(const char *dir, const char *name) {
    hale_buf b;
    hale_buf_init(&b);
    hale_buf_puts(&b, dir);
    if (b.len && b.data[b.len - 1] != '/') hale_buf_puts(&b, "/");
    hale_buf_puts(&b, name);
    return b.data;
}

/* ---- suggestions for unknown names ------------------------------------ */

static size_t distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b), row[65];
    if (la > 64 || lb > 64) return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

/* The declared name within two edits of name, if any. Only the first 32
 * unknown names of a load get a suggestion, so that a file of thousands of
 * unknown keys stays cheap. */
static const char *suggest(hale_cfg *cfg, const char *name) {
    if (++cfg->nsuggest > 32) return NULL;
    const char *best = NULL;
    size_t bestd = 3;
    for (size_t i = 0; i < cfg->n; i++) {
        size_t d = distance(name, cfg->items[i].def->name);
        if (d < bestd) {
            bestd = d;
            best = cfg->items[i].def->name;
        }
    }
    return best;
}

/* ---- TOML files ------------------------------------------------------- */

typedef struct file_ctx {
    hale_cfg *cfg;
    const char *path;
    int layer;
} file_ctx;

/* What a TOML value was, for "got ..." in messages. */
static void describe(hale_buf *b, const toml_value *v) {
    size_t n;
    const char *s;
    switch (toml_type_of(v)) {
    case TOML_STRING:
        s = toml_str(v, &n);
        cfg_show_string(b, s, n);
        return;
    case TOML_INTEGER:
        hale_buf_printf(b, "%lld", (long long)toml_int(v));
        return;
    case TOML_BOOL:
        hale_buf_puts(b, toml_bool(v) ? "true" : "false");
        return;
    case TOML_FLOAT:
        hale_buf_printf(b, "%g", toml_float(v));
        return;
    default:
        hale_buf_printf(b, "a %s", toml_type_name(toml_type_of(v)));
        return;
    }
}

static bool int_fits(const hale_setting *d, int64_t x) {
    if (d->type == HALE_SETTING_DURATION && x < 0) return false;
    return (d->min == 0 && d->max == 0) || (x >= d->min && x <= d->max);
}

static void apply_value(file_ctx *fc, cfg_item *it, const toml_value *v) {
    const hale_setting *d = it->def;
    toml_pos p = toml_pos_of(v);
    toml_type t = toml_type_of(v);
    hale_buf where, source;
    hale_buf_init(&where);
    hale_buf_init(&source);
    hale_buf_printf(&where, "%s:%d:%d: %s", fc->path, p.line, p.col, d->name);
    hale_buf_printf(&source, "%s:%d", fc->path, p.line);
    cfg_val val = {0};
    bool ok = false;
    if (t == TOML_STRING && d->type != HALE_SETTING_INT && d->type != HALE_SETTING_BOOL) {
        size_t n;
        const char *s = toml_str(v, &n);
        if (strlen(s) == n) { /* no NUL inside */
            cfg_apply_text(fc->cfg, it, s, where.data, source.data, fc->layer, false);
            goto out;
        }
    } else if (t == TOML_INTEGER &&
               (d->type == HALE_SETTING_INT || d->type == HALE_SETTING_DURATION)) {
        val.i = toml_int(v);
        ok = int_fits(d, val.i);
    } else if (t == TOML_BOOL && d->type == HALE_SETTING_BOOL) {
        val.b = toml_bool(v);
        ok = true;
    }
    if (ok) {
        cfg_set(it, &val, source.data, fc->layer);
    } else {
        hale_buf msg;
        hale_buf_init(&msg);
        hale_buf_puts(&msg, "expected ");
        cfg_type_text(&msg, d, false);
        hale_buf_puts(&msg, ", got ");
        if (d->flags & HALE_SETTING_SECRET) hale_buf_puts(&msg, "<redacted>");
        else describe(&msg, v);
        cfg_diag(fc->cfg, HALE_DIAG_ERROR, false, "%s: %s", where.data, msg.data);
        hale_buf_free(&msg);
    }
out:
    hale_buf_free(&where);
    hale_buf_free(&source);
}

static void unknown_key(file_ctx *fc, toml_pos kp, const char *name, size_t n) {
    hale_buf b;
    hale_buf_init(&b);
    cfg_show_string(&b, name, n);
    const char *s = strlen(name) == n ? suggest(fc->cfg, name) : NULL;
    if (s) hale_buf_printf(&b, " (did you mean \"%s\"?)", s);
    cfg_diag(fc->cfg, HALE_DIAG_WARNING, true, "%s:%d:%d: unknown setting %s", fc->path,
             kp.line, kp.col, b.data);
    hale_buf_free(&b);
}

/* True when some setting lives below the table named prefix. */
static bool has_settings_below(const hale_cfg *cfg, const char *prefix, size_t n) {
    for (size_t i = 0; i < cfg->n; i++) {
        const char *name = cfg->items[i].def->name;
        if (strncmp(name, prefix, n) == 0 && name[n] == '.') return true;
    }
    return false;
}

static void walk(file_ctx *fc, const toml_value *t, hale_buf *path) {
    for (size_t i = 0; i < toml_len(t); i++) {
        size_t klen, save = path->len;
        toml_pos kp;
        const char *key = toml_table_key_at(t, i, &klen, &kp);
        const toml_value *v = toml_table_value_at(t, i);
        if (save) hale_buf_puts(path, ".");
        hale_buf_append(path, key, klen);
        /* a quoted key holding '.' or NUL is one key, never a path */
        bool plain = klen && !memchr(key, '.', klen) && !memchr(key, '\0', klen);
        cfg_item *it = plain ? cfg_find(fc->cfg, path->data) : NULL;
        if (it)
            apply_value(fc, it, v);
        else if (plain && toml_type_of(v) == TOML_TABLE &&
                 has_settings_below(fc->cfg, path->data, path->len))
            walk(fc, v, path);
        else
            unknown_key(fc, kp, path->data, path->len);
        path->len = save;
        path->data[save] = '\0';
    }
}

/* Load dir/file. A missing file is fine unless explicit_by names the flag
 * or variable that asked for this config dir. Returns false when the file
 * does not exist. */
static bool load_file(hale_cfg *cfg, const char *dir, const char *file, int layer,
                      const char *explicit_by) {
    char *path = join(dir, file), why[128];
    bool found = true;
    hale_buf data;
    hale_buf_init(&data);
    struct stat st = {0};
    size_t max = toml_default_limits.max_input;
    int rc = read_file(path, max, &data, &st);
    if (rc == ENOENT) found = false;
    if (rc == ENOENT && !explicit_by) goto out;
    if (rc) {
        if (explicit_by)
            cfg_diag(cfg, HALE_DIAG_ERROR, false, "%s: cannot read: %s (the config dir "
                     "was set by %s)", path, read_error(rc, max, why, sizeof why), explicit_by);
        else
            cfg_diag(cfg, HALE_DIAG_ERROR, false, "%s: cannot read: %s", path,
                     read_error(rc, max, why, sizeof why));
        goto out;
    }
    toml_error e;
    toml_value *root = toml_parse(data.data, data.len, NULL, &e);
    if (!root) {
        cfg_diag(cfg, HALE_DIAG_ERROR, false, "%s:%d:%d: %s", path, e.pos.line, e.pos.col, e.msg);
        goto out;
    }
    file_ctx fc = {cfg, path, layer};
    hale_buf keypath;
    hale_buf_init(&keypath);
    hale_buf_reserve(&keypath, 64);
    walk(&fc, root, &keypath);
    hale_buf_free(&keypath);
    toml_free(root);
out:
    hale_buf_free(&data);
    free(path);
    return found;
}

/* The environments every build knows; any other RUN_ENV needs a file of its
 * own in the config dir, so a typo (RUN_ENV=prod) is an error, not a
 * silent "dev without production's checks". */
static bool known_env(const char *run_env) {
    static const char *const known[] = {"dev", "test", "production", "default"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (!strcmp(run_env, known[i])) return true;
    return false;
}

/* ---- environment ------------------------------------------------------ */

/* A variable name for a message: as is when it is a plain name. */
static void show_name(hale_buf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_')) {
            cfg_show_string(b, s, n);
            return;
        }
    }
    hale_buf_append(b, s, n);
}

static void load_app_env(hale_cfg *cfg, char **envp) {
    for (; envp && *envp; envp++) {
        const char *e = *envp, *eq = strchr(e, '=');
        if (!eq || eq - e < 4 || strncasecmp(e, "APP_", 4) != 0) continue;
        hale_buf var, key;
        hale_buf_init(&var);
        hale_buf_init(&key);
        show_name(&var, e, (size_t)(eq - e));
        hale_buf_append(&key, "", 0);
        const char *r = e + 4;
        if (*r == '_') r++; /* APP__SERVER__PORT, the config crate's form */
        for (; r < eq; r++) {
            if (r[0] == '_' && r + 1 < eq && r[1] == '_') {
                hale_buf_puts(&key, ".");
                r++;
            } else {
                char c = *r >= 'A' && *r <= 'Z' ? (char)(*r - 'A' + 'a') : *r;
                hale_buf_append(&key, &c, 1);
            }
        }
        cfg_item *it = key.len ? cfg_find(cfg, key.data) : NULL;
        if (!it) {
            hale_buf msg;
            hale_buf_init(&msg);
            cfg_show_string(&msg, key.data, key.len);
            const char *s = suggest(cfg, key.data);
            if (s) {
                hale_buf_puts(&msg, " (did you mean APP_");
                for (; *s; s++) {
                    if (*s == '.') hale_buf_puts(&msg, "__");
                    else hale_buf_printf(&msg, "%c", *s >= 'a' && *s <= 'z' ? *s - 'a' + 'A' : *s);
                }
                hale_buf_puts(&msg, "?)");
            }
            cfg_diag(cfg, HALE_DIAG_WARNING, true, "%s: no setting named %s", var.data, msg.data);
            hale_buf_free(&msg);
        } else {
            if (it->layer == L_APP_ENV)
                cfg_diag(cfg, HALE_DIAG_WARNING, false, "%s and %s both set %s; the later "
                         "one, %s, wins", it->source, var.data, it->def->name, var.data);
            cfg_apply_text(cfg, it, eq + 1, var.data, var.data, L_APP_ENV, false);
        }
        hale_buf_free(&var);
        hale_buf_free(&key);
    }
}

static void load_aliases(hale_cfg *cfg, char **envp) {
    for (size_t i = 0; i < cfg->n; i++) {
        cfg_item *it = &cfg->items[i];
        const char *alias = it->def->env_alias;
        const char *v = alias ? env_get(envp, alias) : NULL;
        if (v) cfg_apply_text(cfg, it, v, alias, alias, L_ALIAS, false);
    }
}

/* ---- secret files ----------------------------------------------------- */

/* Read one secret file into it. via names the NAME_FILE variable that
 * pointed here, or is NULL for the secrets dir (where absence is fine). */
static void load_secret(hale_cfg *cfg, cfg_item *it, const char *path, const char *via) {
    char why[128];
    hale_buf data;
    hale_buf_init(&data);
    struct stat st = {0};
    int rc = read_file(path, SECRET_MAX, &data, &st);
    if (rc && !via && (rc == ENOENT || rc == ENOTDIR)) goto out;
    if (rc) {
        const char *r = read_error(rc, SECRET_MAX, why, sizeof why);
        if (via) cfg_diag(cfg, HALE_DIAG_ERROR, false, "%s: cannot read %s: %s", via, path, r);
        else cfg_diag(cfg, HALE_DIAG_ERROR, false, "%s: cannot read: %s", path, r);
        goto out;
    }
    if (st.st_mode & S_IROTH)
        cfg_diag(cfg, HALE_DIAG_WARNING, false, "%s: secret file is readable by every user "
                 "(mode %04o); make it 0400 or 0440", path, (unsigned)(st.st_mode & 07777));
    if (memchr(data.data, '\0', data.len)) {
        cfg_diag(cfg, HALE_DIAG_ERROR, false, "%s: contains a NUL byte", path);
        goto out;
    }
    while (data.len && (data.data[data.len - 1] == '\n' || data.data[data.len - 1] == '\r'))
        data.data[--data.len] = '\0';
    cfg_apply_text(cfg, it, data.data, path, path, L_SECRET, true);
out:
    hale_buf_free(&data);
}

static void load_secrets(hale_cfg *cfg, char **envp, const char *dir) {
    for (size_t i = 0; i < cfg->n; i++) {
        cfg_item *it = &cfg->items[i];
        const char *alias = it->def->env_alias;
        if (!alias || strcmp(it->def->name, "secrets.dir") == 0) continue;
        hale_buf b;
        hale_buf_init(&b);
        hale_buf_printf(&b, "%s_FILE", alias);
        const char *p = env_get(envp, b.data);
        if (p && *p) {
            load_secret(cfg, it, p, b.data);
        } else if (dir && *dir) {
            b.len = 0;
            for (const char *a = alias; *a; a++)
                hale_buf_printf(&b, "%c", *a == '_' ? '-' : (*a >= 'A' && *a <= 'Z') ? *a - 'A' + 'a' : *a);
            char *path = join(dir, b.data);
            load_secret(cfg, it, path, NULL);
            free(path);
        }
        hale_buf_free(&b);
    }
}

/* ---- the whole load --------------------------------------------------- */

static bool valid_env_name(const char *s) {
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
              (s[n] >= '0' && s[n] <= '9') || s[n] == '_' || s[n] == '-'))
            return false;
    return n > 0 && n <= 64;
}

int hale_cfg_load(hale_cfg *cfg, const hale_cfg_opts *opts) {
    static const hale_cfg_opts none;
    if (!opts) opts = &none;
    char **envp = opts->envp;
    cfg_reset(cfg);
    cfg->nsuggest = 0;

    const char *dir = opts->config_dir, *explicit_by = "--config-dir";
    if (!dir || !*dir) {
        dir = env_get(envp, "HALE_CONFIG_DIR");
        explicit_by = "HALE_CONFIG_DIR";
    }
    if (!dir || !*dir) {
        dir = "config";
        explicit_by = NULL;
    }
    free(cfg->config_dir);
    cfg->config_dir = xstrdup(dir);

    const char *run_env = opts->run_env;
    if (!run_env || !*run_env) run_env = env_get(envp, "RUN_ENV");
    if (!run_env || !*run_env) run_env = "dev";
    free(cfg->run_env);
    cfg->run_env = xstrdup(run_env);
    bool env_ok = valid_env_name(run_env);
    if (!env_ok) {
        hale_buf b;
        hale_buf_init(&b);
        cfg_show_string(&b, run_env, strlen(run_env));
        cfg_diag(cfg, HALE_DIAG_ERROR, false, "RUN_ENV: expected a name of letters, digits, "
                 "'-' and '_', got %s", b.data);
        hale_buf_free(&b);
    }

    load_file(cfg, dir, "default.toml", L_FILE_DEFAULT, explicit_by);
    if (env_ok && strcmp(run_env, "default") != 0) {
        hale_buf file;
        hale_buf_init(&file);
        hale_buf_printf(&file, "%s.toml", run_env);
        if (!load_file(cfg, dir, file.data, L_FILE_ENV, NULL) && !known_env(run_env))
            cfg_diag(cfg, HALE_DIAG_ERROR, false, "RUN_ENV=%s: unknown environment: expected dev, "
                     "test, production or a name with a file in the config dir (%s/%s is missing)",
                     run_env, dir, file.data);
        hale_buf_free(&file);
    }
    load_app_env(cfg, envp);
    load_aliases(cfg, envp);
    load_secrets(cfg, envp, opts->secret_dir ? opts->secret_dir : hale_cfg_str(cfg, "secrets.dir"));

    if (hale_cfg_bool(cfg, "config.strict")) {
        for (size_t i = 0; i < cfg->ndiag; i++) {
            cfg_diag_entry *d = &cfg->diags[i];
            if (!d->unknown || d->d.level == HALE_DIAG_ERROR) continue;
            hale_buf b;
            hale_buf_init(&b);
            hale_buf_printf(&b, "%s (an error because config.strict = true)", d->d.msg);
            free((char *)d->d.msg);
            d->d.msg = b.data;
            d->d.level = HALE_DIAG_ERROR;
        }
    }
    return hale_cfg_error_count(cfg) ? -1 : 0;
}
