/** @file
 * log: structured, leveled logging to stdout (requirement O1).
 *
 * Promises:
 *  - One event is one line: a JSON object (format "json") or a readable text
 *    line (format "text"), both carrying the same timestamp (RFC 3339 UTC
 *    with milliseconds), level, target, message and typed fields.
 *  - Every line leaves whole in ONE write(2) call (a loop only resumes
 *    after EINTR or a partial write), so lines from different threads never
 *    interleave on a regular file, a terminal, a datagram/seqpacket socket,
 *    or a pipe when the write is at most PIPE_BUF (4096) bytes. Known limit:
 *    a longer write to a pipe may be split by the kernel, and then another
 *    thread's line can land between the pieces.
 *  - A thread may batch (hale_log_batch_begin): its lines then leave
 *    together, in order, when its buffer (32 KiB) fills or at
 *    hale_log_batch_flush()/hale_log_flush(); the HTTP workers do this and
 *    flush every time they wait for events and when they stop.
 *  - Any input is safe: quotes, backslashes, control characters, newlines
 *    and invalid UTF-8 in messages, keys and values are escaped, so a value
 *    can never forge a second line or break the JSON.
 *  - No heap allocation while logging: a line is built in a thread-local
 *    buffer of HALE_LOG_LINE_MAX bytes. A line that would be longer is cut:
 *    the value being written ends with "…(truncated)", the rest of the
 *    fields are dropped, and the line gets a `log_truncated` true field.
 *  - Secrets (Y7): a field whose key contains password, passwd, secret,
 *    token, authorization, cookie, api_key, apikey, credential or
 *    private_key (any case) is written as "[redacted]" whatever its value.
 *    This is a backstop; messages are not scanned, so never format a secret
 *    into a message.
 *  - hale_log_enabled() is a couple of loads and compares, so a disabled
 *    event costs almost nothing; the HALE_LOG macro does not even evaluate
 *    its field arguments then.
 *
 * Why a process-wide logger and not a context struct passed first: every
 * module logs, and a logger argument on every call would be noise. The
 * logger is configured once by hale_log_init() at start-up (before threads
 * start) and only read afterwards; the output fd may change at any time.
 *
 * Not async-signal-safe (thread-local buffer, snprintf): never log from a
 * signal handler. The logger does not touch SIGPIPE; the process should
 * ignore it (a closed stdout then makes lines count as dropped).
 */
#ifndef HALE_LOG_H
#define HALE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* exported by libhale.so (the rest of the library is hidden) */
#pragma GCC visibility push(default)

/** Lower value = more severe. An event is written when its level is <= the
 * threshold of its target. */
typedef enum hale_log_level {
    HALE_LOG_ERROR = 0,
    HALE_LOG_WARN = 1,
    HALE_LOG_INFO = 2,
    HALE_LOG_DEBUG = 3,
    HALE_LOG_TRACE = 4,
} hale_log_level;

/** Longest line, newline included. Longer lines are truncated (see above). */
#define HALE_LOG_LINE_MAX 8192
/** Most per-target overrides in one level spec. */
#define HALE_LOG_MAX_OVERRIDES 32
/** Longest target name in an override. */
#define HALE_LOG_TARGET_MAX 64

/** The type of a field's value. */
typedef enum hale_log_ftype {
    HALE_LOG_F_STR,  /**< v.s */
    HALE_LOG_F_INT,  /**< v.i */
    HALE_LOG_F_UINT, /**< v.u */
    HALE_LOG_F_DBL,  /**< v.d */
    HALE_LOG_F_BOOL, /**< v.b */
} hale_log_ftype;

/** One typed field. Strings are borrowed for the duration of the call only.
 * len == SIZE_MAX means "NUL-terminated"; a NULL string prints as null. */
typedef struct hale_log_field {
    const char *key;      /**< the field name */
    hale_log_ftype type;  /**< which member of v holds the value */
    size_t len;           /**< string length, or SIZE_MAX */
    /** The value. */
    union {
        const char *s;    /**< HALE_LOG_F_STR */
        int64_t i;        /**< HALE_LOG_F_INT */
        uint64_t u;       /**< HALE_LOG_F_UINT */
        double d;         /**< HALE_LOG_F_DBL */
        bool b;           /**< HALE_LOG_F_BOOL */
    } v;
} hale_log_field;

/** A NUL-terminated string field (NULL prints as null). */
#define HALE_F_STR(k, val) \
    ((hale_log_field){.key = (k), .type = HALE_LOG_F_STR, .len = SIZE_MAX, .v.s = (val)})
/** String with explicit length: need not be NUL-terminated, may hold NULs. */
#define HALE_F_STRN(k, val, n) \
    ((hale_log_field){.key = (k), .type = HALE_LOG_F_STR, .len = (n), .v.s = (val)})
/** A signed integer field. */
#define HALE_F_INT(k, val) \
    ((hale_log_field){.key = (k), .type = HALE_LOG_F_INT, .v.i = (int64_t)(val)})
/** An unsigned integer field. */
#define HALE_F_UINT(k, val) \
    ((hale_log_field){.key = (k), .type = HALE_LOG_F_UINT, .v.u = (uint64_t)(val)})
/** Doubles print with up to 15 significant digits; NaN/Inf print as null
 * in JSON (JSON has no such numbers) and as NaN/+Inf/-Inf in text. */
#define HALE_F_DBL(k, val) \
    ((hale_log_field){.key = (k), .type = HALE_LOG_F_DBL, .v.d = (double)(val)})
/** A boolean field (true/false). */
#define HALE_F_BOOL(k, val) \
    ((hale_log_field){.key = (k), .type = HALE_LOG_F_BOOL, .v.b = (bool)(val)})

/** Configure level and format. level_spec: a default level, optionally
 * followed by comma-separated TARGET=LEVEL overrides, e.g.
 * "info,store=debug,http=warn". Levels: error, warn, info, debug, trace
 * (case-insensitive; "warning" is accepted for warn, "off" silences).
 * A target override also covers its dotted sub-targets ("store" covers
 * "store.pg"); the longest matching override wins. NULL or "" spec means
 * "info"; NULL or "" format means "text". format: "json" or "text".
 * Returns 0, or -1 with a message naming the bad part in err; on failure
 * the previous configuration stays in force.
 * Thread-safety: call before other threads log (at start-up). */
int hale_log_init(const char *level_spec, const char *format, char *err, size_t errlen);

/** True when an event of this level and target would be written. target may
 * be NULL (default level). Thread-safe, lock-free, no allocation. */
bool hale_log_enabled(hale_log_level lvl, const char *target);

/** Write one event if enabled. msg may be NULL (empty). fields may be NULL
 * when nfields is 0. Borrowed pointers only; nothing is retained.
 * Field keys ts/level/target/msg/log_truncated are renamed with a "_"
 * prefix so they cannot shadow the built-in keys. Thread-safe. */
void hale_log(hale_log_level lvl, const char *target, const char *msg,
              const hale_log_field *fields, size_t nfields);

/** Like hale_log with no fields and a printf-formatted message (message
 * over ~4 KiB is truncated). Arguments are evaluated, but nothing is
 * formatted when disabled. Thread-safe. */
void hale_logf(hale_log_level lvl, const char *target, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** HALE_LOG(lvl, target, msg, HALE_F_STR("k", v), ...): the usual call.
 * Fields are built on the stack only when the event is enabled. */
#define HALE_LOG(lvl, target, msg, ...)                                       \
    do {                                                                      \
        hale_log_level hale_log_lvl_ = (lvl);                                 \
        const char *hale_log_tgt_ = (target);                                 \
        if (hale_log_enabled(hale_log_lvl_, hale_log_tgt_)) {                 \
            /** leading dummy lets the field list be empty */                  \
            const hale_log_field hale_log_f_[] = {{.key = NULL}, __VA_ARGS__}; \
            hale_log(hale_log_lvl_, hale_log_tgt_, (msg), hale_log_f_ + 1,   \
                     sizeof hale_log_f_ / sizeof hale_log_f_[0] - 1);         \
        }                                                                     \
    } while (0)

/** Send lines to fd instead of stdout (1). The logger never closes it.
 * Thread-safe (atomic); lines in flight finish on the old fd. */
void hale_log_set_fd(int fd);

/** Nothing is buffered (each line is written at once), so this only exists
 * so that shutdown code has one place to call; it returns immediately. */
void hale_log_flush(void);
/** Batches the calling thread's lines (see above) until hale_log_batch_end. */
void hale_log_batch_begin(void);
/** Writes the calling thread's batched lines now. */
void hale_log_batch_flush(void);
/** Flushes the calling thread's batch and stops batching. */
void hale_log_batch_end(void);

/** Process-wide counts since start: lines cut to HALE_LOG_LINE_MAX, and
 * lines lost because write(2) failed (closed stdout, EAGAIN for over a
 * second on a non-blocking fd, ...). Either pointer may be NULL.
 * Thread-safe; suitable for a metrics callback. */
void hale_log_counters(uint64_t *truncated, uint64_t *dropped);

/** True when a field named key is written as "[redacted]" (the Y7 rule
 * above). Lets other modules apply the same rule, e.g. to query parameter
 * names in the access log. Thread-safe, no allocation. */
bool hale_log_key_sensitive(const char *key);


#pragma GCC visibility pop

#endif
