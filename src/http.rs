//! The HTTP side door of the daemon: `/healthz` for load balancers and monitors, `/metrics`
//! for Prometheus. It only reads — the store (a ping, the outbox counts) and the in-process
//! [`Metrics`] the scheduler and delivery feed — so it can never disturb planning or sending.
//! Every database call is bounded, so a hung database makes these answer "unhealthy" quickly
//! instead of hanging the prober.

use crate::metrics::{Metrics, OutboxSnapshot};
use crate::store::Store;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long `/healthz` and `/metrics` wait for the database. Well under the usual probe
/// and scrape timeouts (Prometheus: 10 s), so the prober hears our verdict, not its own.
const DB_TIMEOUT: Duration = Duration::from_secs(2);

/// The Prometheus text format's content type.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the endpoints read.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// `/healthz` fails when the last successful scan ended longer ago than this.
    pub stale_after: Duration,
}

/// The routes, for [`serve`] (and for tests that drive the router directly).
pub fn router(state: HttpState) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics)).with_state(Arc::new(state))
}

/// Serves until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /healthz and /metrics");
    }
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

/// How the database answered a ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbCheck {
    Answered,
    Failed,
    TimedOut,
}

async fn ping(store: &Store) -> DbCheck {
    match tokio::time::timeout(DB_TIMEOUT, store.ping()).await {
        Ok(true) => DbCheck::Answered,
        Ok(false) => DbCheck::Failed,
        Err(_) => DbCheck::TimedOut,
    }
}

/// The health verdict: `Ok` when healthy, else the one-line reason.
fn verdict(db: DbCheck, last_success: Option<i64>, now_unix: i64, stale_after: Duration) -> Result<(), String> {
    match db {
        DbCheck::Answered => {}
        DbCheck::Failed => return Err("database unreachable: it did not answer SELECT 1".into()),
        DbCheck::TimedOut => return Err(format!("database did not answer within {} s", DB_TIMEOUT.as_secs())),
    }
    let Some(at) = last_success else {
        // Right after start-up too: until one scan has gone through, nothing shows the
        // daemon can actually plan and deliver.
        return Err("no successful scan yet".into());
    };
    // A clock stepped backwards gives a negative age; that is not staleness.
    let age = now_unix.saturating_sub(at).max(0);
    if u64::try_from(age).unwrap_or(0) > stale_after.as_secs() {
        return Err(format!("last successful scan {age} s ago"));
    }
    Ok(())
}

/// Wall-clock Unix seconds. Health is about real elapsed time, not the logical `now` that
/// planning runs on (like leases, see the design's "two clocks").
fn wall_clock_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

async fn healthz(State(state): State<Arc<HttpState>>) -> Response {
    let db = ping(&state.store).await;
    match verdict(db, state.metrics.last_successful_scan(), wall_clock_unix(), state.stale_after) {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(reason) => {
            tracing::debug!(%reason, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response()
        }
    }
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    // dead_limit 0: only the counts are wanted, not the dead letters themselves.
    let body = match tokio::time::timeout(DB_TIMEOUT, state.store.status_report(0)).await {
        Ok(Ok(report)) => state.metrics.render(&OutboxSnapshot::from_counts(&report.counts)),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "outbox counts unavailable; serving process counters only");
            state.metrics.render_without_outbox()
        }
        Err(_) => {
            tracing::debug!("outbox counts timed out; serving process counters only");
            state.metrics.render_without_outbox()
        }
    };
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;

    const HOUR: Duration = Duration::from_secs(3600);

    /// A running server on a random port; dropping `stop` (or sending on it) shuts it down.
    struct Running {
        addr: std::net::SocketAddr,
        stop: oneshot::Sender<()>,
        server: tokio::task::JoinHandle<std::io::Result<()>>,
        store: Store,
        metrics: Arc<Metrics>,
        _dir: tempfile::TempDir,
    }

    async fn start() -> Running {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("x.db").display());
        let store = Store::open(&url, 4, 5000).await.unwrap();
        let metrics = Arc::new(Metrics::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let state = HttpState { store: store.clone(), metrics: metrics.clone(), stale_after: HOUR };
        let server = tokio::spawn(serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Running { addr, stop, server, store, metrics, _dir: dir }
    }

    /// (status code, Content-Type, body) of `GET path` over a fresh connection.
    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await.unwrap().unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status_line = head.lines().next().unwrap();
        let code = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_string()))
            .unwrap_or_default();
        (code, content_type, body.to_string())
    }

    fn now() -> i64 {
        wall_clock_unix()
    }

    #[tokio::test]
    async fn healthz_is_503_until_the_first_scan_succeeds_and_200_after() {
        let running = start().await;

        let (code, _, body) = get(running.addr, "/healthz").await;
        assert_eq!((code, body.as_str()), (503, "no successful scan yet\n"));

        running.metrics.record_scan(Duration::from_millis(20), now(), false);
        let (code, _, body) = get(running.addr, "/healthz").await;
        assert_eq!((code, body.as_str()), (503, "no successful scan yet\n"));

        running.metrics.record_scan(Duration::from_millis(20), now(), true);
        let (code, content_type, body) = get(running.addr, "/healthz").await;
        assert_eq!((code, body.as_str()), (200, "ok\n"));
        assert!(content_type.starts_with("text/plain"), "{content_type}");

        running.stop.send(()).unwrap();
        running.server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn healthz_is_503_once_the_last_successful_scan_is_stale() {
        let running = start().await;
        running.metrics.record_scan(Duration::from_millis(20), now() - 2 * 3600, true);
        let (code, _, body) = get(running.addr, "/healthz").await;
        assert_eq!(code, 503);
        assert!(body.starts_with("last successful scan 72"), "{body}");
        assert!(body.ends_with(" s ago\n"), "{body}");
    }

    #[tokio::test]
    async fn healthz_is_503_when_the_database_goes_away() {
        let running = start().await;
        running.metrics.record_scan(Duration::from_millis(20), now(), true);
        assert_eq!(get(running.addr, "/healthz").await.0, 200);

        running.store.close().await;
        let (code, _, body) = get(running.addr, "/healthz").await;
        assert_eq!(code, 503);
        assert!(body.starts_with("database unreachable: "), "{body}");
    }

    #[tokio::test]
    async fn metrics_serve_every_family_as_prometheus_text() {
        let running = start().await;
        running.metrics.record_message("reminder", "email", "sent");
        running.metrics.record_scan(Duration::from_millis(300), 1_700_000_000, true);

        let (code, content_type, body) = get(running.addr, "/metrics").await;
        assert_eq!(code, 200);
        assert_eq!(content_type, METRICS_CONTENT_TYPE);
        for family in [
            "# TYPE nhacviec_messages_total counter",
            "# TYPE nhacviec_outbox_notices gauge",
            "# TYPE nhacviec_outbox_messages gauge",
            "# TYPE nhacviec_dead_letters gauge",
            "# TYPE nhacviec_scan_duration_seconds gauge",
            "# TYPE nhacviec_scans_total counter",
            "# TYPE nhacviec_last_successful_scan_timestamp_seconds gauge",
        ] {
            assert!(body.contains(family), "{family} missing from:\n{body}");
        }
        assert!(body.contains("nhacviec_messages_total{kind=\"reminder\",channel=\"email\",outcome=\"sent\"} 1\n"));
        assert!(body.contains("nhacviec_outbox_notices{status=\"pending\"} 0\n"));
        assert!(body.contains("nhacviec_dead_letters 0\n"));
        assert!(body.contains("nhacviec_scan_duration_seconds 0.3\n"));
        assert!(body.contains("nhacviec_last_successful_scan_timestamp_seconds 1700000000\n"));
    }

    #[tokio::test]
    async fn metrics_still_serve_the_process_counters_when_the_database_is_down() {
        let running = start().await;
        running.metrics.record_scan(Duration::from_millis(300), 1_700_000_000, true);
        running.store.close().await;

        let (code, _, body) = get(running.addr, "/metrics").await;
        assert_eq!(code, 200);
        assert!(body.contains("nhacviec_database_up 0\n"), "{body}");
        assert!(body.contains("nhacviec_scans_total{result=\"ok\"} 1\n"));
        assert!(!body.contains("nhacviec_outbox_"));
    }

    #[tokio::test]
    async fn an_unknown_path_is_404() {
        let running = start().await;
        assert_eq!(get(running.addr, "/").await.0, 404);
    }

    #[tokio::test]
    async fn the_server_returns_once_shutdown_is_signalled() {
        let running = start().await;
        running.stop.send(()).unwrap();
        let finished = tokio::time::timeout(Duration::from_secs(5), running.server).await;
        assert!(matches!(finished, Ok(Ok(Ok(())))), "{finished:?}");
    }

    #[test]
    fn the_verdict_names_what_is_wrong() {
        let fresh = Some(1000);
        assert_eq!(verdict(DbCheck::Answered, fresh, 1000, HOUR), Ok(()));
        assert_eq!(verdict(DbCheck::Answered, fresh, 1000 + 3600, HOUR), Ok(()));
        assert_eq!(verdict(DbCheck::Answered, fresh, 1000 + 3601, HOUR), Err("last successful scan 3601 s ago".into()));
        assert_eq!(verdict(DbCheck::Answered, fresh, 900, HOUR), Ok(()));
        assert_eq!(verdict(DbCheck::Answered, None, 1000, HOUR), Err("no successful scan yet".into()));
        assert_eq!(verdict(DbCheck::TimedOut, fresh, 1000, HOUR), Err("database did not answer within 2 s".into()));
        assert!(verdict(DbCheck::Failed, fresh, 1000, HOUR).unwrap_err().starts_with("database unreachable: "));
    }
}
