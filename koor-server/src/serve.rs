//! The HTTP server loop: warp's route tree on hyper, with graceful shutdown.
//!
//! We run hyper ourselves rather than through `warp::serve` for one reason: response header
//! names go out in title case (`X-Koor-Version`, `Content-Type`), as the original server sent
//! them, so scripts such as `curl -v … | grep X-Koor-Version` keep working. HTTP header names are
//! case-insensitive, so no client can be hurt by it.

use std::future::Future;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use warp::filters::BoxedFilter;
use warp::reply::Response;

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `routes` on `listener` until `stopping` resolves, then stops accepting and waits for
/// the open connections to finish their requests (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    stopping: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut stopping = std::pin::pin!(stopping);
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut stopping => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // The remote address goes into each request's extensions, for the audit log.
        let filtered = warp::service(routes.clone());
        let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            req.extensions_mut().insert(crate::audit::Peer(remote));
            tower_service::Service::call(&mut filtered.clone(), req)
        });
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .title_case_headers(true)
                // A client must send a request's headers within this time, also on an idle
                // keep-alive connection: half-sent requests cannot hold connections forever.
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
