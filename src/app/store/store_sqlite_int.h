/* store_sqlite_int: the SQLite store's parts shared by its files
 * (store_sqlite.c: writes, open/close; store_sqlite_read.c: the reader
 * pool and reads). Not an interface for anything else. */
#ifndef APP_STORE_SQLITE_INT_H
#define APP_STORE_SQLITE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "store_sqlite.h"
#include "store_sqlite_faults.h"

typedef enum { OP_PUT, OP_DEL } op_kind;

typedef struct wop {
    op_kind kind;
    const char *key; size_t klen;
    const char *val; size_t vlen;
    const char *ctype;
    const kv_cond *cond;
    kv_status st;
    int64_t version;
    bool created;
    bool done;
    /* asynchronous ops: heap-allocated, completed by the writer thread */
    void (*cb)(void *arg, kv_status st, int64_t version, bool created);
    void *cb_arg;
    struct wop *next;
} wop;

typedef struct reader {
    sqlite3 *db;
    sqlite3_stmt *get, *list, *ping;
    struct reader *next_idle;  /* on the idle stack (under rmu) */
    struct reader *next_all;   /* every reader, for close (under rmu) */
} reader;

typedef struct sq_store {
    kv_store base;
    char *path;
    sqlite3 *wdb;
    sqlite3_stmt *w_sel, *w_put, *w_del, *w_meta;
    int64_t next_version;
    int64_t batch_ms;          /* wall clock of the batch being applied */
    pthread_t writer;
    pthread_mutex_t mu;
    pthread_cond_t have_work, batch_done;
    wop *head, *tail;
    bool stopping;
    pthread_mutex_t rmu;
    reader *idle;     /* readers not in use */
    reader *all;      /* every reader opened */
    sq_faults faults;
    bool reopen;               /* writer thread: reopen wdb before the next batch */
} sq_store;

int sq_open_db(const char *path, sqlite3 **db, char *err, size_t errlen);
int sq_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);
int sq_prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen);
void sq_readers_close(sq_store *s);
/* Closes the idle readers (those in use stay): with no connection left,
 * the next open rebuilds SQLite's WAL index from the files on disk. */
void sq_readers_drop_idle(sq_store *s);
kv_status sq_get(kv_store *base, const char *key, size_t klen, kv_item *out);
kv_status sq_list(kv_store *base, const char *prefix, size_t plen, const char *after,
                  size_t alen, size_t limit, char ***keys, size_t *nkeys, bool *more);
int sq_ping(kv_store *base, char *err, size_t errlen);

#endif
