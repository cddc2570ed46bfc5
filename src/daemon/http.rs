//! The HTTP side door of the daemon: `/healthz` for load balancers and monitors, `/metrics`
//! for Prometheus. It only reads — the store (a ping, the outbox counts) and the in-process
//! [`Metrics`] the scheduler and delivery feed — so it can never disturb planning or sending.
//! Every database call is bounded, so a hung database makes these answer "unhealthy" quickly
//! instead of hanging the prober. Connections are bounded too ([`HttpLimits`]): a client
//! must send its request head in time, a connection with nothing moving is closed, and at
//! most so many are held at once (the rest wait in the kernel's accept queue), so idle or
//! slow clients can neither exhaust the process's file descriptors nor starve the prober.

use crate::metrics::{Metrics, OutboxSnapshot};
use crate::store::Store;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// How long `/healthz` and `/metrics` wait for the database. Well under the usual probe
/// and scrape timeouts (Prometheus: 10 s), so the prober hears our verdict, not its own.
const DB_TIMEOUT: Duration = Duration::from_secs(2);

/// The Prometheus text format's content type.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long to wait after a failed accept (out of descriptors, say) before the next, so the
/// loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Bounds on the connections the endpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A complete request head must arrive within this of the connection opening, or of
    /// the previous response on a kept-alive connection.
    pub header_timeout: Duration,
    /// A connection with no bytes moving and no request in progress for this long is closed.
    pub idle_timeout: Duration,
    /// Connections held at once.
    pub max_connections: u32,
}

impl HttpLimits {
    pub fn from_config(http: &crate::config::Http) -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs(http.header_timeout_seconds),
            idle_timeout: Duration::from_secs(http.idle_timeout_seconds),
            max_connections: http.max_connections,
        }
    }
}

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

/// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish
/// and returns once every connection has closed.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, max_connections = limits.max_connections, "serving /healthz and /metrics");
    }
    serve_router(listener, router(state), limits, shutdown).await
}

/// Serves `router` with the same bounds on connections as the health endpoint; each request
/// carries its client's address (`ConnectInfo<SocketAddr>`).
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // One permit per open connection, taken before accept: at the cap, new connections wait
    // in the listen queue instead of costing a descriptor each.
    let slots = Arc::new(Semaphore::new(usize::try_from(limits.max_connections).unwrap_or(usize::MAX)));
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "health/metrics endpoint: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        tokio::spawn(connection(stream, router.clone(), limits, stopping.clone(), permit));
    }
    // Closing the listener refuses what still waits in its queue rather than leaving it hanging.
    drop(listener);
    let _ = stop.send(true);
    // Every open connection holds a permit: having them all back means all have closed.
    let _all = slots.acquire_many(limits.max_connections).await;
    Ok(())
}

/// One connection, start to close; its permit is given back only once the socket is closed,
/// so the cap counts descriptors.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: HttpLimits,
    mut stopping: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) {
    serve_connection(stream, router, limits, &mut stopping).await;
    drop(permit);
}

async fn serve_connection(stream: TcpStream, router: Router, limits: HttpLimits, stopping: &mut watch::Receiver<bool>) {
    let activity = Arc::new(Activity::new());
    let peer = stream.peer_addr().ok();
    let io = TokioIo::new(Watched { inner: stream, activity: activity.clone() });
    let inner = TowerToHyperService::new(router);
    let tracked = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        if let Some(peer) = peer {
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        }
        let busy = Busy::start(&tracked);
        let response = hyper::service::Service::call(&inner, request);
        async move {
            let response = response.await;
            drop(busy);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        if !draining && *stopping.borrow() {
            draining = true;
            conn.as_mut().graceful_shutdown();
        }
        let quiet_until = activity.deadline(limits.idle_timeout);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "health/metrics connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(quiet_until) => {
                if activity.idle_for() >= limits.idle_timeout {
                    tracing::debug!(idle_s = limits.idle_timeout.as_secs(), "closing an idle health/metrics connection");
                    return;
                }
            }
            changed = stopping.changed(), if !draining => {
                if changed.is_err() {
                    // The server is gone: nothing will say "stop" any more, so stop now.
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// When a connection last moved a byte, and whether a request is in progress (a handler
/// waiting on the database moves nothing, yet the connection is not idle).
#[derive(Debug)]
struct Activity {
    origin: Instant,
    /// Milliseconds after `origin` of the last byte read or written.
    last_ms: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity { origin: crate::clock::monotonic(), last_ms: AtomicU64::new(0), busy: AtomicUsize::new(0) }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    fn idle_for(&self) -> Duration {
        if self.busy.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        self.last().elapsed()
    }

    /// When the connection would have been idle for `idle`, as things stand.
    fn deadline(&self, idle: Duration) -> tokio::time::Instant {
        let from = if self.busy.load(Ordering::Relaxed) > 0 { crate::clock::monotonic() } else { self.last() };
        tokio::time::Instant::from_std(from + idle)
    }
}

/// A request in progress on a connection; the idle clock restarts when it ends.
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: &Arc<Activity>) -> Busy {
        activity.busy.fetch_add(1, Ordering::Relaxed);
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket, noting every byte that moves in [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
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

/// What the daemon reports about its own work, for [`verdict`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Work {
    /// Unix seconds when the last successful scan ended.
    last_success: Option<i64>,
    /// Why the last scan failed, if it did.
    scan_failed: Option<String>,
    /// Why delivery is paused, if it is.
    delivery_blocked: Option<String>,
}

impl Work {
    fn of(metrics: &Metrics) -> Work {
        Work {
            last_success: metrics.last_successful_scan(),
            scan_failed: metrics.scan_failed(),
            delivery_blocked: metrics.delivery_blocked(),
        }
    }
}

/// The health verdict: `Ok` when healthy, else the one-line reason.
fn verdict(db: DbCheck, work: &Work, now_unix: i64, stale_after: Duration) -> Result<(), String> {
    match db {
        DbCheck::Answered => {}
        DbCheck::Failed => return Err("database unreachable: it did not answer SELECT 1".into()),
        DbCheck::TimedOut => return Err(format!("database did not answer within {} s", DB_TIMEOUT.as_secs())),
    }
    // A recent success says nothing about a disk that filled since: the latest scan counts.
    if let Some(reason) = &work.scan_failed {
        return Err(format!("last scan failed: {reason}"));
    }
    let Some(at) = work.last_success else {
        // Right after start-up too: until one scan has gone through, nothing shows the
        // daemon can actually plan and deliver.
        return Err("no successful scan yet".into());
    };
    if let Some(reason) = &work.delivery_blocked {
        return Err(format!("delivery blocked: {reason}"));
    }
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
    crate::clock::wall_seconds()
}

async fn healthz(State(state): State<Arc<HttpState>>) -> Response {
    let db = ping(&state.store).await;
    match verdict(db, &Work::of(&state.metrics), wall_clock_unix(), state.stale_after) {
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

    const LIMITS: HttpLimits = HttpLimits {
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
        max_connections: 256,
    };

    async fn start() -> Running {
        start_with(LIMITS).await
    }

    async fn start_with(limits: HttpLimits) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("x.db").display());
        let store = Store::open(&url, 4, 5000).await.unwrap();
        let metrics = Arc::new(Metrics::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let state = HttpState { store: store.clone(), metrics: metrics.clone(), stale_after: HOUR };
        let server = tokio::spawn(serve(listener, state, limits, async move {
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
        assert_eq!((code, body.as_str()), (503, "last scan failed: the last scan failed\n"));

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
        let fresh = &Work { last_success: Some(1000), ..Work::default() };
        let never = &Work::default();
        assert_eq!(verdict(DbCheck::Answered, fresh, 1000, HOUR), Ok(()));
        assert_eq!(verdict(DbCheck::Answered, fresh, 1000 + 3600, HOUR), Ok(()));
        assert_eq!(verdict(DbCheck::Answered, fresh, 1000 + 3601, HOUR), Err("last successful scan 3601 s ago".into()));
        assert_eq!(verdict(DbCheck::Answered, fresh, 900, HOUR), Ok(()));
        assert_eq!(verdict(DbCheck::Answered, never, 1000, HOUR), Err("no successful scan yet".into()));
        assert_eq!(verdict(DbCheck::TimedOut, fresh, 1000, HOUR), Err("database did not answer within 2 s".into()));
        assert!(verdict(DbCheck::Failed, fresh, 1000, HOUR).unwrap_err().starts_with("database unreachable: "));
    }

    #[test]
    fn a_failed_last_scan_or_blocked_delivery_is_unhealthy_even_after_a_recent_success() {
        let failed = &Work { last_success: Some(1000), scan_failed: Some("disk full".into()), ..Work::default() };
        assert_eq!(verdict(DbCheck::Answered, failed, 1001, HOUR), Err("last scan failed: disk full".into()));
        // Failing for long: the failure is the news, not the age.
        assert_eq!(verdict(DbCheck::Answered, failed, 1000 + 7200, HOUR), Err("last scan failed: disk full".into()));
        let blocked =
            &Work { last_success: Some(1000), delivery_blocked: Some("AUTH refused".into()), ..Work::default() };
        assert_eq!(verdict(DbCheck::Answered, blocked, 1001, HOUR), Err("delivery blocked: AUTH refused".into()));
        assert!(verdict(DbCheck::Failed, failed, 1001, HOUR).unwrap_err().starts_with("database unreachable: "));
    }

    #[tokio::test]
    async fn healthz_is_503_while_scans_fail_or_delivery_is_blocked_and_200_once_they_recover() {
        let running = start().await;
        running.metrics.record_scan(Duration::from_millis(20), now(), true);
        assert_eq!(get(running.addr, "/healthz").await.0, 200);

        running.metrics.set_scan_failed(Some("database or disk is full".into()));
        running.metrics.record_scan(Duration::from_millis(20), now(), false);
        let (code, _, body) = get(running.addr, "/healthz").await;
        assert_eq!((code, body.as_str()), (503, "last scan failed: database or disk is full\n"));
        running.metrics.record_scan(Duration::from_millis(20), now(), true);
        assert_eq!(get(running.addr, "/healthz").await.0, 200);

        running.metrics.set_delivery_blocked(Some("smtp.example:587: AUTH refused (535)".into()));
        let (code, _, body) = get(running.addr, "/healthz").await;
        assert_eq!((code, body.as_str()), (503, "delivery blocked: smtp.example:587: AUTH refused (535)\n"));
        let (_, _, metrics) = get(running.addr, "/metrics").await;
        assert!(metrics.contains("\nnhacviec_delivery_blocked 1\n"), "{metrics}");
        running.metrics.set_delivery_blocked(None);
        assert_eq!(get(running.addr, "/healthz").await.0, 200);
    }

    /// How long until the server closes a connection the client never writes to.
    async fn closed_after(addr: std::net::SocketAddr, within: Duration) -> Duration {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        tokio::time::timeout(within, stream.read_to_end(&mut buf))
            .await
            .expect("the server should have closed the silent connection")
            .ok();
        started.elapsed()
    }

    #[tokio::test]
    async fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout() {
        let limits = HttpLimits { header_timeout: Duration::from_secs(1), ..LIMITS };
        let running = start_with(limits).await;
        let took = closed_after(running.addr, Duration::from_secs(10)).await;
        assert!(took >= Duration::from_millis(900), "closed too early: {took:?}");
    }

    #[tokio::test]
    async fn a_connection_with_nothing_moving_is_closed_at_the_idle_timeout() {
        let limits =
            HttpLimits { header_timeout: Duration::from_secs(60), idle_timeout: Duration::from_secs(1), ..LIMITS };
        let running = start_with(limits).await;
        let took = closed_after(running.addr, Duration::from_secs(10)).await;
        assert!(took >= Duration::from_millis(900), "closed too early: {took:?}");
    }

    #[tokio::test]
    async fn connections_past_the_cap_wait_and_are_served_when_a_slot_frees() {
        let limits = HttpLimits { header_timeout: Duration::from_secs(1), max_connections: 2, ..LIMITS };
        let running = start_with(limits).await;
        running.metrics.record_scan(Duration::from_millis(20), now(), true);
        let mut idle = Vec::new();
        for _ in 0..5 {
            idle.push(tokio::net::TcpStream::connect(running.addr).await.unwrap());
        }
        // Queued behind five silent connections, two slots, one-second header timeout.
        let (code, _, _) = tokio::time::timeout(Duration::from_secs(10), get(running.addr, "/healthz")).await.unwrap();
        assert_eq!(code, 200);
        running.stop.send(()).unwrap();
        let finished = tokio::time::timeout(Duration::from_secs(5), running.server).await;
        assert!(matches!(finished, Ok(Ok(Ok(())))), "{finished:?}");
    }
}
