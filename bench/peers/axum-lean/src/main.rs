//! Benchmark peer "axum-lean": the leanest handlers a careful axum user would
//! write for the key-value routes the bench loads, on the same SQLite as hale
//! (WAL, synchronous=FULL). The other peer (`../axum`) is the same API written
//! the usual way (pool, validation, JSON errors); this one is the strongest
//! axum baseline, so that hale's ratios are not measured against a heavy peer.
//!
//! What is left out, and why it is still "careful":
//!   - no validation beyond axum's own (the `Path<String>` extractor decodes
//!     and checks UTF-8; the default 2 MB body limit), no JSON error bodies:
//!     errors are bare status codes;
//!   - no connection pool, no `spawn_blocking` for reads: every runtime worker
//!     thread keeps its own read connection (thread-local) and runs the point
//!     lookup inline. A lookup of a hot row is a few microseconds, the kind of
//!     work tokio's guidance allows between awaits; the thread hop of
//!     `spawn_blocking` costs more than the query;
//!   - writes do wait for an fsync (hundreds of microseconds or more), which a
//!     careful user keeps off the runtime: one writer connection behind a
//!     `Mutex`, in `spawn_blocking`, one autocommit upsert (one transaction,
//!     one WAL fsync) per PUT, no batching;
//!   - no `If-None-Match`/`If-Match` handling (not benchmarked).
//!
//! Endpoints:
//!   GET /health/liveness    200 {"status":"ok"}
//!   GET /health/readiness   200 {"status":"ready"} (the database was opened
//!                           before the listener)
//!   GET /v1/kv/{key}        200 + value + ETag + stored Content-Type, 404
//!   PUT /v1/kv/{key}        201 (created) / 200 (replaced) + ETag; durable
//!
//! Environment: HOST (127.0.0.1), PORT (18084), WORKERS (runtime worker
//! threads, default = available cores), SQLITE_PATH or
//! APP_DATABASE__SQLITE_PATH (./data/axum-lean.db).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use rusqlite::{Connection, OptionalExtension};

const PRAGMAS: &str = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;";
const SELECT: &str = "SELECT value, content_type, version FROM kv WHERE key = ?1";
const UPSERT: &str = "INSERT INTO kv (key, value, content_type, version) VALUES (?1, ?2, ?3, 1) \
     ON CONFLICT(key) DO UPDATE SET value = excluded.value, \
     content_type = excluded.content_type, version = kv.version + 1 RETURNING version";

static DB_PATH: OnceLock<String> = OnceLock::new();

thread_local! {
    // One read connection per runtime worker thread, opened on first use.
    static READER: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

type Writer = Arc<Mutex<Connection>>;

fn open(path: &str) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.execute_batch(PRAGMAS)?;
    Ok(c)
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("valid etag")
}

fn failed(e: impl std::fmt::Display) -> Response {
    eprintln!("axum-lean: {e}");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

async fn liveness() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

async fn readiness() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ready"}"#,
    )
}

async fn get_kv(Path(key): Path<String>) -> Response {
    let row = READER.with(|cell| -> rusqlite::Result<Option<(Vec<u8>, String, i64)>> {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(open(DB_PATH.get().expect("database path set in main"))?);
        }
        let conn = slot.as_ref().expect("opened above");
        let mut stmt = conn.prepare_cached(SELECT)?;
        stmt.query_row([&key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
    });
    match row {
        Ok(Some((value, content_type, version))) => {
            let ct = HeaderValue::try_from(content_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            (
                [(header::ETAG, etag(version)), (header::CONTENT_TYPE, ct)],
                value,
            )
                .into_response()
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => failed(e),
    }
}

async fn put_kv(
    State(writer): State<Writer>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let res = tokio::task::spawn_blocking(move || -> rusqlite::Result<i64> {
        let conn = writer.lock().expect("writer lock");
        let mut stmt = conn.prepare_cached(UPSERT)?;
        stmt.query_row(rusqlite::params![key, &body[..], content_type], |r| {
            r.get(0)
        })
    })
    .await;
    match res {
        Ok(Ok(version)) => {
            let status = if version == 1 {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, [(header::ETAG, etag(version))]).into_response()
        }
        Ok(Err(e)) => failed(e),
        Err(e) => failed(e),
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let host = env_or("HOST", "127.0.0.1");
    let port: u16 = env_or("PORT", "18084").parse()?;
    let workers: usize = match std::env::var("WORKERS").ok().and_then(|v| v.parse().ok()) {
        Some(n) if n > 0 => n,
        _ => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    };
    let db_path = std::env::var("SQLITE_PATH")
        .or_else(|_| std::env::var("APP_DATABASE__SQLITE_PATH"))
        .unwrap_or_else(|_| "./data/axum-lean.db".to_owned());
    if let Some(dir) = std::path::Path::new(&db_path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)?;
    }

    let writer = open(&db_path)?;
    writer.execute_batch(
        "CREATE TABLE IF NOT EXISTS kv (
             key TEXT PRIMARY KEY,
             value BLOB NOT NULL,
             content_type TEXT NOT NULL,
             version INTEGER NOT NULL
         )",
    )?;
    DB_PATH.set(db_path).expect("set once");

    let app = Router::new()
        .route("/health/liveness", get(liveness))
        .route("/health/readiness", get(readiness))
        .route("/v1/kv/{key}", get(get_kv).put(put_kv))
        .with_state(Arc::new(Mutex::new(writer)));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let addr: SocketAddr = format!("{host}:{port}").parse()?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}
