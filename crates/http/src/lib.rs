//! The `api` and `ui` roles over HTTP (axum): the route table with one access rule per route, the
//! auth extractors, JSON and page handlers, WebSocket live updates, metrics and security headers.
//!
//! Architecture invariant: handlers hold no business logic and never touch a store directly
//! except through `tale_core::service::Services`; errors become HTTP only in [`error`].

pub mod api;
pub mod auth;
pub mod chat_pages;
pub mod error;
pub mod json;
pub mod metrics;
pub mod middleware;
pub mod pages;
pub mod routes;
pub mod state;
pub mod ws;
pub mod ws_thread;

pub use state::AppState;

use axum::extract::{DefaultBodyLimit, Request};
use axum::response::{IntoResponse, Response};
use error::ApiError;
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// The whole application: routes, fallbacks, limits and response layers.
pub fn app(state: AppState) -> axum::Router {
    routes::router(&state)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::observe))
        .with_state(state)
}

async fn not_found(request: Request) -> Response {
    if request.uri().path().starts_with("/api/") {
        ApiError::RouteNotFound.into_response()
    } else {
        pages::not_found_page()
    }
}

async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let drain = state.clone();
    let app = app(state).into_make_service_with_connect_info::<SocketAddr>();
    // Without TCP_NODELAY a small WebSocket frame sent right after another waits for the
    // client's delayed ACK (up to 40 ms): streamed tokens would arrive in bursts.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            drain.start_draining();
        })
        .await
}
