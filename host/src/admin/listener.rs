//! Serving the admin router on a TCP listener with the limits a listener reachable by
//! anyone needs: at most [`AdminLimits::max_connections`] connections at once (more wait
//! in the kernel's backlog until one ends), each dropped if its request headers do not
//! arrive within [`AdminLimits::header_read_timeout`] (which also ends idle keep-alive
//! connections), and every request answered 503 if it takes longer than
//! [`AdminLimits::request_timeout`]. HTTP/1.1 only, as browsers, curl and Prometheus speak.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// How the admin listener protects itself from slow and numerous clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// From a connection's start (or its previous answer) to the end of its request's
    /// headers.
    pub header_read_timeout: Duration,
    /// From a request's headers to its answer.
    pub request_timeout: Duration,
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits {
            max_connections: 64,
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Answers 503 if the rest of the router takes longer than the request timeout.
pub(super) async fn time_limit(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "error": format!(
                    "no answer within {}: the store may be slow or unreachable",
                    humantime::format_duration(limit)
                )
            })),
        )
            .into_response(),
    }
}

/// Serves `router` on `listener` within `limits` until `stop` turns true; then stops
/// accepting, lets requests under way finish (within the request timeout) and returns.
pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: AdminLimits,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        // A slot first: past the cap, connections wait in the backlog, unaccepted.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = stopped(&mut stop) => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "admin listener: accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let mut stop = stop.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "admin connection ended");
                    }
                }
                _ = stopped(&mut stop) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    // Requests under way get their answers; a client that sends none is not waited for.
    let _ = tokio::time::timeout(limits.request_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// Returns once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is not Send: drop it here, not across the caller's await.
    let _ = stop.wait_for(|stop| *stop).await;
}
