/* Tests for src/runtime/config/: direct env variables, files and the config
 * dir, APP_ variables, coercion and unknown keys, typed getters
 * (R: C1, C2, C3, C5). Secrets, output and precedence are in
 * test_config_secrets.c. */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cfg_fixture.h"

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

static void test_unknown_run_env(void **state) { /* R: C2, Y1 */
    fx *f = *state;
    char want[1024];
    /* a typo of production is refused, not run as an unchecked dev */
    const char *prod[] = {"RUN_ENV=prod", NULL};
    assert_int_equal(load(f, prod), -1);
    snprintf(want, sizeof want, "RUN_ENV=prod: unknown environment: expected dev, test, "
             "production or a name with a file in the config dir (%s/prod.toml is missing)", f->conf);
    assert_diag(f->cfg, HALE_DIAG_ERROR, want);
    /* the built-in names need no file; any other name is known by its file */
    const char *names[] = {"dev", "test", "production"};
    for (size_t i = 0; i < 3; i++) {
        char var[64];
        snprintf(var, sizeof var, "RUN_ENV=%s", names[i]);
        const char *env[] = {var, NULL};
        assert_int_equal(load(f, env), 0);
    }
    put(f->conf, "staging.toml", "[database]\nmax_connections = 7\n", 0644);
    const char *staging[] = {"RUN_ENV=staging", NULL};
    assert_int_equal(load(f, staging), 0);
    assert_int_equal(hale_cfg_int(f->cfg, "database.max_connections"), 7);
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
    static const hale_setting s[] = {{"x.y", HALE_SETTING_INT, "100", 1, 10, NULL, NULL, 0, "", HALE_NO_FIELD}};
    hale_cfg_declare(hale_cfg_new(), s, 1);
}
static void declare_clash(void) {
    static const hale_setting s[] = {{"server", HALE_SETTING_INT, "1", 0, 0, NULL, NULL, 0, "", HALE_NO_FIELD}};
    hale_cfg_declare(child_cfg(), s, 1);
}
static void declare_bad_name(void) {
    static const hale_setting s[] = {{"Server.Port", HALE_SETTING_INT, "1", 0, 0, NULL, NULL, 0, "", HALE_NO_FIELD}};
    hale_cfg_declare(hale_cfg_new(), s, 1);
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

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_env_aliases),
        T(test_env_alias_malformed),
        T(test_files_and_run_env),
        T(test_config_dir_selection),
        T(test_toml_syntax_error_position),
        T(test_bad_run_env),
        T(test_unknown_run_env),
        T(test_file_type_errors),
        T(test_app_env),
        T(test_app_env_errors),
        T(test_unknown_keys),
        T(test_typed_getters_and_durations),
        T(test_programming_errors_abort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
