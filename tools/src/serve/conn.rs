//! The accept loop: one task per connection (HTTP/1.1 with keep-alive), a deadline on
//! reading each request's headers (so a client trickling bytes holds only its own
//! connection, and not for long), and graceful shutdown: on the signal the listener closes,
//! connections finish the request they are on, and whatever is still open after the
//! shutdown timeout is abandoned.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;

/// Connection-level limits.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Time in-flight requests get to finish after the shutdown signal.
    pub shutdown_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes, then drains.
pub async fn serve(listener: TcpListener, router: Router, limits: ConnLimits, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        // Out of file descriptors and the like: wait a little rather than spin.
                        tracing::warn!("cannot accept a connection: {err}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!("connection ended: {err}");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(
        "shutting down: no new connections; waiting up to {} s for requests in flight",
        limits.shutdown_timeout.as_secs_f64()
    );
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after the shutdown timeout were abandoned");
    }
}

/// A future that completes on SIGTERM or SIGINT (Ctrl-C). The handlers are installed before
/// this returns, so a signal sent right after the server says it listens is not missed.
/// Call it inside the runtime.
#[cfg(unix)]
pub fn signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// A future that completes on Ctrl-C.
#[cfg(not(unix))]
pub fn signal() -> std::io::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
