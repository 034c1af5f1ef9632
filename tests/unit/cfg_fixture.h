/* cfg_fixture: shared by test_config.c and test_config_secrets.c. Each
 * test gets a temporary directory (config/ and secrets/ inside) and its own
 * envp; nothing reads the real environment. Include after cmocka.h. */
#ifndef HALE_CFG_FIXTURE_H
#define HALE_CFG_FIXTURE_H

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
    {"server.host", HALE_SETTING_STRING, "0.0.0.0", 0, 0, NULL, "HOST", 0, "Address to listen on.", HALE_NO_FIELD},
    {"server.port", HALE_SETTING_INT, "8080", 1, 65535, NULL, "PORT", 0, "TCP port for the API.", HALE_NO_FIELD},
    {"server.request_timeout", HALE_SETTING_DURATION, "30s", 1, 3600000, NULL, NULL,
     HALE_SETTING_RELOADABLE, "Deadline for one request.", HALE_NO_FIELD},
    {"database.url", HALE_SETTING_STRING, "sqlite://./data/hale.db", 0, 0, NULL, "DATABASE_URL",
     HALE_SETTING_SECRET, "sqlite://path | postgres://...", HALE_NO_FIELD},
    {"database.max_connections", HALE_SETTING_INT, "10", 1, 1000, NULL, NULL, 0, "Pool size.", HALE_NO_FIELD},
    {"redis.url", HALE_SETTING_STRING, "", 0, 0, NULL, "REDIS_URL", HALE_SETTING_SECRET,
     "Redis URL; empty disables the cache.", HALE_NO_FIELD},
    {"redis.pool_size", HALE_SETTING_INT, "8", 1, 256, NULL, NULL, 0, "Redis connections.", HALE_NO_FIELD},
    {"log.level", HALE_SETTING_ENUM, "info", 0, 0, "error|warn|info|debug|trace", "LOG_LEVEL",
     HALE_SETTING_RELOADABLE, "Minimum level.", HALE_NO_FIELD},
    {"log.format", HALE_SETTING_ENUM, "text", 0, 0, "json|text", "LOG_FORMAT", 0, "Line format.", HALE_NO_FIELD},
    {"metrics.enabled", HALE_SETTING_BOOL, "true", 0, 0, NULL, NULL, 0, "Serve /metrics.", HALE_NO_FIELD},
    {"auth.pin", HALE_SETTING_INT, "0", 0, 999999, NULL, "AUTH_PIN", HALE_SETTING_SECRET,
     "A typed secret.", HALE_NO_FIELD},
};

typedef struct fx {
    char dir[64];
    char conf[96];
    char sec[96];
    hale_cfg *cfg;
} fx;

static inline void put_n(const char *dir, const char *name, const char *content, size_t n,
                  mode_t mode) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, n), (ssize_t)n);
    fchmod(fd, mode);
    close(fd);
}

static inline void put(const char *dir, const char *name, const char *content, mode_t mode) {
    put_n(dir, name, content, strlen(content), mode);
}

static inline int setup(void **state) {
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

static inline int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static inline int teardown(void **state) {
    fx *f = *state;
    hale_cfg_free(f->cfg);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Load with the fixture's config and secrets dirs and the given env. */
static inline int load(fx *f, const char **env) {
    hale_cfg_opts o = {f->conf, NULL, f->sec, (char **)env};
    return hale_cfg_load(f->cfg, &o);
}

static inline bool has_diag(const hale_cfg *cfg, hale_diag_level level, const char *msg) {
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
static inline char *capture(void (*fn)(const hale_cfg *, FILE *), const hale_cfg *cfg) {
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

static inline void print_all(const hale_cfg *cfg, FILE *out) {
    hale_cfg_print(cfg, out);
    hale_cfg_print_diags(cfg, out);
    hale_cfg_markdown_table(cfg, out);
}

/* Everything the module can print: hale config, diagnostics, README table. */
static inline char *all_output(const hale_cfg *cfg) { return capture(print_all, cfg); }
static inline char *printed(const hale_cfg *cfg) { return capture(hale_cfg_print, cfg); }

static inline bool aborts(void (*fn)(void)) {
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

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

#endif
