/** @file
 * config: typed settings from layered sources, each value with its origin.
 *
 * Promises:
 *  - Settings are declared once, in tables (hale_setting), by each module
 *    that owns some; parsing, validation, `hale config` output and the
 *    README table all come from those declarations. The module knows no
 *    setting of its own except config.strict and secrets.dir.
 *  - Sources, lowest to highest precedence (R: C7):
 *      1. built-in defaults           source "default"
 *      2. `<config dir>/default.toml`   source "config/default.toml:12"
 *      3. `<config dir>/${RUN_ENV}.toml`
 *      4. APP_ variables: APP_SERVER__PORT or APP__SERVER__PORT set
 *         server.port (case-insensitive; "__" separates levels)
 *      5. direct env aliases (PORT, DATABASE_URL, ...)
 *      6. secret files: NAME_FILE=/path, else `<secrets dir>/<name-in-kebab>`
 *         (DATABASE_URL -> database-url), trailing newlines trimmed
 *  - Every problem is collected (errors and warnings, in order found), not
 *    only the first. Values are coerced to the declared type with messages
 *    like `PORT: expected an integer 1-65535, got "abc"`; TOML syntax errors
 *    read `config/default.toml:3:7: <what was expected>`; unknown keys and
 *    APP_ variables naming no setting are warnings (errors when
 *    config.strict = true).
 *  - A secret (a HALE_SETTING_SECRET setting, or any value read from a
 *    secret file) never appears in a diagnostic or in printed output: it is
 *    shown as `<redacted>`.
 *  - The module never reads the process environment itself: callers pass
 *    envp, so tests and fuzzers control every input.
 *
 * Thread-safety: declare and load are not thread-safe. After a load, the
 * getters only read and may be called from any thread until the next load
 * or hale_cfg_free. Returned strings live until then too.
 * Errors: hale_cfg_load returns 0, or -1 when at least one error was found;
 * programming errors (bad declarations, unknown names, wrong getter type)
 * abort via hale_panic.
 */
#ifndef HALE_CONFIG_H
#define HALE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* exported by libhale.so (the rest of the library is hidden) */
#pragma GCC visibility push(default)

/** Exit status for configuration errors (sysexits EX_CONFIG; R: L3). */
#ifndef HALE_EXIT_CONFIG
#define HALE_EXIT_CONFIG 78
#endif

/** The type of a setting's value. */
typedef enum hale_setting_type {
    HALE_SETTING_STRING,   /**< any text */
    HALE_SETTING_INT,      /**< min..max; min == max == 0 means unbounded */
    HALE_SETTING_BOOL,     /**< files: true/false; env: also 1/0 yes/no on/off */
    HALE_SETTING_DURATION, /**< milliseconds; "250ms", "5s", "2m", "1h" or a
                              bare integer (ms); min..max in ms */
    HALE_SETTING_ENUM,     /**< one of choices ("json|text"), case-insensitive */
} hale_setting_type;

/** Setting flag: a secret, never shown (`<redacted>`). */
#define HALE_SETTING_SECRET 0x1u
/** Setting flag: may change without a restart. */
#define HALE_SETTING_RELOADABLE 0x2u

/** One declared setting: a row of a settings table. */
typedef struct hale_setting {
    const char *name;      /**< "server.port": lowercase [a-z0-9_] parts */
    hale_setting_type type; /**< how the value is parsed and checked */
    const char *def;       /**< default as text ("8080", "5s", "info") */
    int64_t min;           /**< INT and DURATION: lowest value */
    int64_t max;           /**< INT and DURATION: highest value */
    const char *choices;   /**< ENUM: "error|warn|info|debug|trace" */
    const char *env_alias; /**< direct variable ("PORT") or NULL */
    unsigned flags;        /**< HALE_SETTING_SECRET | HALE_SETTING_RELOADABLE */
    const char *help;      /**< one sentence for `hale config` docs/README */
    size_t off;            /**< the struct field hale_cfg_bind fills:
                              HALE_FIELD(type, member) gives off and size,
                              HALE_NO_FIELD (0, 0) a setting read with the
                              getters */
    size_t size;           /**< the size of that field (see off) */
} hale_setting;

/** The field a setting is bound to, as the last two members of its entry. */
#define HALE_FIELD(type, member) offsetof(type, member), sizeof(((type *)0)->member)
/** No field: the setting is read with the getters (hale_cfg_int...). */
#define HALE_NO_FIELD 0, 0

/** A configuration: declared settings and their loaded values (opaque). */
typedef struct hale_cfg hale_cfg;

/** Where hale_cfg_load reads from. */
typedef struct hale_cfg_opts {
    const char *config_dir; /**< --config-dir; NULL: $HALE_CONFIG_DIR from envp,
                               else "config". Either explicit form makes a
                               missing default.toml an error. */
    const char *run_env;    /**< NULL: $RUN_ENV from envp, else "dev" */
    const char *secret_dir; /**< NULL: the secrets.dir setting (default
                               /var/secrets, env HALE_SECRET_DIR) */
    char **envp;            /**< NULL-terminated "NAME=VALUE" list, or NULL */
} hale_cfg_opts;

/** How bad a configuration problem is. */
typedef enum hale_diag_level {
    HALE_DIAG_WARNING, /**< reported, the load still succeeds */
    HALE_DIAG_ERROR,   /**< the load fails (exit 78) */
} hale_diag_level;

/** One configuration problem. */
typedef struct hale_cfg_diag {
    hale_diag_level level; /**< warning or error */
    const char *msg; /**< "PORT: expected an integer 1-65535, got \"abc\"" */
} hale_cfg_diag;

/** A new, empty configuration with config.strict and secrets.dir declared.
 * Never NULL. Free with hale_cfg_free. */
hale_cfg *hale_cfg_new(void);
/** Frees cfg and every string its getters returned. */
void hale_cfg_free(hale_cfg *cfg);

/** Declare n settings. The table is referenced, not copied: it must outlive
 * cfg (static tables). May be called several times, before hale_cfg_load.
 * Aborts on a malformed declaration (bad name, duplicate name or alias,
 * default that does not parse or is out of range). */
void hale_cfg_declare(hale_cfg *cfg, const hale_setting *table, size_t n);

/** Resolve every declared setting from the sources above, replacing the
 * result of any earlier load. Returns 0 when no error was found (warnings
 * may exist), -1 otherwise; see hale_cfg_diag_*. A setting whose value was
 * rejected keeps the value of the layer below. */
int hale_cfg_load(hale_cfg *cfg, const hale_cfg_opts *opts);

/** @name Typed getters
 * Abort on an undeclared name or a getter that does not fit the type.
 * Lookup is a linear scan: read settings once at startup, not per request.
 * @{ */
/** The value of an INT setting. */
int64_t hale_cfg_int(const hale_cfg *cfg, const char *name);
/** The value of a DURATION setting, in milliseconds. */
int64_t hale_cfg_ms(const hale_cfg *cfg, const char *name);
/** The value of a STRING or ENUM setting (valid until the next load). */
const char *hale_cfg_str(const hale_cfg *cfg, const char *name);
/** The value of a BOOL setting. */
bool hale_cfg_bool(const hale_cfg *cfg, const char *name);
/** @} */

/** Stores every bound setting of table[0..n) (the table a struct's fields
 * are bound in) into the struct at dst, so that a setting's default lives
 * in its declaration only:
 *   INT, DURATION (ms)  an unsigned integer field of 1, 2, 4 or 8 bytes
 *   ENUM                an unsigned integer field: the choice's index
 *   BOOL                a bool;  STRING  a const char *
 * With cfg NULL the declared defaults are stored (strings then point into
 * the table), for callers that run without a configuration. Otherwise the
 * table must have been declared in cfg, and strings live until the next
 * load or hale_cfg_free. Fields no setting names are left as they are.
 * Aborts on a binding that does not fit (checked by hale_cfg_declare too). */
void hale_cfg_bind(const hale_cfg *cfg, const hale_setting *table, size_t n, void *dst);

/** Where the effective value came from: "default", "config/dev.toml:4",
 * "APP_SERVER__PORT", "PORT", "/var/secrets/database-url". */
const char *hale_cfg_source(const hale_cfg *cfg, const char *name);
/** True when no source overrode the built-in default. */
bool hale_cfg_is_default(const hale_cfg *cfg, const char *name);
/** The RUN_ENV the last load used. */
const char *hale_cfg_run_env(const hale_cfg *cfg);
/** The config directory the last load used. */
const char *hale_cfg_config_dir(const hale_cfg *cfg);

/** Problems found by the last load (and added since). */
size_t hale_cfg_diag_count(const hale_cfg *cfg);
/** Problem i (0 <= i < hale_cfg_diag_count), in the order found. */
const hale_cfg_diag *hale_cfg_diag_at(const hale_cfg *cfg, size_t i);
/** How many of the problems are errors. */
size_t hale_cfg_error_count(const hale_cfg *cfg);
/** Add a problem found by a caller's own cross-checks, so that every problem
 * is reported together. Never put a secret value in msg. */
void hale_cfg_add_diag(hale_cfg *cfg, hale_diag_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** `hale config`: every setting in declaration order with its effective value
 * and source, columns aligned; secrets as `<redacted>`. The first line is
 * `# RUN_ENV=<env>, config dir: <dir>`, then `; build: <info>` when set. */
void hale_cfg_print(const hale_cfg *cfg, FILE *out);
/** `hale config --toml`: every setting with its built-in default (not the
 * effective value), grouped by section, its help as a comment: the file
 * config/default.toml is this output. */
void hale_cfg_print_toml(const hale_cfg *cfg, FILE *out);
/** What the binary holds (e.g. its backends), for that first line; the
 * string must outlive cfg (not copied). */
void hale_cfg_set_build_info(hale_cfg *cfg, const char *info);
/** One line per problem: "error: ..." / "warning: ...". */
void hale_cfg_print_diags(const hale_cfg *cfg, FILE *out);
/** The README settings table (Markdown): name, type, default, env, help. */
void hale_cfg_markdown_table(const hale_cfg *cfg, FILE *out);

#pragma GCC visibility pop

#endif
