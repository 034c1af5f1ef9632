/* Tests for src/runtime/config/: secret files, `hale config` output, the
 * README table, the precedence of all layers, and that a planted secret
 * never shows anywhere (R: C4, C6, C7, Y7). */
#define _GNU_SOURCE 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cfg_fixture.h"

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
    const struct CMUnitTest tests[] = {
        T(test_secret_dir),
        T(test_secret_name_file),
        T(test_secret_world_readable),
        T(test_print),
        T(test_markdown_table),
        T(test_precedence_table),
        T(test_secret_never_shown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
