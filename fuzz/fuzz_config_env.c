/* fuzz_config_env: libFuzzer target for the env/secret layer (R: Y2).
 *
 * The input is split on NUL and newline into entries:
 *   NAME=VALUE      an environment variable
 *   @<d><content>   the secret file for alias number d % 6 (database-url,
 *                   port, log-level, timeout, metrics, auth-pin); "\n" and
 *                   "\0" in content stand for a newline and a NUL byte
 *   ><line>         a line of default.toml
 * Then hale_cfg_load runs against a small declared table with the config
 * and secrets dirs in a private temporary directory, and everything the
 * module can print is printed. */
#define _GNU_SOURCE 1
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

static const hale_setting table[] = {
    {"server.port", HALE_SETTING_INT, "8080", 1, 65535, NULL, "PORT", 0, "port", HALE_NO_FIELD},
    {"database.url", HALE_SETTING_STRING, "", 0, 0, NULL, "DATABASE_URL", HALE_SETTING_SECRET, "db", HALE_NO_FIELD},
    {"log.level", HALE_SETTING_ENUM, "info", 0, 0, "error|warn|info|debug|trace", "LOG_LEVEL", 0, "", HALE_NO_FIELD},
    {"server.timeout", HALE_SETTING_DURATION, "5s", 0, 3600000, NULL, "TIMEOUT", 0, "", HALE_NO_FIELD},
    {"metrics.enabled", HALE_SETTING_BOOL, "true", 0, 0, NULL, "METRICS", 0, "", HALE_NO_FIELD},
    {"auth.pin", HALE_SETTING_INT, "0", 0, 0, NULL, "AUTH_PIN", HALE_SETTING_SECRET, "", HALE_NO_FIELD},
};
static const char *secret_names[] = {"database-url", "port", "log-level", "timeout", "metrics",
                                     "auth-pin"};

static char root[64], conf[96], secrets[96];
static FILE *sink;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static void cleanup(void) { nftw(root, rm_one, 8, FTW_DEPTH | FTW_PHYS); }

static void init(void) {
    strcpy(root, "/tmp/hale-fuzz-cfg-XXXXXX");
    if (!mkdtemp(root)) abort();
    snprintf(conf, sizeof conf, "%s/config", root);
    snprintf(secrets, sizeof secrets, "%s/secrets", root);
    mkdir(conf, 0700);
    mkdir(secrets, 0700);
    sink = fopen("/dev/null", "w");
    if (!sink) abort();
    atexit(cleanup);
}

static void write_file(const char *dir, const char *name, const char *s, size_t n, mode_t mode) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) abort();
    if (n && write(fd, s, n) != (ssize_t)n) abort();
    fchmod(fd, mode);
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!sink) init();
    for (size_t i = 0; i < sizeof secret_names / sizeof secret_names[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", secrets, secret_names[i]);
        unlink(path);
    }
    hale_buf toml;
    hale_buf_init(&toml);
    hale_buf_append(&toml, "", 0);
    size_t nenv = 0, cap = 8;
    char **env = xcalloc(cap + 1, sizeof(char *));
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *e = p;
        while (e < end && *e != '\n' && *e != '\0') e++;
        size_t n = (size_t)(e - p);
        if (n && p[0] == '>') {
            hale_buf_append(&toml, p + 1, n - 1);
            hale_buf_puts(&toml, "\n");
        } else if (n >= 2 && p[0] == '@') {
            hale_buf c;
            hale_buf_init(&c);
            hale_buf_append(&c, "", 0);
            for (size_t i = 2; i < n; i++) {
                if (p[i] == '\\' && i + 1 < n && (p[i + 1] == 'n' || p[i + 1] == '0')) {
                    hale_buf_append(&c, p[i + 1] == 'n' ? "\n" : "", 1);
                    i++;
                } else {
                    hale_buf_append(&c, &p[i], 1);
                }
            }
            unsigned k = (unsigned char)p[1] % 6;
            write_file(secrets, secret_names[k], c.data, c.len, (k & 1) ? 0644 : 0600);
            hale_buf_free(&c);
        } else if (n && memchr(p, '=', n)) {
            if (nenv == cap) {
                cap *= 2;
                env = xrealloc(env, (cap + 1) * sizeof(char *));
            }
            env[nenv++] = xstrndup(p, n);
            env[nenv] = NULL;
        }
        p = e + 1;
    }
    write_file(conf, "default.toml", toml.data, toml.len, 0600);
    hale_buf_free(&toml);

    hale_cfg *cfg = hale_cfg_new();
    hale_cfg_declare(cfg, table, sizeof table / sizeof table[0]);
    hale_cfg_opts o = {conf, NULL, secrets, env};
    int rc = hale_cfg_load(cfg, &o);
    HALE_ASSERT((rc < 0) == (hale_cfg_error_count(cfg) > 0));
    hale_cfg_print(cfg, sink);
    hale_cfg_print_diags(cfg, sink);
    hale_cfg_markdown_table(cfg, sink);
    (void)hale_cfg_int(cfg, "server.port");
    (void)hale_cfg_ms(cfg, "server.timeout");
    (void)hale_cfg_str(cfg, "log.level");
    (void)hale_cfg_bool(cfg, "metrics.enabled");
    hale_cfg_free(cfg);
    for (size_t i = 0; i < nenv; i++) free(env[i]);
    free(env);
    return 0;
}
