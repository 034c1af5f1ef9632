/* Tests for src/runtime/config: sources, precedence, coercion, secrets,
 * diagnostics and output (R: C1-C7, Y7). Every test runs against its own
 * temporary directory and its own envp; nothing reads the real environment. */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

static const hale_setting app[] = {
    {"server.host", HALE_SETTING_STRING, "0.0.0.0", 0, 0, NULL, "HOST", 0, "Address to listen on."},
    {"server.port", HALE_SETTING_INT, "8080", 1, 65535, NULL, "PORT", 0, "TCP port for the API."},
    {"server.request_timeout", HALE_SETTING_DURATION, "30s", 1, 3600000, NULL, NULL,
     HALE_SETTING_RELOADABLE, "Deadline for one request."},
    {"database.url", HALE_SETTING_STRING, "sqlite://./data/hale.db", 0, 0, NULL, "DATABASE_URL",
     HALE_SETTING_SECRET, "sqlite://path | postgres://..."},
    {"database.max_connections", HALE_SETTING_INT, "10", 1, 1000, NULL, NULL, 0, "Pool size."},
    {"redis.url", HALE_SETTING_STRING, "", 0, 0, NULL, "REDIS_URL", HALE_SETTING_SECRET,
     "Redis URL; empty disables the cache."},
    {"redis.pool_size", HALE_SETTING_INT, "8", 1, 256, NULL, NULL, 0, "Redis connections."},
    {"log.level", HALE_SETTING_ENUM, "info", 0, 0, "error|warn|info|debug|trace", "LOG_LEVEL",
     HALE_SETTING_RELOADABLE, "Minimum level."},
    {"log.format", HALE_SETTING_ENUM, "text", 0, 0, "json|text", "LOG_FORMAT", 0, "Line format."},
    {"metrics.enabled", HALE_SETTING_BOOL, "true", 0, 0, NULL, NULL, 0, "Serve /metrics."},
    {"auth.pin", HALE_SETTING_INT, "0", 0, 999999, NULL, "AUTH_PIN", HALE_SETTING_SECRET,
     "A typed secret."},
};

typedef struct fx {
    char dir[64];
    char conf[96];
    char sec[96];
    hale_cfg *cfg;
} fx;

static void put_n(const char *dir, const char *name, const char *content, size_t n,
                  mode_t mode) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, n), (ssize_t)n);
    fchmod(fd, mode);
    close(fd);
}

static void put(const char *dir, const char *name, const char *content, mode_t mode) {
    put_n(dir, name, content, strlen(content), mode);
}

static int setup(void **state) {
    fx *f = xcalloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/hale-cfg-test-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->conf, sizeof f->conf, "%s/config", f->dir);
    snprintf(f->sec, sizeof f->sec, "%s/secrets", f->dir);
    mkdir(f->conf, 0755);
    mkdir(f->sec, 0700);
    put(f->conf, "default.toml", "", 0644);
    f->cfg = hale_cfg_new();
    hale_cfg_declare(f->cfg, app, sizeof app / sizeof app[0]);
    *state = f;
    return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static int teardown(void **state) {
    fx *f = *state;
    hale_cfg_free(f->cfg);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Load with the fixture's config and secrets dirs and the given env. */
static int load(fx *f, const char **env) {
    hale_cfg_opts o = {f->conf, NULL, f->sec, (char **)env};
    return hale_cfg_load(f->cfg, &o);
}

static bool has_diag(const hale_cfg *cfg, hale_diag_level level, const char *msg) {
    for (size_t i = 0; i < hale_cfg_diag_count(cfg); i++) {
        const hale_cfg_diag *d = hale_cfg_diag_at(cfg, i);
        if (d->level == level && strcmp(d->msg, msg) == 0) return true;
    }
    return false;
}

#define assert_diag(cfg, level, msg)                                                  \
    do {                                                                              \
        if (!has_diag(cfg, level, msg)) {                                             \
            hale_cfg_print_diags(cfg, stderr);                                        \
            fail_msg("missing diagnostic: %s", msg);                                  \
        }                                                                             \
    } while (0)

/* What fn writes, as a malloc'ed string. (tmpfile rather than
 * open_memstream: gcc's -Wdangling-pointer misreads the latter.) */
static char *capture(void (*fn)(const hale_cfg *, FILE *), const hale_cfg *cfg) {
    FILE *t = tmpfile();
    assert_non_null(t);
    fn(cfg, t);
    long n = ftell(t);
    rewind(t);
    char *s = xmalloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, t), (size_t)n);
    s[n] = '\0';
    fclose(t);
    return s;
}

static void print_all(const hale_cfg *cfg, FILE *out) {
    hale_cfg_print(cfg, out);
    hale_cfg_print_diags(cfg, out);
    hale_cfg_markdown_table(cfg, out);
}

/* Everything the module can print: hale config, diagnostics, README table. */
static char *all_output(const hale_cfg *cfg) { return capture(print_all, cfg); }
static char *printed(const hale_cfg *cfg) { return capture(hale_cfg_print, cfg); }

/* ---- C1: direct environment variables --------------------------------- */

static void test_env_aliases(void **state) { /* R: C1 */
    fx *f = *state;
    const char *env[] = {"DATABASE_URL=postgres://db/app", "REDIS_URL=redis://cache:6379",
                         "PORT=9001", "LOG_LEVEL=DEBUG", "LOG_FORMAT=json", "HOST=127.0.0.1",
                         NULL};
    assert_int_equal(load(f, env), 0);
    assert_string_equal(hale_cfg_str(f->cfg, "database.url"), "postgres://db/app");
    assert_string_equal(hale_cfg_str(f->cfg, "redis.url"), "redis://cache:6379");
    assert_int_equal(hale_cfg_int(f->cfg, "server.port"), 9001);
    assert_string_equal(hale_cfg_str(f->cfg, "log.level"), "debug"); /* canonical */
    assert_string_equal(hale_cfg_str(f->cfg, "log.format"), "json");
    assert_string_equal(hale_cfg_str(f->cfg, "server.host"), "127.0.0.1");
    assert_string_equal(hale_cfg_source(f->cfg, "server.port"), "PORT");
    assert_string_equal(hale_cfg_source(f->cfg, "database.url"), "DATABASE_URL");
    assert_int_equal(hale_cfg_diag_count(f->cfg), 0);
}

static void test_env_alias_malformed(void **state) { /* R: C1, Y1 */
    fx *f = *state;
    const char *env[] = {"PORT=abc", NULL};
    assert_int_equal(load(f, env), -1);
    assert_diag(f->cfg, HALE_DIAG_ERROR, "PORT: expected an integer 1-65535, got \"abc\"");
    assert_int_equal(hale_cfg_int(f->cfg, "server.port"), 8080); /* layer below kept */
    const char *env2[] = {"PORT=70000", "LOG_FORMAT=xml", "LOG_LEVEL=", NULL};
    assert_int_equal(load(f, env2), -1);
    assert_diag(f->cfg, HALE_DIAG_ERROR, "PORT: expected an integer 1-65535, got \"70000\"");
    assert_diag(f->cfg, HALE_DIAG_ERROR, "LOG_FORMAT: expected one of json, text, got \"xml\"");
    assert_diag(f->cfg, HALE_DIAG_ERROR,
                "LOG_LEVEL: expected one of error, warn, info, debug, trace, got \"\"");
    assert_int_equal(hale_cfg_error_count(f->cfg), 3);
}

/* ---- C2: files, config dir, RUN_ENV ----------------------------------- */

static void test_files_and_run_env(void **state) { /* R: C2 */
    fx *f = *state;
    put(f->conf, "default.toml",
        "# every setting\n"
        "[server]\n"
        "port = 7000\n"
        "host = \"10.0.0.1\"\n"
        "[database]\n"
        "max_connections = 20\n",
        0644);
    put(f->conf, "production.toml", "[database]\nmax_connections = 50\n", 0644);
    assert_int_equal(load(f, NULL), 0); /* RUN_ENV defaults to dev; dev.toml missing is fine */
    assert_string_equal(hale_cfg_run_env(f->cfg), "dev");
    assert_int_equal(hale_cfg_int(f->cfg, "server.port"), 7000);
    assert_int_equal(hale_cfg_int(f->cfg, "database.max_connections"), 20);
    char want[1024];
    snprintf(want, sizeof want, "%s/default.toml:3", f->conf);
    assert_string_equal(hale_cfg_source(f->cfg, "server.port"), want);

    const char *env[] = {"RUN_ENV=production", NULL};
    assert_int_equal(load(f, env), 0);
    assert_int_equal(hale_cfg_int(f->cfg, "database.max_connections"), 50);
    snprintf(want, sizeof want, "%s/production.toml:2", f->conf);
    assert_string_equal(hale_cfg_source(f->cfg, "database.max_connections"), want);
    assert_int_equal(hale_cfg_int(f->cfg, "server.port"), 7000);
    assert_true(hale_cfg_is_default(f->cfg, "redis.pool_size"));
    assert_false(hale_cfg_is_default(f->cfg, "server.port"));
}

static void test_config_dir_selection(void **state) { /* R: C2 */
    fx *f = *state;
    char other[128];
    snprintf(other, sizeof other, "%s/other", f->dir);
    mkdir(other, 0755);
    put(other, "default.toml", "server.port = 6000\n", 0644);
    char var[1024];
    snprintf(var, sizeof var, "HALE_CONFIG_DIR=%s", other);
    const char *env[] = {var, NULL};
    hale_cfg_opts o = {NULL, NULL, f->sec, (char **)env};
    assert_int_equal(hale_cfg_load(f->cfg, &o), 0);
    assert_int_equal(hale_cfg_int(f->cfg, "server.port"), 6000);
    assert_string_equal(hale_cfg_config_dir(f->cfg), other);
    /* --config-dir beats HALE_CONFIG_DIR */
    o.config_dir = f->conf;
    assert_int_equal(hale_cfg_load(f->cfg, &o), 0);
    assert_int_equal(hale_cfg_int(f->cfg, "server.port"), 8080);

    /* an explicit dir without default.toml is an error */
    char missing[128], msg[1024];
    snprintf(missing, sizeof missing, "%s/nope", f->dir);
    snprintf(var, sizeof var, "HALE_CONFIG_DIR=%s", missing);
    o.config_dir = NULL;
    assert_int_equal(hale_cfg_load(f->cfg, &o), -1);
    snprintf(msg, sizeof msg, "%s/default.toml: cannot read: No such file or directory "
             "(the config dir was set by HALE_CONFIG_DIR)", missing);
    assert_diag(f->cfg, HALE_DIAG_ERROR, msg);
    o.config_dir = missing;
    assert_int_equal(hale_cfg_load(f->cfg, &o), -1);
    snprintf(msg, sizeof msg, "%s/default.toml: cannot read: No such file or directory "
             "(the config dir was set by --config-dir)", missing);
    assert_diag(f->cfg, HALE_DIAG_ERROR, msg);

    /* the implicit ./config may be absent */
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(other), 0);
    hale_cfg_opts none = {NULL, NULL, "", NULL};
    int rc = hale_cfg_load(f->cfg, &none);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, 0);
    assert_string_equal(hale_cfg_config_dir(f->cfg), "config");
}

static void test_toml_syntax_error_position(void **state) { /* R: C2, Y1 */
    fx *f = *state;
    put(f->conf, "default.toml", "[server]\nport = 1\nhost \"x\"\n", 0644);
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(f->dir), 0);
    hale_cfg_opts o = {NULL, NULL, "", NULL};
    int rc = hale_cfg_load(f->cfg, &o);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, -1);
    assert_diag(f->cfg, HALE_DIAG_ERROR, "config/default.toml:3:6: expected '=' after key");
}

static void test_bad_run_env(void **state) { /* R: C2, Y1 */
    fx *f = *state;
    const char *env[] = {"RUN_ENV=../../etc/passwd", NULL};
    assert_int_equal(load(f, env), -1);
    assert_diag(f->cfg, HALE_DIAG_ERROR, "RUN_ENV: expected a name of letters, digits, '-' "
                "and '_', got \"../../etc/passwd\"");
}

static void test_file_type_errors(void **state) { /* R: C2, C5 */
    fx *f = *state;
    char want[1024];
    put(f->conf, "default.toml",
        "server.port = \"abc\"\nserver.request_timeout = \"5x\"\nmetrics.enabled = 1\n"
        "log.level = \"loud\"\nserver.host = 5\n",
        0644);
    assert_int_equal(load(f, NULL), -1);
    snprintf(want, sizeof want, "%s/default.toml:1:15: server.port: expected an integer "
             "1-65535, got \"abc\"", f->conf);
    assert_diag(f->cfg, HALE_DIAG_ERROR, want);
    snprintf(want, sizeof want, "%s/default.toml:2:26: server.request_timeout: expected a "
             "duration 1ms-1h (like 250ms, 5s, 2m, 1h; a bare number is ms), got \"5x\"", f->conf);
    assert_diag(f->cfg, HALE_DIAG_ERROR, want);
    snprintf(want, sizeof want, "%s/default.toml:3:19: metrics.enabled: expected true or "
             "false, got 1", f->conf);
    assert_diag(f->cfg, HALE_DIAG_ERROR, want);
    snprintf(want, sizeof want, "%s/default.toml:4:13: log.level: expected one of error, "
             "warn, info, debug, trace, got \"loud\"", f->conf);
    assert_diag(f->cfg, HALE_DIAG_ERROR, want);
    snprintf(want, sizeof want, "%s/default.toml:5:15: server.host: expected a string, got 5",
             f->conf);
    assert_diag(f->cfg, HALE_DIAG_ERROR, want);
    assert_int_equal(hale_cfg_error_count(f->cfg), 5); /* all of them, not the first */
}

/* ---- C3: APP_ variables ----------------------------------------------- */

static void test_app_env(void **state) { /* R: C3 */
    fx *f = *state;
    const char *env[] = {"APP_SERVER__PORT=9000", "APP__DATABASE__MAX_CONNECTIONS=50",
                         "app_redis__pool_size=16", "APP_Metrics__Enabled=false",
                         "APP_SERVER__REQUEST_TIMEOUT=2m", NULL};
    assert_int_equal(load(f, env), 0);
    assert_int_equal(hale_cfg_int(f->cfg, "server.port"), 9000);
    assert_string_equal(hale_cfg_source(f->cfg, "server.port"), "APP_SERVER__PORT");
    assert_int_equal(hale_cfg_int(f->cfg, "database.max_connections"), 50);
    assert_string_equal(hale_cfg_source(f->cfg, "database.max_connections"),
                        "APP__DATABASE__MAX_CONNECTIONS");
    assert_int_equal(hale_cfg_int(f->cfg, "redis.pool_size"), 16);
    assert_false(hale_cfg_bool(f->cfg, "metrics.enabled"));
    assert_int_equal(hale_cfg_ms(f->cfg, "server.request_timeout"), 120000);
    assert_int_equal(hale_cfg_diag_count(f->cfg), 0);
}

static void test_app_env_errors(void **state) { /* R: C3 */
    fx *f = *state;
    const char *env[] = {"APP_SERVER__PORT=x", "APP_SERVR__PORT=1", "APP_NOTHING=1",
                         "APP__SERVER__PORT=9100", NULL};
    assert_int_equal(load(f, env), -1);
    assert_diag(f->cfg, HALE_DIAG_ERROR, "APP_SERVER__PORT: expected an integer 1-65535, got \"x\"");
    assert_diag(f->cfg, HALE_DIAG_WARNING,
                "APP_SERVR__PORT: no setting named \"servr.port\" (did you mean APP_SERVER__PORT?)");
    assert_diag(f->cfg, HALE_DIAG_WARNING, "APP_NOTHING: no setting named \"nothing\"");
    assert_int_equal(hale_cfg_int(f->cfg, "server.port"), 9100);
    const char *env2[] = {"APP_SERVER__PORT=9000", "APP__SERVER__PORT=9100", NULL};
    assert_int_equal(load(f, env2), 0);
    assert_diag(f->cfg, HALE_DIAG_WARNING, "APP_SERVER__PORT and APP__SERVER__PORT both set "
                "server.port; the later one, APP__SERVER__PORT, wins");
    assert_int_equal(hale_cfg_int(f->cfg, "server.port"), 9100);
}

/* ---- C4: secret files ------------------------------------------------- */

static void test_secret_dir(void **state) { /* R: C4 */
    fx *f = *state;
    put(f->sec, "database-url", "postgres://u:pw@db/app\n\n", 0400);
    put(f->sec, "redis-url", "redis://r\r\n", 0440);
    assert_int_equal(load(f, NULL), 0);
    assert_string_equal(hale_cfg_str(f->cfg, "database.url"), "postgres://u:pw@db/app");
    assert_string_equal(hale_cfg_str(f->cfg, "redis.url"), "redis://r");
    char want[1024];
    snprintf(want, sizeof want, "%s/database-url", f->sec);
    assert_string_equal(hale_cfg_source(f->cfg, "database.url"), want);
    assert_int_equal(hale_cfg_diag_count(f->cfg), 0);

    /* an empty secret file is an empty value, not garbage */
    put(f->sec, "redis-url", "\n", 0400);
    assert_int_equal(load(f, NULL), 0);
    assert_string_equal(hale_cfg_str(f->cfg, "redis.url"), "");
    put(f->sec, "redis-url", "redis://r\r\n", 0440);

    /* secrets.dir from HALE_SECRET_DIR when the caller does not force one */
    char var[1024];
    snprintf(var, sizeof var, "HALE_SECRET_DIR=%s", f->sec);
    const char *env[] = {var, NULL};
    hale_cfg_opts o = {f->conf, NULL, NULL, (char **)env};
    assert_int_equal(hale_cfg_load(f->cfg, &o), 0);
    assert_string_equal(hale_cfg_str(f->cfg, "redis.url"), "redis://r");
}

static void test_secret_name_file(void **state) { /* R: C4 */
    fx *f = *state;
    char other[128], var[1024], want[1024];
    snprintf(other, sizeof other, "%s/run", f->dir);
    mkdir(other, 0700);
    put(other, "db", "postgres://from-file\n", 0600);
    put(f->sec, "database-url", "postgres://from-dir\n", 0600);
    snprintf(var, sizeof var, "DATABASE_URL_FILE=%s/db", other);
    const char *env[] = {var, "DATABASE_URL=postgres://from-env", NULL};
    assert_int_equal(load(f, env), 0);
    assert_string_equal(hale_cfg_str(f->cfg, "database.url"), "postgres://from-file");
    snprintf(want, sizeof want, "%s/db", other);
    assert_string_equal(hale_cfg_source(f->cfg, "database.url"), want);

    snprintf(var, sizeof var, "DATABASE_URL_FILE=%s/missing", other);
    assert_int_equal(load(f, env), -1);
    snprintf(want, sizeof want, "DATABASE_URL_FILE: cannot read %s/missing: No such file or "
             "directory", other);
    assert_diag(f->cfg, HALE_DIAG_ERROR, want);
}

static void test_secret_world_readable(void **state) { /* R: C4 */
    fx *f = *state;
    put(f->sec, "redis-url", "redis://r\n", 0644);
    assert_int_equal(load(f, NULL), 0);
    char want[1024];
    snprintf(want, sizeof want, "%s/redis-url: secret file is readable by every user (mode "
             "0644); make it 0400 or 0440", f->sec);
    assert_diag(f->cfg, HALE_DIAG_WARNING, want);
    /* a directory or FIFO where a secret should be is an error, never a hang */
    char path[1024];
    snprintf(path, sizeof path, "%s/port", f->sec);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(load(f, NULL), -1);
    snprintf(want, sizeof want, "%s/port: cannot read: not a regular file", f->sec);
    assert_diag(f->cfg, HALE_DIAG_ERROR, want);
}

/* ---- C5: unknown keys, strict mode, typed getters --------------------- */

static void test_unknown_keys(void **state) { /* R: C5 */
    fx *f = *state;
    put(f->conf, "default.toml", "[server]\nprot = 1\n[nothing]\nx = 1\n", 0644);
    char want[1024];
    assert_int_equal(load(f, NULL), 0);
    snprintf(want, sizeof want, "%s/default.toml:2:1: unknown setting \"server.prot\" (did "
             "you mean \"server.port\"?)", f->conf);
    assert_diag(f->cfg, HALE_DIAG_WARNING, want);
    snprintf(want, sizeof want, "%s/default.toml:3:2: unknown setting \"nothing\"", f->conf);
    assert_diag(f->cfg, HALE_DIAG_WARNING, want);

    put(f->conf, "dev.toml", "config.strict = true\n", 0644);
    const char *env[] = {"APP_NOPE=1", NULL};
    assert_int_equal(load(f, env), -1);
    snprintf(want, sizeof want, "%s/default.toml:2:1: unknown setting \"server.prot\" (did "
             "you mean \"server.port\"?) (an error because config.strict = true)", f->conf);
    assert_diag(f->cfg, HALE_DIAG_ERROR, want);
    assert_diag(f->cfg, HALE_DIAG_ERROR,
                "APP_NOPE: no setting named \"nope\" (an error because config.strict = true)");
}

static void test_typed_getters_and_durations(void **state) { /* R: C5 */
    fx *f = *state;
    static const struct { const char *in; int64_t ms; } ok[] = {
        {"250ms", 250}, {"5s", 5000}, {"2m", 120000}, {"1h", 3600000}, {"1500", 1500},
        {"7S", 7000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char var[64];
        snprintf(var, sizeof var, "APP_SERVER__REQUEST_TIMEOUT=%s", ok[i].in);
        const char *env[] = {var, NULL};
        assert_int_equal(load(f, env), 0);
        assert_int_equal(hale_cfg_ms(f->cfg, "server.request_timeout"), ok[i].ms);
    }
    const char *bad[] = {"5x", "-5s", "", "s", "2h", "99999999999999999999h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char var[64], want[1024];
        snprintf(var, sizeof var, "APP_SERVER__REQUEST_TIMEOUT=%s", bad[i]);
        const char *env[] = {var, NULL};
        assert_int_equal(load(f, env), -1);
        snprintf(want, sizeof want, "APP_SERVER__REQUEST_TIMEOUT: expected a duration 1ms-1h "
                 "(like 250ms, 5s, 2m, 1h; a bare number is ms), got \"%s\"", bad[i]);
        assert_diag(f->cfg, HALE_DIAG_ERROR, want);
    }
    put(f->conf, "default.toml", "server.request_timeout = 750\n", 0644);
    assert_int_equal(load(f, NULL), 0);
    assert_int_equal(hale_cfg_ms(f->cfg, "server.request_timeout"), 750);
    const char *bools[] = {"APP_METRICS__ENABLED=off", NULL};
    assert_int_equal(load(f, bools), 0);
    assert_false(hale_cfg_bool(f->cfg, "metrics.enabled"));
    const char *badbool[] = {"APP_METRICS__ENABLED=maybe", NULL};
    assert_int_equal(load(f, badbool), -1);
    assert_diag(f->cfg, HALE_DIAG_ERROR,
                "APP_METRICS__ENABLED: expected true or false, got \"maybe\"");
}

static hale_cfg *child_cfg(void) {
    hale_cfg *c = hale_cfg_new();
    hale_cfg_declare(c, app, sizeof app / sizeof app[0]);
    return c;
}
static void get_undeclared(void) { hale_cfg_int(child_cfg(), "server.nope"); }
static void get_wrong_type(void) { hale_cfg_str(child_cfg(), "server.port"); }
static void ms_on_int(void) { hale_cfg_ms(child_cfg(), "server.port"); }
static void declare_twice(void) { hale_cfg_declare(child_cfg(), app, 1); }
static void declare_bad_default(void) {
    static const hale_setting s[] = {{"x.y", HALE_SETTING_INT, "100", 1, 10, NULL, NULL, 0, ""}};
    hale_cfg_declare(hale_cfg_new(), s, 1);
}
static void declare_clash(void) {
    static const hale_setting s[] = {{"server", HALE_SETTING_INT, "1", 0, 0, NULL, NULL, 0, ""}};
    hale_cfg_declare(child_cfg(), s, 1);
}
static void declare_bad_name(void) {
    static const hale_setting s[] = {{"Server.Port", HALE_SETTING_INT, "1", 0, 0, NULL, NULL, 0, ""}};
    hale_cfg_declare(hale_cfg_new(), s, 1);
}

static bool aborts(void (*fn)(void)) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 2);
        fn();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

static void test_programming_errors_abort(void **state) { /* R: C5, B6 */
    (void)state;
    assert_true(aborts(get_undeclared));
    assert_true(aborts(get_wrong_type));
    assert_true(aborts(ms_on_int));
    assert_true(aborts(declare_twice));
    assert_true(aborts(declare_bad_default));
    assert_true(aborts(declare_clash));
    assert_true(aborts(declare_bad_name));
}

/* ---- C6: hale config output ------------------------------------------- */

static void test_print(void **state) { /* R: C6 */
    fx *f = *state;
    put(f->conf, "default.toml", "\n[server]\nhost = \"10.1.1.1\"\n", 0644);
    put(f->sec, "database-url", "postgres://u:pw@db/app\n", 0400);
    const char *env[] = {"APP_SERVER__PORT=9000", "LOG_LEVEL=warn", NULL};
    assert_int_equal(load(f, env), 0);
    char *out = printed(f->cfg);
    char want[1024];
    assert_non_null(strstr(out, "# RUN_ENV=dev, config dir: "));
    assert_non_null(strstr(out, "\nSETTING "));
    const char *host = strstr(out, "\nserver.host ");
    assert_non_null(host);
    assert_non_null(strstr(host, "\"10.1.1.1\""));
    snprintf(want, sizeof want, "%s/default.toml:3\n", f->conf);
    assert_non_null(strstr(host, want));
    assert_non_null(strstr(out, "APP_SERVER__PORT\n"));
    assert_non_null(strstr(out, "\"warn\""));
    const char *db = strstr(out, "\ndatabase.url ");
    assert_non_null(db);
    assert_true(strstr(db, "<redacted>") < strchr(db + 1, '\n'));
    assert_null(strstr(out, "pw@db"));
    assert_non_null(strstr(out, "30s"));
    /* an unset secret shows as empty, which leaks nothing */
    const char *redis = strstr(out, "\nredis.url ");
    assert_non_null(redis);
    assert_true(strstr(redis, "\"\"") < strchr(redis + 1, '\n'));
    /* aligned: the SOURCE column starts at the same place on every line */
    const char *hdr = strstr(out, "SETTING");
    size_t col = (size_t)(strstr(hdr, "SOURCE") - hdr);
    size_t lines = 0;
    for (const char *l = hdr; *l; l = strchr(l, '\n') + 1) {
        assert_true(strlen(l) > col);
        assert_true(l[col - 1] == ' ' && l[col] != ' ');
        lines++;
    }
    assert_int_equal(lines, 1 + 2 + sizeof app / sizeof app[0]);
    /* stable order: declaration order */
    assert_true(strstr(out, "\nconfig.strict ") < strstr(out, "\nserver.host "));
    assert_true(strstr(out, "\nserver.host ") < strstr(out, "\nauth.pin "));
    free(out);
}

static void test_markdown_table(void **state) { /* R: C6, C7 */
    fx *f = *state;
    char *s = capture(hale_cfg_markdown_table, f->cfg);
    assert_true(strncmp(s, "| Setting | Type | Default | Env | Description |\n|---|", 52) == 0);
    assert_non_null(strstr(s, "| `server.port` | integer 1..65535 | `8080` | `PORT` | TCP port "
                              "for the API. |\n"));
    assert_non_null(strstr(s, "| `database.url` | string, secret | `sqlite://./data/hale.db` | "
                              "`DATABASE_URL` | sqlite://path \\| postgres://... |\n"));
    assert_non_null(strstr(s, "| `log.format` | one of `json`, `text` | `text` | `LOG_FORMAT` |"));
    assert_non_null(strstr(s, "| `server.request_timeout` | duration 1ms..1h, reloadable | `30s` |"));
    assert_non_null(strstr(s, "| `redis.url` | string, secret | `\"\"` | `REDIS_URL` |"));
    free(s);
}

/* ---- C7: precedence --------------------------------------------------- */

static void test_precedence_table(void **state) { /* R: C7 */
    fx *f = *state;
    /* layer i sets server.port to 1001+i; try every combination of layers */
    for (unsigned mask = 0; mask < 64; mask++) {
        put(f->conf, "default.toml", (mask & 1) ? "server.port = 1001\n" : "", 0644);
        put(f->conf, "dev.toml", (mask & 2) ? "server.port = 1002\n" : "", 0644);
        const char *env[4] = {NULL};
        size_t ne = 0;
        if (mask & 4) env[ne++] = "APP_SERVER__PORT=1003";
        if (mask & 8) env[ne++] = "PORT=1004";
        char path[1024];
        snprintf(path, sizeof path, "%s/port", f->sec);
        unlink(path);
        if (mask & 16) put(f->sec, "port", "1005\n", 0600);
        char var[1024];
        if (mask & 32) {
            put(f->dir, "port-file", "1006\n", 0600);
            snprintf(var, sizeof var, "PORT_FILE=%s/port-file", f->dir);
            env[ne++] = var;
        }
        assert_int_equal(load(f, env), 0);
        int top = -1;
        for (int i = 0; i < 6; i++)
            if (mask & (1u << i)) top = i;
        /* NAME_FILE and the secrets dir share the top layer; NAME_FILE wins */
        int64_t want = top < 0 ? 8080 : 1001 + top;
        char src[1024];
        switch (top) {
        case -1: snprintf(src, sizeof src, "default"); break;
        case 0: snprintf(src, sizeof src, "%s/default.toml:1", f->conf); break;
        case 1: snprintf(src, sizeof src, "%s/dev.toml:1", f->conf); break;
        case 2: snprintf(src, sizeof src, "APP_SERVER__PORT"); break;
        case 3: snprintf(src, sizeof src, "PORT"); break;
        case 4: snprintf(src, sizeof src, "%s/port", f->sec); break;
        default: snprintf(src, sizeof src, "%s/port-file", f->dir); break;
        }
        if (hale_cfg_int(f->cfg, "server.port") != want ||
            strcmp(hale_cfg_source(f->cfg, "server.port"), src) != 0)
            fail_msg("mask %u: got %lld from %s, want %lld from %s", mask,
                     (long long)hale_cfg_int(f->cfg, "server.port"),
                     hale_cfg_source(f->cfg, "server.port"), (long long)want, src);
    }
}

/* ---- Y7: a planted secret never shows --------------------------------- */

static void test_secret_never_shown(void **state) { /* R: Y7 */
    fx *f = *state;
    const char *planted = "PLANTED-s3cr3t-42";
    put(f->conf, "default.toml",
        "database.url = \"postgres://u:PLANTED-s3cr3t-42@db\"\n"
        "auth.pin = \"PLANTED-s3cr3t-42\"\n"
        "databse.url = \"PLANTED-s3cr3t-42\"\n",
        0644);
    put(f->conf, "dev.toml", "redis.url = \"PLANTED-s3cr3t-42\" junk\n", 0644);
    put(f->sec, "database-url", "PLANTED-s3cr3t-42\n", 0644);
    put(f->sec, "port", "PLANTED-s3cr3t-42\n", 0600);
    put_n(f->dir, "nul", "PLANTED-s3cr3t-42\0x", 19, 0600);
    char var[1024];
    snprintf(var, sizeof var, "REDIS_URL_FILE=%s/nul", f->dir);
    const char *env[] = {"APP_DATABASE__URL=PLANTED-s3cr3t-42", "AUTH_PIN=PLANTED-s3cr3t-42",
                         "APP_AUTH__PIN=PLANTED-s3cr3t-42", "REDIS_URL=PLANTED-s3cr3t-42",
                         "APP_NOT__A__SETTING=PLANTED-s3cr3t-42", var, NULL};
    assert_int_equal(load(f, env), -1);
    char *out = all_output(f->cfg);
    if (strstr(out, planted)) fail_msg("secret leaked:\n%s", out);
    assert_diag(f->cfg, HALE_DIAG_ERROR, "AUTH_PIN: expected an integer 0-999999, got <redacted>");
    char want[1024];
    snprintf(want, sizeof want, "%s/port: expected an integer 1-65535, got <redacted>", f->sec);
    assert_diag(f->cfg, HALE_DIAG_ERROR, want);
    snprintf(want, sizeof want, "%s/default.toml:2:12: auth.pin: expected an integer 0-999999, "
             "got <redacted>", f->conf);
    assert_diag(f->cfg, HALE_DIAG_ERROR, want);
    /* the value is still usable by the program */
    assert_string_equal(hale_cfg_str(f->cfg, "database.url"), planted);
    free(out);

    /* and when everything is valid, hale config still redacts */
    put(f->conf, "default.toml", "", 0644);
    put(f->conf, "dev.toml", "", 0644);
    unlink(var + strlen("REDIS_URL_FILE="));
    snprintf(var, sizeof var, "%s/port", f->sec);
    unlink(var);
    const char *env2[] = {"DATABASE_URL=PLANTED-s3cr3t-42", "AUTH_PIN=123456", NULL};
    assert_int_equal(load(f, env2), 0);
    out = all_output(f->cfg);
    if (strstr(out, planted) || strstr(out, "123456")) fail_msg("secret leaked:\n%s", out);
    free(out);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_env_aliases),
        T(test_env_alias_malformed),
        T(test_files_and_run_env),
        T(test_config_dir_selection),
        T(test_toml_syntax_error_position),
        T(test_bad_run_env),
        T(test_file_type_errors),
        T(test_app_env),
        T(test_app_env_errors),
        T(test_secret_dir),
        T(test_secret_name_file),
        T(test_secret_world_readable),
        T(test_unknown_keys),
        T(test_typed_getters_and_durations),
        T(test_programming_errors_abort),
        T(test_print),
        T(test_markdown_table),
        T(test_precedence_table),
        T(test_secret_never_shown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
