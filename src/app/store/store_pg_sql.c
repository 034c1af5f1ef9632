/* store_pg_sql: the SQL of the PostgreSQL store, one prepared statement
 * each. See store_pg_int.h; store_pg.c runs them. */
#ifdef HALE_HAVE_PQ

#include "store_pg_int.h"

#include <string.h>

/* The key's lock: (per-schema class, hash of the key), in the two-int4
 * advisory space (the migration lock uses the bigint one). A hash
 * collision only serializes two keys' writes. */
#define KEY_LOCK                                                                 \
    "WITH l AS MATERIALIZED (SELECT pg_advisory_xact_lock("                      \
    "hashtext('hale.kv.' || current_schema()), hashtext(encode($1::bytea, 'hex'))) AS locked) "

const kv_pg_stmt KV_PG_STMTS[S_N] = {
    [S_GET] = {"hale_get", "SELECT value, ctype, version, mtime FROM kv WHERE key = $1", 1, "get"},
    /* Every statement that gives a key a version first takes that key's
     * advisory lock (KEY_LOCK, held until commit) and only then calls
     * nextval, in a materialized CTE the write reads from: two writes of one
     * key are serialized from before their versions are taken until their
     * commits, so versions follow commit order (F0). The row lock alone
     * does not do that: an INSERT's VALUES are evaluated before it waits
     * for a conflicting row, and a paused INSERT of an absent key can land
     * after another writer created and deleted it. The update branch also
     * takes its version after the row lock (a replica still running older
     * statements during a rollout takes no key lock). Deletes give no
     * version and take no key lock (no lock-order cycle: writes take the
     * key lock, then the row lock; a delete only the row lock).
     * xmax = 0 only on a freshly inserted row: tells 201 from 200 */
    [S_PUT] = {"hale_put",
               KEY_LOCK "INSERT INTO kv AS t (key, value, ctype, version)"
               " SELECT $1::bytea, $2::bytea, $3::bytea, nextval('kv_version_seq') FROM l"
               " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,"
               " ctype = EXCLUDED.ctype, version = nextval('kv_version_seq')"
               " RETURNING t.version, (t.xmax = 0)", 3, "put"},
    [S_PUT_NEW] = {"hale_put_new",
                   KEY_LOCK "INSERT INTO kv (key, value, ctype, version)"
                   " SELECT $1::bytea, $2::bytea, $3::bytea, nextval('kv_version_seq') FROM l"
                   " ON CONFLICT (key) DO NOTHING RETURNING version, true", 3, "put"},
    [S_PUT_MATCH] = {"hale_put_match",
                     KEY_LOCK "UPDATE kv SET value = $2, ctype = $3, version = nextval('kv_version_seq')"
                     " FROM l WHERE key = $1 AND version = $4 RETURNING version, false", 4, "put"},
    [S_PUT_EXISTS] = {"hale_put_exists",
                      KEY_LOCK "UPDATE kv SET value = $2, ctype = $3, version = nextval('kv_version_seq')"
                      " FROM l WHERE key = $1 RETURNING version, false", 3, "put"},
    /* deleted count, and whether the key existed in the statement's
     * snapshot (the sub-select does not see the CTE's delete): tells 404
     * from 412 in one round trip */
    [S_DEL] = {"hale_del",
               "WITH d AS (DELETE FROM kv WHERE key = $1 AND NOT $3::boolean"
               " AND ($2::bigint = 0 OR version = $2::bigint)"
               " RETURNING 1)"
               " SELECT (SELECT count(*) FROM d), EXISTS (SELECT 1 FROM kv WHERE key = $1)", 3, "delete"},
    [S_LIST] = {"hale_list",
                "SELECT key FROM kv WHERE key >= $1 AND ($2::bytea IS NULL OR key < $2)"
                " AND key > $3 ORDER BY key LIMIT $4", 4, "list"},
    /* a read-only server (a standby after failover) cannot take writes */
    [S_PING] = {"hale_ping", "SELECT pg_is_in_recovery()", 0, "ping"},
};

const char *kv_pg_statement_sql(const char *name) {
    for (int i = 0; i < S_N; i++)
        if (strcmp(KV_PG_STMTS[i].name, name) == 0) return KV_PG_STMTS[i].sql;
    return NULL;
}

#endif /* HALE_HAVE_PQ */
