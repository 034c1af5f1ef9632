//! Benchmark peer for hale: the same key-value API written the way an axum
//! user would write it (axum + tokio multi-thread runtime + rusqlite behind an
//! r2d2 pool, blocking SQLite calls moved off the runtime with
//! `spawn_blocking`).
//!
//! Endpoints:
//!   GET /health/liveness    200
//!   GET /health/readiness   200 when the database answers, else 503
//!   GET /v1/kv/{key}        200 + value + ETag, 304 on If-None-Match, 404
//!   PUT /v1/kv/{key}        201 (created) / 200 (replaced) + ETag; durable
//!
//! Storage: SQLite in WAL mode with synchronous=FULL (a 2xx answer to a PUT
//! means the write is on disk). Reads go through a small connection pool;
//! writes go through one writer connection (the usual advice for SQLite,
//! which allows a single writer at a time anyway).
//!
//! Environment: HOST (127.0.0.1), PORT (18081), WORKERS (runtime worker
//! threads, default = available cores), SQLITE_PATH or
//! APP_DATABASE__SQLITE_PATH (./data/axum-peer.db).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OptionalExtension};

const MAX_BODY_BYTES: usize = 1 << 20;
const MAX_KEY_BYTES: usize = 512;
const PRAGMAS: &str = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;";

#[derive(Clone)]
struct AppState {
    readers: r2d2::Pool<SqliteConnectionManager>,
    writer: Arc<Mutex<Connection>>,
}

fn json_error(status: StatusCode, error: &str, detail: &str) -> Response {
    let body = format!(r#"{{"error":"{error}","detail":"{detail}"}}"#);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    eprintln!("axum-peer: {e}");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "storage error",
    )
}

/// The 400 answer for a key outside 1..512 bytes or with control characters.
fn bad_key(key: &str) -> Option<Response> {
    (key.is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(char::is_control)).then(|| {
        json_error(
            StatusCode::BAD_REQUEST,
            "bad_key",
            "1..512 bytes of UTF-8, no control characters",
        )
    })
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("valid etag")
}

async fn liveness() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

async fn readiness(State(st): State<AppState>) -> Response {
    let ok = tokio::task::spawn_blocking(move || {
        st.readers
            .get()
            .ok()
            .and_then(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).ok())
            .is_some()
    })
    .await
    .unwrap_or(false);
    if ok {
        (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"status":"ready"}"#,
        )
            .into_response()
    } else {
        json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "database unavailable",
        )
    }
}

async fn get_kv(
    State(st): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = bad_key(&key) {
        return r;
    }
    let row =
        tokio::task::spawn_blocking(move || -> Result<Option<(Vec<u8>, String, i64)>, String> {
            let conn = st.readers.get().map_err(|e| e.to_string())?;
            let mut stmt = conn
                .prepare_cached("SELECT value, content_type, version FROM kv WHERE key = ?1")
                .map_err(|e| e.to_string())?;
            stmt.query_row([&key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
                .map_err(|e| e.to_string())
        })
        .await;
    match row {
        Ok(Ok(Some((value, content_type, version)))) => {
            let tag = etag(version);
            if headers
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| v == tag || v == "*")
            {
                return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response();
            }
            let ct = HeaderValue::from_str(&content_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            (
                StatusCode::OK,
                [(header::ETAG, tag), (header::CONTENT_TYPE, ct)],
                value,
            )
                .into_response()
        }
        Ok(Ok(None)) => json_error(StatusCode::NOT_FOUND, "not_found", "no such key"),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

async fn put_kv(
    State(st): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = bad_key(&key) {
        return r;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let res = tokio::task::spawn_blocking(move || -> Result<i64, String> {
        let conn = st.writer.lock().map_err(|e| e.to_string())?;
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO kv (key, value, content_type, version) VALUES (?1, ?2, ?3, 1) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value, \
                 content_type = excluded.content_type, version = kv.version + 1 \
                 RETURNING version",
            )
            .map_err(|e| e.to_string())?;
        stmt.query_row(rusqlite::params![key, &body[..], content_type], |r| {
            r.get(0)
        })
        .map_err(|e| e.to_string())
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
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
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
    let port: u16 = env_or("PORT", "18081").parse()?;
    let workers: usize = match std::env::var("WORKERS").ok().and_then(|v| v.parse().ok()) {
        Some(n) if n > 0 => n,
        _ => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    };
    let db_path = std::env::var("SQLITE_PATH")
        .or_else(|_| std::env::var("APP_DATABASE__SQLITE_PATH"))
        .unwrap_or_else(|_| "./data/axum-peer.db".to_owned());
    if let Some(dir) = std::path::Path::new(&db_path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)?;
    }

    let writer = Connection::open(&db_path)?;
    writer.execute_batch(PRAGMAS)?;
    writer.execute_batch(
        "CREATE TABLE IF NOT EXISTS kv (
             key TEXT PRIMARY KEY,
             value BLOB NOT NULL,
             content_type TEXT NOT NULL,
             version INTEGER NOT NULL
         )",
    )?;
    let manager = SqliteConnectionManager::file(&db_path).with_init(|c| c.execute_batch(PRAGMAS));
    let readers = r2d2::Pool::builder()
        .max_size((2 * workers).max(4) as u32)
        .build(manager)?;
    let state = AppState {
        readers,
        writer: Arc::new(Mutex::new(writer)),
    };

    let app = Router::new()
        .route("/health/liveness", get(liveness))
        .route("/health/readiness", get(readiness))
        .route("/v1/kv/{key}", get(get_kv).put(put_kv))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);

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
