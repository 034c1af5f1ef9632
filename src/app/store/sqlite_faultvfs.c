/* sqlite_faultvfs: see sqlite_faultvfs.h. Compiled to nothing without
 * HALE_TEST_HOOKS. One mutex guards the whole model: the writer thread
 * does nearly all the writing, so it is never contended for long. */
#include "sqlite_faultvfs.h"

#ifdef HALE_TEST_HOOKS

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECTOR 512
#define CRASH_EXIT 86

enum { K_WRITE, K_SYNC, K_TRUNC, K_ANY, K_NONE };

typedef struct undo {
    int64_t off;       /* write: where; truncate: the new size */
    size_t len;        /* bytes replaced (write) or cut off (truncate) */
    char *old;         /* their content before (zeros past the old end) */
    bool trunc;
} undo;

/* One modelled file (by path), shared by every handle open on it. */
typedef struct node {
    char *path;        /* NULL once deleted */
    int fd;            /* our own descriptor, for reading old bytes and undoing */
    int refs;
    int64_t synced_size;
    undo *log;
    size_t nlog, cap;
    struct node *next;
} node;

typedef struct fv_file {
    sqlite3_file base;
    node *n;           /* NULL: not modelled */
    sqlite3_file *real;
} fv_file;

static struct {
    pthread_mutex_t mu;
    sqlite3_vfs *real;
    node *nodes;
    uint64_t count[K_ANY + 1];
    int crash_kind;
    uint64_t crash_at;
    bool torn;
    uint64_t rng;
    int fail_kind;
    uint64_t fail_at;
    bool fail_persist;
    int fail_errno;
    const char *clear_path;
} G = {.mu = PTHREAD_MUTEX_INITIALIZER, .crash_kind = K_NONE, .fail_kind = K_NONE};

/* The errno of the fault this thread injected last, for xGetLastError
 * (SQLite's sqlite3_system_errno). */
static _Thread_local int last_errno;

static const char *const KIND_NAME[] = {"write", "sync", "truncate", "any"};

static uint64_t rnd(void) {
    G.rng ^= G.rng << 13;
    G.rng ^= G.rng >> 7;
    G.rng ^= G.rng << 17;
    return G.rng;
}

static void say(const char *what, int kind, uint64_t n, const node *nd) {
    const char *p = nd && nd->path ? nd->path : "?";
    const char *base = strrchr(p, '/');
    char line[512];
    int len = snprintf(line, sizeof line, "faultvfs: %s at %s %llu (%s)\n", what, KIND_NAME[kind],
                       (unsigned long long)n, base ? base + 1 : p);
    if (len > 0) {
        ssize_t w = write(2, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
        (void)w;
    }
}

static int64_t fd_size(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? (int64_t)st.st_size : 0;
}

static void write_all(int fd, const char *p, size_t len, int64_t off) {
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w <= 0) return;
        p += w;
        len -= (size_t)w;
        off += w;
    }
}

/* The bytes [off, off+len) as they are now (zeros past the end). */
static char *read_old(int fd, int64_t off, size_t len) {
    char *b = xcalloc(1, len ? len : 1);
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, b + got, len - got, (off_t)(off + (int64_t)got));
        if (r <= 0) break;
        got += (size_t)r;
    }
    return b;
}

static void log_push(node *n, undo u) {
    if (n->nlog == n->cap) {
        n->cap = n->cap ? n->cap * 2 : 16;
        n->log = xrealloc(n->log, n->cap * sizeof *n->log);
    }
    n->log[n->nlog++] = u;
}

static void log_clear(node *n) {
    for (size_t i = 0; i < n->nlog; i++) free(n->log[i].old);
    n->nlog = 0;
}

/* Undoes n's unsynced writes, newest first; with torn, each sector of a
 * write is kept with probability 1/2. */
static void revert(node *n, bool torn) {
    bool kept_past_end = false;
    for (size_t i = n->nlog; i-- > 0;) {
        const undo *u = &n->log[i];
        if (u->trunc) {
            write_all(n->fd, u->old, u->len, u->off);
            continue;
        }
        for (size_t s = 0; s < u->len; s += SECTOR) {
            size_t l = u->len - s < SECTOR ? u->len - s : SECTOR;
            if (torn && (rnd() & 1)) {
                if (u->off + (int64_t)(s + l) > n->synced_size) kept_past_end = true;
                continue;
            }
            write_all(n->fd, u->old + s, l, u->off + (int64_t)s);
        }
    }
    if (!kept_past_end && ftruncate(n->fd, (off_t)n->synced_size) != 0) say("ftruncate failed", K_TRUNC, 0, n);
    log_clear(n);
}

static void power_loss(int kind, uint64_t at, const node *why) {
    say("power loss", kind, at, why);
    for (node *n = G.nodes; n; n = n->next)
        if (n->path) revert(n, G.torn);
    _exit(CRASH_EXIT);
}

/* Counts a call of kind on n (under mu); crashes before a sync when asked.
 * Returns the errno to fail it with, or 0. */
static int count_call(int kind, node *n) {
    uint64_t c = ++G.count[kind];
    uint64_t any = ++G.count[K_ANY];
    if (kind == K_SYNC && G.crash_kind == K_SYNC && c == G.crash_at) power_loss(kind, c, n);
    if (G.fail_kind == K_NONE) return 0;
    uint64_t k = G.fail_kind == K_ANY ? any : G.fail_kind == kind ? c : 0;
    if (!k || k < G.fail_at || (!G.fail_persist && k != G.fail_at)) return 0;
    if (G.fail_persist && G.clear_path && access(G.clear_path, F_OK) == 0) {
        G.fail_kind = K_NONE;
        return 0;
    }
    say(G.fail_errno == ENOSPC ? "ENOSPC" : "EIO", kind, c, n);
    last_errno = G.fail_errno;
    return G.fail_errno;
}

static void maybe_crash_after(int kind, node *n) {
    if (G.crash_kind == kind && G.count[kind] == G.crash_at) power_loss(kind, G.crash_at, n);
}

/* ---- io methods ---- */

static void node_release(node *n) {
    if (--n->refs > 0 || (n->path && n->nlog)) return;
    for (node **pp = &G.nodes; *pp; pp = &(*pp)->next) {
        if (*pp == n) { *pp = n->next; break; }
    }
    log_clear(n);
    free(n->log);
    if (n->fd >= 0) close(n->fd);
    free(n->path);
    free(n);
}

static int fv_close(sqlite3_file *f) {
    fv_file *p = (fv_file *)f;
    int rc = p->real->pMethods ? p->real->pMethods->xClose(p->real) : SQLITE_OK;
    if (p->n) {
        pthread_mutex_lock(&G.mu);
        node_release(p->n);
        pthread_mutex_unlock(&G.mu);
        p->n = NULL;
    }
    return rc;
}

static int fv_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off) {
    fv_file *p = (fv_file *)f;
    return p->real->pMethods->xRead(p->real, buf, amt, off);
}

static int fv_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off) {
    fv_file *p = (fv_file *)f;
    if (!p->n) return p->real->pMethods->xWrite(p->real, buf, amt, off);
    pthread_mutex_lock(&G.mu);
    int e = count_call(K_WRITE, p->n);
    if (e) {
        pthread_mutex_unlock(&G.mu);
        errno = e;
        return e == ENOSPC ? SQLITE_FULL : SQLITE_IOERR_WRITE;
    }
    log_push(p->n, (undo){.off = off, .len = (size_t)amt, .old = read_old(p->n->fd, off, (size_t)amt)});
    int rc = p->real->pMethods->xWrite(p->real, buf, amt, off);
    maybe_crash_after(K_WRITE, p->n);
    pthread_mutex_unlock(&G.mu);
    return rc;
}

static int fv_truncate(sqlite3_file *f, sqlite3_int64 size) {
    fv_file *p = (fv_file *)f;
    if (!p->n) return p->real->pMethods->xTruncate(p->real, size);
    pthread_mutex_lock(&G.mu);
    int e = count_call(K_TRUNC, p->n);
    if (e) {
        pthread_mutex_unlock(&G.mu);
        errno = e;
        return SQLITE_IOERR_TRUNCATE;
    }
    int64_t cur = fd_size(p->n->fd);
    if (cur > size)
        log_push(p->n, (undo){.off = size, .len = (size_t)(cur - size), .trunc = true,
                              .old = read_old(p->n->fd, size, (size_t)(cur - size))});
    int rc = p->real->pMethods->xTruncate(p->real, size);
    maybe_crash_after(K_TRUNC, p->n);
    pthread_mutex_unlock(&G.mu);
    return rc;
}

static int fv_sync(sqlite3_file *f, int flags) {
    fv_file *p = (fv_file *)f;
    if (!p->n) return p->real->pMethods->xSync(p->real, flags);
    pthread_mutex_lock(&G.mu);
    int e = count_call(K_SYNC, p->n);
    if (e) {
        revert(p->n, false); /* the kernel may have dropped them */
        p->n->synced_size = fd_size(p->n->fd);
        pthread_mutex_unlock(&G.mu);
        errno = e;
        return SQLITE_IOERR_FSYNC;
    }
    int rc = p->real->pMethods->xSync(p->real, flags);
    if (rc == SQLITE_OK) {
        log_clear(p->n);
        p->n->synced_size = fd_size(p->n->fd);
    }
    pthread_mutex_unlock(&G.mu);
    return rc;
}

#define PASS(name, proto, args)                                   \
    static int fv_##name proto {                                  \
        fv_file *p = (fv_file *)f;                                \
        return p->real->pMethods->x##name args;                   \
    }
PASS(FileSize, (sqlite3_file *f, sqlite3_int64 *out), (p->real, out))
PASS(Lock, (sqlite3_file *f, int l), (p->real, l))
PASS(Unlock, (sqlite3_file *f, int l), (p->real, l))
PASS(CheckReservedLock, (sqlite3_file *f, int *out), (p->real, out))
PASS(FileControl, (sqlite3_file *f, int op, void *arg), (p->real, op, arg))
PASS(SectorSize, (sqlite3_file *f), (p->real))
PASS(DeviceCharacteristics, (sqlite3_file *f), (p->real))
PASS(ShmMap, (sqlite3_file *f, int pg, int sz, int ext, void volatile **pp), (p->real, pg, sz, ext, pp))
PASS(ShmLock, (sqlite3_file *f, int off, int n, int fl), (p->real, off, n, fl))
PASS(ShmUnmap, (sqlite3_file *f, int del), (p->real, del))
#undef PASS

static void fv_ShmBarrier(sqlite3_file *f) {
    fv_file *p = (fv_file *)f;
    p->real->pMethods->xShmBarrier(p->real);
}

/* Version 2: no xFetch, so SQLite never writes through a memory map. */
static const sqlite3_io_methods FV_METHODS = {
    .iVersion = 2, .xClose = fv_close, .xRead = fv_read, .xWrite = fv_write,
    .xTruncate = fv_truncate, .xSync = fv_sync, .xFileSize = fv_FileSize, .xLock = fv_Lock,
    .xUnlock = fv_Unlock, .xCheckReservedLock = fv_CheckReservedLock,
    .xFileControl = fv_FileControl, .xSectorSize = fv_SectorSize,
    .xDeviceCharacteristics = fv_DeviceCharacteristics, .xShmMap = fv_ShmMap,
    .xShmLock = fv_ShmLock, .xShmBarrier = fv_ShmBarrier, .xShmUnmap = fv_ShmUnmap,
};

/* ---- the vfs ---- */

static node *node_get(const char *path) {
    for (node *n = G.nodes; n; n = n->next)
        if (n->path && strcmp(n->path, path) == 0) { n->refs++; return n; }
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return NULL;
    node *n = xcalloc(1, sizeof *n);
    n->path = xstrdup(path);
    n->fd = fd;
    n->refs = 1;
    n->synced_size = fd_size(fd);
    n->next = G.nodes;
    G.nodes = n;
    return n;
}

static int fv_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags, int *out) {
    (void)vfs;
    fv_file *p = (fv_file *)f;
    memset(p, 0, sizeof *p);
    p->real = (sqlite3_file *)(p + 1);
    int rc = G.real->xOpen(G.real, name, p->real, flags, out);
    if (rc != SQLITE_OK) {
        p->base.pMethods = NULL;
        return rc;
    }
    p->base.pMethods = &FV_METHODS;
    if (name && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL))) {
        pthread_mutex_lock(&G.mu);
        p->n = node_get(name);
        pthread_mutex_unlock(&G.mu);
    }
    return SQLITE_OK;
}

static int fv_delete(sqlite3_vfs *vfs, const char *name, int dirsync) {
    (void)vfs;
    pthread_mutex_lock(&G.mu);
    for (node *n = G.nodes; n; n = n->next) {
        if (!n->path || strcmp(n->path, name) != 0) continue;
        log_clear(n);        /* a delete is durable (the unix VFS syncs the directory) */
        free(n->path);
        n->path = NULL;
        if (n->refs == 0) { n->refs = 1; node_release(n); }
        break;
    }
    pthread_mutex_unlock(&G.mu);
    return G.real->xDelete(G.real, name, dirsync);
}

static int fv_access(sqlite3_vfs *v, const char *name, int flags, int *out) {
    (void)v;
    return G.real->xAccess(G.real, name, flags, out);
}
static int fv_fullpath(sqlite3_vfs *v, const char *name, int n, char *out) {
    (void)v;
    return G.real->xFullPathname(G.real, name, n, out);
}
static int fv_random(sqlite3_vfs *v, int n, char *out) {
    (void)v;
    return G.real->xRandomness(G.real, n, out);
}
static int fv_sleep(sqlite3_vfs *v, int us) {
    (void)v;
    return G.real->xSleep(G.real, us);
}
static int fv_time(sqlite3_vfs *v, double *out) {
    (void)v;
    return G.real->xCurrentTime(G.real, out);
}
static int fv_lasterr(sqlite3_vfs *v, int n, char *out) {
    (void)v;
    int e = last_errno;
    last_errno = 0;
    return e ? e : G.real->xGetLastError(G.real, n, out);
}
static int fv_time64(sqlite3_vfs *v, sqlite3_int64 *out) {
    (void)v;
    return G.real->xCurrentTimeInt64(G.real, out);
}

static sqlite3_vfs FV_VFS = {
    .iVersion = 2, .zName = "hale-faultvfs", .xOpen = fv_open, .xDelete = fv_delete,
    .xAccess = fv_access, .xFullPathname = fv_fullpath, .xRandomness = fv_random,
    .xSleep = fv_sleep, .xCurrentTime = fv_time, .xGetLastError = fv_lasterr,
    .xCurrentTimeInt64 = fv_time64,
};

static int kind_of(const char *s, size_t n) {
    for (int k = 0; k <= K_ANY; k++)
        if (strlen(KIND_NAME[k]) == n && strncmp(s, KIND_NAME[k], n) == 0) return k;
    return K_NONE;
}

/* "KIND:N" (crash) or "KIND:N[+]:ERR" (fail). */
static int parse_point(const char *v, bool fail, char *err, size_t errlen) {
    const char *c = strchr(v, ':');
    int kind = c ? kind_of(v, (size_t)(c - v)) : K_NONE;
    char *end = NULL;
    unsigned long long n = c ? strtoull(c + 1, &end, 10) : 0;
    if (kind == K_NONE || !n || (!fail && kind == K_ANY))
        return hale_err(err, errlen, "HALE_TEST_SQLITE_FAULTS: bad point \"%s\"", v);
    if (!fail) {
        G.crash_kind = kind;
        G.crash_at = n;
        return *end && *end != ',' ? hale_err(err, errlen, "HALE_TEST_SQLITE_FAULTS: bad \"%s\"", v) : 0;
    }
    G.fail_kind = kind;
    G.fail_at = n;
    if (*end == '+') { G.fail_persist = true; end++; }
    if (strncmp(end, ":eio", 4) == 0) G.fail_errno = EIO;
    else if (strncmp(end, ":enospc", 7) == 0) G.fail_errno = ENOSPC;
    else return hale_err(err, errlen, "HALE_TEST_SQLITE_FAULTS: \"%s\": expected :eio or :enospc", v);
    return 0;
}

static int parse(const char *spec, char *err, size_t errlen) {
    for (const char *p = spec; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[128];
        snprintf(item, sizeof item, "%.*s", (int)len, p);
        if (strncmp(item, "crash=", 6) == 0) {
            if (parse_point(item + 6, false, err, errlen)) return -1;
        } else if (strncmp(item, "fail=", 5) == 0) {
            if (parse_point(item + 5, true, err, errlen)) return -1;
        } else if (strncmp(item, "torn=", 5) == 0) {
            G.torn = true;
            G.rng = strtoull(item + 5, NULL, 10) * 2654435761u + 88172645463325252ull;
        } else if (item[0]) {
            return hale_err(err, errlen, "HALE_TEST_SQLITE_FAULTS: unknown item \"%s\"", item);
        }
        p += len + (comma ? 1 : 0);
    }
    return 0;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int install_rc;
static char install_err[256];

static void install_once(void) {
    const char *spec = getenv("HALE_TEST_SQLITE_FAULTS");
    if (!spec || !*spec) return;
    if (parse(spec, install_err, sizeof install_err) != 0) { install_rc = -1; return; }
    G.clear_path = getenv("HALE_TEST_SQLITE_FAULTS_CLEAR");
    G.real = sqlite3_vfs_find("unix");
    if (!G.real) {
        install_rc = hale_err(install_err, sizeof install_err, "faultvfs: no unix VFS");
        return;
    }
    FV_VFS.szOsFile = (int)sizeof(fv_file) + G.real->szOsFile;
    FV_VFS.mxPathname = G.real->mxPathname;
    install_rc = sqlite3_vfs_register(&FV_VFS, 1) == SQLITE_OK
                     ? 0 : hale_err(install_err, sizeof install_err, "faultvfs: cannot register");
    if (install_rc == 0) {
        char line[256];
        int len = snprintf(line, sizeof line, "faultvfs: active (%s)\n", spec);
        if (len > 0) {
            ssize_t w = write(2, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
            (void)w;
        }
    }
}

int kv_faultvfs_install(char *err, size_t errlen) {
    pthread_once(&once, install_once);
    if (install_rc != 0) return hale_err(err, errlen, "%s", install_err);
    return 0;
}

#endif
