//! The HTTP server loop: warp's route tree on hyper, with graceful shutdown, a bound on open
//! connections and a deadline for a new connection's first request.
//!
//! We run hyper ourselves rather than through `warp::serve` for these reasons:
//!
//! - Response header names go out in title case (`X-Koor-Version`, `Content-Type`), as the
//!   original server sent them, so scripts such as `curl -v … | grep X-Koor-Version` keep working.
//!   HTTP header names are case-insensitive, so no client can be hurt by it.
//! - A connection that has not sent a complete request head within `request_timeout` of being
//!   accepted is closed, whatever it did meanwhile (nothing at all, half a request line, an HTTP/2
//!   preface and then silence). hyper's own header timeout only starts with the first byte.
//! - At most `max_connections` are open at once (both listeners share the count; an upgraded
//!   WebSocket keeps its slot until it closes). At the bound the oldest connection that has not
//!   sent a request yet is closed to make room, so a crowd of idle sockets cannot lock out
//!   `/health` or real clients; if every open connection is busy with real requests, the newcomer
//!   gets a JSON 503 and is closed. The file-descriptor limit is never reached through us.
//! - Failing `accept`s (out of file descriptors after all, ...) back off up to a second, and are
//!   logged once per burst rather than on every retry.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use warp::filters::BoxedFilter;
use warp::reply::Response;

/// How long a client may take to send a request's headers once it started sending them.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest pause between retries of a failing `accept`.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// A burst of accept failures is summed up in the log at most this often.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// The open connections of both listeners.
#[derive(Clone)]
pub struct Connections {
    inner: Arc<ConnInner>,
}

struct ConnInner {
    max: usize,
    first_request_within: Duration,
    next_id: AtomicU64,
    /// Open connections by id (ids grow with accept order, so the first is the oldest).
    open: Mutex<BTreeMap<u64, Arc<ConnState>>>,
}

#[derive(Default)]
struct ConnState {
    /// A complete request head has arrived on this connection.
    requested: AtomicBool,
    /// Closes the connection (chosen to make room).
    evict: Notify,
}

/// What [`Connections::admit`] decided about a new connection.
enum Admission {
    Slot(Slot),
    Full,
}

/// A connection's place in the count; frees it when dropped.
struct Slot {
    id: u64,
    state: Arc<ConnState>,
    owner: Arc<ConnInner>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.owner.open.lock() {
            open.remove(&self.id);
        }
    }
}

impl Connections {
    pub fn new(max: usize, first_request_within: Duration) -> Self {
        Self {
            inner: Arc::new(ConnInner {
                max: max.max(2),
                first_request_within,
                next_id: AtomicU64::new(0),
                open: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    fn admit(&self) -> Admission {
        let Ok(mut open) = self.inner.open.lock() else {
            return Admission::Full;
        };
        if open.len() >= self.inner.max {
            // Make room by closing the oldest connection that never sent a request.
            let idle = open
                .iter()
                .find(|(_, c)| !c.requested.load(Ordering::Relaxed))
                .map(|(id, c)| (*id, c.clone()));
            match idle {
                Some((id, victim)) => {
                    open.remove(&id);
                    victim.evict.notify_one();
                }
                None => return Admission::Full,
            }
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::default());
        open.insert(id, state.clone());
        Admission::Slot(Slot {
            id,
            state,
            owner: self.inner.clone(),
        })
    }
}

/// A stream that holds its connection slot for as long as it lives, also after an upgrade to
/// a WebSocket (hyper hands the stream itself to the upgraded side).
struct Counted {
    stream: TcpStream,
    _slot: Arc<Slot>,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Serves `routes` on `listener` until `stopping` resolves, then stops accepting and waits for
/// the open connections to finish their requests (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    connections: Connections,
    stopping: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut stopping = std::pin::pin!(stopping);
    let mut failures = AcceptFailures::default();
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut stopping => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => {
                    failures.recovered();
                    pair
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    let pause = failures.failed(&e);
                    tokio::select! {
                        () = &mut stopping => break,
                        () = tokio::time::sleep(pause) => continue,
                    }
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let slot = match connections.admit() {
            Admission::Slot(slot) => Arc::new(slot),
            Admission::Full => {
                tokio::spawn(refuse(stream));
                continue;
            }
        };
        let state = slot.state.clone();
        let within = connections.inner.first_request_within;
        // The remote address goes into each request's extensions, for the audit log.
        let filtered = warp::service(routes.clone());
        let seen = state.clone();
        let service = hyper::service::service_fn(move |mut req: warp::http::Request<Incoming>| {
            seen.requested.store(true, Ordering::Relaxed);
            req.extensions_mut().insert(crate::audit::Peer(remote));
            tower_service::Service::call(&mut filtered.clone(), req)
        });
        let watcher = graceful.watcher();
        let io = TokioIo::new(Counted {
            stream,
            _slot: slot,
        });
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .title_case_headers(true)
                // A client must send a request's headers within this time, also on an idle
                // keep-alive connection: half-sent requests cannot hold connections forever.
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let conn = watcher.watch(builder.serve_connection_with_upgrades(io, service));
            tokio::select! {
                result = conn => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                () = no_request(&state, within) => {
                    tracing::debug!(within = ?within, "closing a connection that sent no request");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Resolves when the connection should close for want of a request: `within` passed without
/// one, or it was chosen to make room. Pending forever once a request has arrived.
async fn no_request(state: &ConnState, within: Duration) {
    let deadline = tokio::time::sleep(within);
    tokio::select! {
        () = deadline => {}
        () = state.evict.notified() => {}
    }
    if state.requested.load(Ordering::Relaxed) {
        std::future::pending::<()>().await;
    }
}

/// Answers a connection over the bound with a JSON 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    let body = r#"{"error":"too many open connections: try again shortly","code":503}"#;
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(reply.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Backoff and log throttling for a run of failing accepts.
#[derive(Default)]
struct AcceptFailures {
    run: u64,
    suppressed: u64,
    last_log: Option<tokio::time::Instant>,
}

impl AcceptFailures {
    /// Records a failure; returns how long to pause before the next accept.
    fn failed(&mut self, e: &io::Error) -> Duration {
        self.run += 1;
        let now = tokio::time::Instant::now();
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= ACCEPT_LOG_EVERY)
        {
            tracing::warn!(error = %e, failures = self.run, suppressed = self.suppressed, "accept failed; backing off");
            self.last_log = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        let exp = self.run.min(7) as u32;
        (Duration::from_millis(10) * 2u32.pow(exp)).min(MAX_ACCEPT_BACKOFF)
    }

    fn recovered(&mut self) {
        if self.run > 0 {
            tracing::info!(failures = self.run, "accepting connections again");
        }
        self.run = 0;
        self.suppressed = 0;
    }
}
