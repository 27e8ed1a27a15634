//! The codeframe HTTP + WebSocket service.
//!
//! [`router`] builds the axum [`Router`] over an [`AppState`]; [`bind`] opens the database,
//! makes the first API token when none exists, and binds a listener. Every route is
//! described once in a table from which both the router and the OpenAPI document
//! (`GET /api/openapi.json`) are built. Errors always have one shape:
//! `{"error": {"code", "message", "details"}}`; the status of a core error comes from
//! [`codeframe_core::ErrorClass`], the same mapping the command line's exit codes use.
//!
//! Auth: `Authorization: Bearer <token>`; tokens are random, stored as SHA-256 hashes, each
//! owned by a user, and a token sees only its owner's projects (another owner's project is a
//! 404). The WebSocket at `/ws` takes the token in the header or as its first message.
//!
//! Events: the server tails the database's event log ([`EventHub`]), so WebSocket
//! subscribers receive every event of their projects whichever process wrote it (this server,
//! the command line, an application embedding `codeframe-core`); a subscriber that sends
//! `since` first receives what it missed.
//!
//! This crate uses `codeframe-core` and `codeframe-models` only: core is the only door.

mod auth;
mod dashboard;
mod error;
mod extract;
mod metrics;
mod openapi;
mod routes;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use codeframe_core::{Db, DbOptions, ProjectService, ServiceConfig};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use auth::Caller;
pub use codeframe_core::auth::LOCAL_USER;
pub use error::ApiError;
pub use metrics::install_recorder;
pub use openapi::document as openapi_document;
pub use routes::RouteSpec;
pub use ws::{EventHub, HUB_CAPACITY, MAX_MESSAGE, SEND_TIMEOUT};

/// Largest request body accepted anywhere (a bulk context upload); each route has its own,
/// smaller limit ([`RouteSpec::body_limit`]).
pub const DEFAULT_BODY_LIMIT: usize = 16 << 20;

/// Caps on what clients may hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// WebSocket connections in total (default 4,096).
    pub ws_connections: usize,
    /// WebSocket connections per token (default 1,024).
    pub ws_connections_per_token: usize,
    /// HTTP requests served at once (default 512); more wait up to `http_queue_wait`, then
    /// get 503.
    pub http_concurrency: usize,
    /// How long a request waits for a free slot (default 10 s).
    pub http_queue_wait: Duration,
    /// On shutdown, how long requests and transitions in flight may still run (default 30 s);
    /// past it they are abandoned, and their transactions roll back.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            ws_connections: 4096,
            ws_connections_per_token: 1024,
            http_concurrency: 512,
            http_queue_wait: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// How often a running server applies event retention and deletes expired leases.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(600);

/// What handlers share: the project service and the event hub fed by the event log.
#[derive(Clone)]
pub struct AppState {
    /// The service.
    pub service: ProjectService,
    /// Where events go out to WebSockets.
    pub hub: EventHub,
    /// Token hashes the database accepted recently (re-checked after
    /// [`auth::TOKEN_RECHECK`], so a revocation anywhere is seen within it).
    pub(crate) known_tokens: Arc<std::sync::RwLock<std::collections::HashMap<String, auth::KnownToken>>>,
    /// The caps in force.
    pub limits: Limits,
    pub(crate) connections: Arc<ws::Connections>,
    pub(crate) http_slots: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// A state over `db` with the default managers, and a hub tailing the event log from now.
    pub async fn new(db: Db) -> Result<Self, codeframe_core::CoreError> {
        Self::from_service(ProjectService::with_defaults(db)).await
    }

    /// A state over a service, with a hub tailing its event log from now on.
    pub async fn from_service(service: ProjectService) -> Result<Self, codeframe_core::CoreError> {
        let hub = EventHub::follow(&service).await?;
        Ok(Self::with(service, hub))
    }

    /// A state from a service and a hub (see [`EventHub::follow`]).
    pub fn with(service: ProjectService, hub: EventHub) -> Self {
        Self::with_limits(service, hub, Limits::default())
    }

    /// [`AppState::with`] and explicit caps.
    pub fn with_limits(service: ProjectService, hub: EventHub, limits: Limits) -> Self {
        Self {
            service,
            hub,
            known_tokens: Arc::default(),
            limits,
            connections: Arc::default(),
            http_slots: Arc::new(tokio::sync::Semaphore::new(limits.http_concurrency.max(1))),
        }
    }
}

/// Every route served, for documentation and tests.
pub fn routes() -> Vec<RouteSpec> {
    routes::route_table().into_iter().map(|(s, _)| s).collect()
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal server error").into_response()
}

/// Gives responses that axum or a layer produced without a body (405, 408, …) the error shape.
async fn shape_bare_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let code = match status {
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::REQUEST_TIMEOUT => "timeout",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::NOT_FOUND => "not_found",
            s if s.is_server_error() => "internal",
            _ => "bad_request",
        };
        let message = status.canonical_reason().unwrap_or("error").to_owned();
        return ApiError::new(status, code, message).into_response();
    }
    res
}

/// Serves at most [`Limits::http_concurrency`] requests at once; the others wait a little,
/// then are refused with 503 rather than piling up.
async fn limit_concurrency(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let slot =
        tokio::time::timeout(state.limits.http_queue_wait, Arc::clone(&state.http_slots).acquire_owned())
            .await;
    match slot {
        Ok(Ok(_permit)) => next.run(req).await,
        _ => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "too many requests at once; retry shortly")
                .into_response()
        }
    }
}

async fn route_not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route").into_response()
}

/// The service's router, with tracing, a body limit, a request timeout and panic catching.
pub fn router(state: AppState) -> Router {
    router_with(state, DEFAULT_BODY_LIMIT, Duration::from_secs(300))
}

/// [`router`] with an explicit body limit and request timeout.
pub fn router_with(state: AppState, body_limit: usize, timeout: Duration) -> Router {
    let mut public = Router::new();
    let mut protected = Router::new();
    for (spec, handler) in routes::route_table() {
        let handler = handler.layer(DefaultBodyLimit::max(spec.body_limit.min(body_limit)));
        if spec.auth {
            protected = protected.route(spec.path, handler);
        } else {
            public = public.route(spec.path, handler);
        }
    }
    let protected =
        protected.route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token));
    Router::new()
        .merge(public)
        .merge(protected)
        .merge(dashboard::routes())
        .fallback(route_not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(shape_bare_errors))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limit_concurrency))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn(metrics::record_http))
        .with_state(state)
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Database path or `sqlite:` URL.
    pub database: String,
    /// The project service's settings (leases, polling, event retention, workspace roots).
    pub service: ServiceConfig,
    /// The server's home (its database and, under `stores/`, the snapshot stores of the
    /// projects it creates). It may not lie inside a workspace root.
    pub home: std::path::PathBuf,
    /// Caps on connections and requests.
    pub limits: Limits,
    /// Where to serve `GET /metrics` (no token: bind it where only monitoring reaches);
    /// `None`: no metrics listener.
    pub metrics_addr: Option<SocketAddr>,
}

/// A bound server, ready to run.
pub struct Server {
    listener: tokio::net::TcpListener,
    router: Router,
    first_token: Option<String>,
    state: AppState,
    metrics: Option<(tokio::net::TcpListener, Router)>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database could not be opened.
    #[error(transparent)]
    Db(#[from] codeframe_core::DbError),
    /// The service could not start (the first token, the event log).
    #[error("cannot start the service: {0}")]
    Service(#[from] codeframe_core::CoreError),
    /// The address could not be bound, or serving failed.
    #[error("{addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The metrics recorder could not be installed.
    #[error("cannot serve metrics: {0}")]
    Metrics(String),
}

/// Opens the database, makes the first token when none exists, and binds the address.
pub async fn bind(config: ServeConfig) -> Result<Server, ServeError> {
    let mut settings = config.service;
    settings.workspace_roots =
        codeframe_core::resolve_workspace_roots(&settings.workspace_roots, &config.home)?;
    if settings.stores_dir.is_none() {
        settings.stores_dir = Some(config.home.join("stores"));
    }
    if settings.workspace_roots.is_empty() {
        tracing::info!(
            "no workspace root: projects cannot be created over HTTP (only with `codeframe init`)"
        );
    }
    let durable = settings.durability == codeframe_core::Durability::Full;
    let db = Db::open_with(&config.database, DbOptions { synchronous_full: durable, ..DbOptions::default() })
        .await?;
    let service = ProjectService::with_config(db, settings);
    let first_token = service.ensure_first_token().await?;
    let hub = EventHub::follow(&service).await?;
    let state = AppState::with_limits(service, hub, config.limits);
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|source| ServeError::Io { addr: config.addr, source })?;
    let metrics = match config.metrics_addr {
        Some(addr) => {
            let handle = install_recorder().map_err(ServeError::Metrics)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Io { addr, source })?;
            Some((listener, metrics::router(state.clone(), handle)))
        }
        None => None,
    };
    Ok(Server { router: router(state.clone()), listener, first_token, state, metrics })
}

impl Server {
    /// The metrics listener's address, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, std::io::Error> {
        self.listener.local_addr()
    }

    /// The token made on this first start, to show once; `None` when tokens existed.
    pub fn first_token(&self) -> Option<&str> {
        self.first_token.as_deref()
    }

    /// The shared state (service and hub).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then shuts down gracefully: no new connections or
    /// requests; WebSocket sessions close with 1001; requests and transitions (pause, resume,
    /// restore, …) in flight may finish within [`Limits::shutdown_grace`], after which they are
    /// abandoned (their transactions roll back; a pause's hold on the run gate is reclaimed by
    /// the next process on this machine, or expires).
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        use std::future::IntoFuture;
        let addr = self
            .listener
            .local_addr()
            .map_err(|source| ServeError::Io { addr: SocketAddr::from(([0, 0, 0, 0], 0)), source })?;
        tracing::info!(%addr, "serving");
        let service = self.state.service.clone();
        let housekeeping_service = service.clone();
        let housekeeping = tokio::spawn(async move {
            let mut every = tokio::time::interval(HOUSEKEEPING_EVERY);
            loop {
                every.tick().await;
                if let Err(e) = housekeeping_service.housekeeping().await {
                    tracing::warn!(error = %e, "housekeeping failed; retrying later");
                }
            }
        });
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let metrics = self.metrics.map(|(listener, router)| {
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.changed().await;
                    })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            })
        });
        let serve = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move {
                let _ = stopped.changed().await;
            })
            .into_future();
        let mut serve = std::pin::pin!(serve);
        let io = |source| ServeError::Io { addr, source };
        let signalled = tokio::select! {
            served = &mut serve => Err(served),
            () = shutdown => Ok(()),
        };
        if let Err(served) = signalled {
            housekeeping.abort();
            if let Some(m) = metrics {
                m.abort();
            }
            return served.map_err(io);
        }
        let grace = self.state.limits.shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace;
        tracing::info!(
            grace_ms = grace.as_millis(),
            transitions = service.transitions_in_flight(),
            "shutting down: no new requests; work in flight may finish"
        );
        self.state.hub.close_all();
        let _ = stop.send(true);
        let served = match tokio::time::timeout_at(deadline, &mut serve).await {
            Ok(served) => served.map_err(io),
            Err(_) => {
                tracing::warn!("requests still in flight at the shutdown deadline; abandoned");
                Ok(())
            }
        };
        // Transitions whose callers left (or that outlived their request) run on their own.
        let left = service
            .wait_for_transitions(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await;
        if left > 0 {
            tracing::warn!(
                transitions = left,
                "transitions still running at the shutdown deadline; they roll back"
            );
        }
        housekeeping.abort();
        if let Some(m) = metrics {
            m.abort();
        }
        tracing::info!("shut down");
        served
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM: what `codeframe serve` stops on.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// Binds (see [`bind`]) and serves until Ctrl-C or SIGTERM. A token made on this first start is logged
/// once at INFO level; programs that show it themselves use [`bind`] and
/// [`Server::first_token`].
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    let server = bind(config).await?;
    if let Some(token) = server.first_token() {
        tracing::info!(user = LOCAL_USER, token, "first start: API token created (shown once)");
    }
    server.run_until(shutdown_signal()).await
}
