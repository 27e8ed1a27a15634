//! The WebSocket: per-project subscriptions to [`ProjectEvent`]s, fed by one tail of the
//! database's event log.
//!
//! The [`EventHub`] reads the log (woken at once by this process's commits, polling for other
//! processes' ones) and routes each event, serialised once, to the queues of the sessions
//! subscribed to its project — so a burst of one project's events can only fill the queues of
//! that project's subscribers, never drop another user's. A session that subscribes with
//! `since` first replays that project's later events from the log, then streams live ones; the
//! `seq` of each event makes the boundary exact (no gap, no duplicate).
//!
//! Limits: no upgrade without a valid token (header or `?token=`), except a first message
//! `{"type":"auth","token":…}` of at most 4 KiB within 5 s; frames and messages over 64 KiB
//! close the socket; connections are capped per token and in total; a subscriber that stops
//! reading is dropped within [`SEND_TIMEOUT`] and its task ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use codeframe_core::{CoreError, ProjectService};
use codeframe_models::{EventSeq, ProjectEvent, ProjectId};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::auth::{Caller, bearer, caller_for, visible_project};
use crate::{ApiError, AppState};

/// Events a session may have queued before it counts as too slow and is dropped.
pub const HUB_CAPACITY: usize = 4096;
/// Largest WebSocket frame or message accepted.
pub const MAX_MESSAGE: usize = 64 << 10;
/// Largest first message of a session authenticating in-band.
const MAX_AUTH_MESSAGE: usize = 4 << 10;
/// How long a write to a client may take; a client that does not read is dropped after it.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(20);
const IDLE_LIMIT: Duration = Duration::from_secs(60);
const AUTH_WAIT: Duration = Duration::from_secs(5);
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Events read from the log per query while replaying.
const REPLAY_PAGE: i64 = 500;

/// One event as routed: serialised once for every subscriber.
#[derive(Debug, Clone)]
pub struct HubEvent {
    /// Its position in the event log.
    pub seq: EventSeq,
    /// Its project.
    pub project_id: ProjectId,
    /// The event as JSON text.
    pub json: Utf8Bytes,
}

impl HubEvent {
    fn of(event: &ProjectEvent) -> Option<Self> {
        let json = serde_json::to_string(event).ok()?;
        Some(Self { seq: event.seq, project_id: event.project_id, json: Utf8Bytes::from(json) })
    }
}

/// Where the hub puts a session's events, and how it tells the session it fell behind.
#[derive(Debug, Clone)]
struct SessionQueue {
    events: mpsc::Sender<HubEvent>,
    lagged: Arc<Notify>,
}

#[derive(Debug, Default)]
struct HubInner {
    /// The `seq` of the last event routed.
    cursor: AtomicI64,
    next_session: AtomicU64,
    /// Per project, the queues of the sessions subscribed to it.
    routes: Mutex<HashMap<ProjectId, HashMap<u64, SessionQueue>>>,
    /// Set once the server shuts down: every session closes with 1001.
    closing: tokio::sync::watch::Sender<bool>,
}

/// The event fan-out of a server: one tail of the event log, routed to the sessions subscribed
/// to each event's project. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct EventHub {
    inner: Arc<HubInner>,
}

impl EventHub {
    /// Closes every WebSocket session (code 1001, "server shutting down"), now and as they
    /// open: what a server does when it shuts down.
    pub fn close_all(&self) {
        self.inner.closing.send_replace(true);
    }

    /// WebSocket sessions subscribed to at least one project right now.
    pub fn subscribers(&self) -> usize {
        let routes = self.inner.routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut sessions: std::collections::HashSet<u64> = std::collections::HashSet::new();
        for queues in routes.values() {
            sessions.extend(queues.keys());
        }
        sessions.len()
    }

    /// A hub fed by a task tailing `service`'s event log from its current head: events
    /// committed by this process arrive at once, those of other processes within the
    /// service's poll interval. The task lives as long as the runtime.
    pub async fn follow(service: &ProjectService) -> Result<Self, CoreError> {
        let mut tail = service.tail_events(None, None).await?;
        let hub = Self::default();
        hub.inner.cursor.store(tail.cursor(), Ordering::Release);
        let (feed, retry) = (hub.clone(), service.config().poll_interval);
        tokio::spawn(async move {
            loop {
                match tail.next_batch().await {
                    Ok(batch) => batch.iter().for_each(|event| feed.route(event)),
                    Err(e) => {
                        warn!(error = %e, "event tail: cannot read the event log; retrying");
                        tokio::time::sleep(retry).await;
                    }
                }
            }
        });
        Ok(hub)
    }

    fn routes(&self) -> MutexGuard<'_, HashMap<ProjectId, HashMap<u64, SessionQueue>>> {
        self.inner.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands an event to each session subscribed to its project; a session whose queue is
    /// full is told it lagged and unsubscribed (others are not slowed down).
    fn route(&self, event: &ProjectEvent) {
        if let Some(subscribers) = self.routes().get_mut(&event.project_id)
            && let Some(e) = HubEvent::of(event)
        {
            subscribers.retain(|session, queue| match queue.events.try_send(e.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    info!(
                        session,
                        project_id = %event.project_id,
                        "a websocket subscriber fell behind; dropping it"
                    );
                    queue.lagged.notify_one();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        }
        self.inner.cursor.store(event.seq, Ordering::Release);
    }

    fn subscribe(&self, project_id: ProjectId, session: u64, queue: SessionQueue) {
        self.routes().entry(project_id).or_default().insert(session, queue);
    }

    fn unsubscribe(&self, project_id: ProjectId, session: u64) {
        let mut routes = self.routes();
        if let Some(subscribers) = routes.get_mut(&project_id) {
            subscribers.remove(&session);
            if subscribers.is_empty() {
                routes.remove(&project_id);
            }
        }
    }

    /// Subscriptions now open (a session subscribed to two projects counts twice).
    pub fn subscriptions(&self) -> usize {
        self.routes().values().map(HashMap::len).sum()
    }

    /// The `seq` of the last event routed.
    pub fn cursor(&self) -> EventSeq {
        self.inner.cursor.load(Ordering::Acquire)
    }
}

/// Caps on WebSocket connections, counted per token and in total.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    total: AtomicUsize,
    per_token: Mutex<HashMap<i64, usize>>,
}

/// One counted connection; uncounted when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    connections: Arc<Connections>,
    token_id: Option<i64>,
}

impl Connections {
    /// A slot for a connection (of `token_id`, once known), unless a cap is reached.
    fn take(self: &Arc<Self>, limits: &crate::Limits, token_id: Option<i64>) -> Option<Slot> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= limits.ws_connections {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let mut slot = Slot { connections: Arc::clone(self), token_id: None };
        match token_id {
            Some(id) if !slot.assign(limits, id) => None,
            _ => Some(slot),
        }
    }
}

impl Slot {
    /// Counts the connection against its token; `false` when that token is at its cap.
    fn assign(&mut self, limits: &crate::Limits, token_id: i64) -> bool {
        let mut per = self.connections.per_token.lock().unwrap_or_else(|p| p.into_inner());
        let n = per.entry(token_id).or_default();
        if *n >= limits.ws_connections_per_token {
            return false;
        }
        *n += 1;
        self.token_id = Some(token_id);
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.total.fetch_sub(1, Ordering::AcqRel);
        if let Some(id) = self.token_id {
            let mut per = self.connections.per_token.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = per.get_mut(&id) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per.remove(&id);
                }
            }
        }
    }
}

/// A message a client sends over the WebSocket (JSON text frames).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = WsClientMessage)]
pub(crate) enum ClientMessage {
    /// Authenticates in-band (first message, within 5 s, at most 4 KiB) when the upgrade
    /// carried no token.
    Auth {
        /// A bearer token.
        token: String,
    },
    /// Streams a project's events: those after `since` from the log first, then live ones.
    Subscribe {
        /// One of the caller's projects.
        project_id: ProjectId,
        /// The last `seq` handled (omitted: live events only).
        #[serde(default)]
        #[schema(value_type = Option<i64>)]
        since: Option<EventSeq>,
    },
    /// Stops a subscription.
    Unsubscribe {
        /// The project.
        project_id: ProjectId,
    },
    /// Answered with `{"type":"pong"}`.
    Ping,
}

/// `GET /ws?token=`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct WsQuery {
    /// A bearer token, for clients that cannot set the `Authorization` header.
    #[serde(default)]
    token: Option<String>,
}

fn too_many() -> Response {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_connections", "too many WebSocket connections")
        .into_response()
}

/// `GET /ws`: a bearer token in the header or `?token=`, or `{"type":"auth","token":…}` as the
/// first message.
#[utoipa::path(get, path = "/ws", operation_id = "subscribeEvents", tag = "events",
    summary = "Live events over a WebSocket",
    description = "Upgrades to a WebSocket. The token goes in the `Authorization` header, in \
`?token=`, or in a first message `{\"type\":\"auth\",\"token\":…}` (answered \
`{\"type\":\"authenticated\"}`). The client sends `WsClientMessage`s; the server sends \
`{\"type\":\"subscribed\",\"project_id\",\"seq\"|\"since\"}`, then each event of the \
project as a `ProjectEvent`, `{\"type\":\"gap\",\"project_id\",\"message\"}` when events \
after `since` were removed (reload the project's state), `{\"type\":\"unsubscribed\"}`, \
`{\"type\":\"pong\"}` and `{\"type\":\"error\",\"error\":{…}}`. Frames over 64 KiB close \
the socket; a client that stops reading is dropped after 10 s.",
    params(WsQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade request", body = crate::openapi::ErrorBody),
        (status = 401, description = "The token given is unknown, revoked or expired", body = crate::openapi::ErrorBody),
        (status = 429, description = "Too many WebSocket connections (`too_many_connections`)", body = crate::openapi::ErrorBody),
        crate::openapi::ServerErrors,
    ),
    security((), ("bearer" = [])))]
pub(crate) async fn handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<WsQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let token = bearer(&headers).map(str::to_owned).or(query.token);
    let caller = match token {
        Some(token) => match caller_for(&state, &token).await {
            Ok(Some(c)) => Some(c),
            Ok(None) => return ApiError::unauthorized("invalid token").into_response(),
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    let Some(slot) = state.connections.take(&state.limits, caller.map(|c| c.token_id)) else {
        return too_many();
    };
    upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| session(state, caller, slot, socket))
}

fn text(v: serde_json::Value) -> Message {
    Message::Text(Utf8Bytes::from(v.to_string()))
}

fn error_message(code: &str, message: &str) -> Message {
    text(json!({"type": "error", "error": {"code": code, "message": message, "details": {}}}))
}

type WsSink = SplitSink<WebSocket, Message>;

/// Writes one message, giving up after [`SEND_TIMEOUT`]: `Err` when the client is gone or does
/// not read.
async fn send(sink: &mut WsSink, message: Message) -> Result<(), ()> {
    match tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(()),
        Err(_) => {
            info!("a websocket client stopped reading; dropping it");
            Err(())
        }
    }
}

/// Closes with `code`, then waits briefly for the client's close reply: dropping a socket with
/// unread input resets it, and the reset can discard the close frame in flight.
async fn close(mut sink: WsSink, mut stream: SplitStream<WebSocket>, code: u16, reason: &'static str) {
    let frame = Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }));
    if send(&mut sink, frame).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(msg)) = stream.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// The first message of a session without a token: `{"type":"auth",…}`, at most 4 KiB, within
/// 5 s.
async fn authenticate_in_band(state: &AppState, rx: &mut SplitStream<WebSocket>) -> Option<Caller> {
    let first = tokio::time::timeout(AUTH_WAIT, rx.next()).await;
    let Ok(Some(Ok(Message::Text(t)))) = first else { return None };
    if t.len() > MAX_AUTH_MESSAGE {
        return None;
    }
    let Ok(ClientMessage::Auth { token }) = serde_json::from_str::<ClientMessage>(&t) else { return None };
    caller_for(state, &token).await.ok().flatten()
}

async fn session(state: AppState, caller: Option<Caller>, mut slot: Slot, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let caller = match caller {
        Some(c) => c,
        None => match authenticate_in_band(&state, &mut rx).await {
            Some(c) if slot.assign(&state.limits, c.token_id) => {
                if send(&mut tx, text(json!({"type": "authenticated"}))).await.is_err() {
                    return;
                }
                c
            }
            Some(_) => return close(tx, rx, 1013, "too many connections for this token").await,
            None => {
                let hint = error_message("unauthorized", "send {\"type\":\"auth\",\"token\":…} first");
                if send(&mut tx, hint).await.is_ok() {
                    close(tx, rx, 4401, "unauthorized").await;
                }
                return;
            }
        },
    };
    let id = state.hub.inner.next_session.fetch_add(1, Ordering::Relaxed);
    let (events_tx, mut events) = mpsc::channel::<HubEvent>(HUB_CAPACITY);
    let queue = SessionQueue { events: events_tx, lagged: Arc::new(Notify::new()) };
    let lagged = Arc::clone(&queue.lagged);
    // Subscribed projects, each with the `seq` of the last event sent for it.
    let mut subscriptions: HashMap<ProjectId, EventSeq> = HashMap::new();
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut last_seen = Instant::now();
    debug!(user_id = caller.user_id, session = id, "websocket session open");
    // The flag only ever goes from false to true, so any change means closing.
    let mut closing = state.hub.inner.closing.subscribe();
    let already_closing = *closing.borrow_and_update();
    let ending = loop {
        if already_closing {
            break Some((1001, "server shutting down"));
        }
        tokio::select! {
            _ = closing.changed() => break Some((1001, "server shutting down")),
            incoming = rx.next() => {
                let Some(Ok(msg)) = incoming else { break None };
                last_seen = Instant::now();
                let reply = match msg {
                    Message::Text(t) => match serde_json::from_str::<ClientMessage>(&t) {
                        Ok(ClientMessage::Subscribe { project_id, since }) => {
                            match visible_project(&state, caller, project_id).await {
                                Ok(_) => {
                                    state.hub.subscribe(project_id, id, queue.clone());
                                    match subscribe(&state, &mut tx, project_id, since).await {
                                        Ok(last) => {
                                            subscriptions.insert(project_id, last);
                                            None
                                        }
                                        Err(()) => break None,
                                    }
                                }
                                Err(e) => Some(error_message(e.code, &e.message)),
                            }
                        }
                        Ok(ClientMessage::Unsubscribe { project_id }) => {
                            state.hub.unsubscribe(project_id, id);
                            subscriptions.remove(&project_id);
                            Some(text(json!({"type": "unsubscribed", "project_id": project_id})))
                        }
                        Ok(ClientMessage::Ping) => Some(text(json!({"type": "pong"}))),
                        Ok(ClientMessage::Auth { .. }) => None,
                        Err(e) => Some(error_message("bad_request", &format!("unreadable message: {e}"))),
                    },
                    Message::Close(_) => break None,
                    Message::Binary(_) => Some(error_message("bad_request", "binary messages are not supported")),
                    Message::Ping(_) | Message::Pong(_) => None,
                };
                if let Some(reply) = reply
                    && send(&mut tx, reply).await.is_err()
                {
                    break None;
                }
            }
            event = events.recv() => {
                let Some(ev) = event else { break None };
                // Live events at or before what was replayed were sent already.
                let Some(last) = subscriptions.get_mut(&ev.project_id) else { continue };
                if ev.seq <= *last {
                    continue;
                }
                *last = ev.seq;
                if send(&mut tx, Message::Text(ev.json)).await.is_err() {
                    break None;
                }
                metrics::counter!("codeframe_events_delivered_total").increment(1);
            }
            () = lagged.notified() => break Some((1013, "too slow: events were dropped; reconnect with since")),
            _ = ping.tick() => {
                if last_seen.elapsed() > IDLE_LIMIT {
                    break Some((1001, "idle"));
                }
                if send(&mut tx, Message::Ping(Default::default())).await.is_err() {
                    break None;
                }
            }
        }
    };
    for project_id in subscriptions.keys() {
        state.hub.unsubscribe(*project_id, id);
    }
    if let Some((code, reason)) = ending {
        close(tx, rx, code, reason).await;
    }
    drop(slot);
    debug!(user_id = caller.user_id, session = id, "websocket session closed");
}

/// Acknowledges a subscription (already routed to the session's queue) and, with `since`,
/// replays the project's events after it from the log (or says there is a gap). Returns the
/// `seq` the live stream continues after; `Err` when the socket is gone.
async fn subscribe(
    state: &AppState,
    tx: &mut WsSink,
    project_id: ProjectId,
    since: Option<EventSeq>,
) -> Result<EventSeq, ()> {
    // "From now" is the log's head, not the hub's cursor: the tail may not have routed an
    // event committed a moment ago, and it must not arrive as if it came after.
    let live_from = match state.service.event_head().await {
        Ok(head) => head.max(state.hub.cursor()),
        Err(e) => {
            let e = ApiError::from(e);
            send(tx, error_message(e.code, &e.message)).await?;
            return Err(());
        }
    };
    let Some(since) = since else {
        send(tx, text(json!({"type": "subscribed", "project_id": project_id, "seq": live_from}))).await?;
        return Ok(live_from);
    };
    send(tx, text(json!({"type": "subscribed", "project_id": project_id, "since": since}))).await?;
    let mut cursor = since;
    loop {
        match state.service.events_since(project_id, cursor, REPLAY_PAGE).await {
            Ok(page) => {
                for event in &page.events {
                    let Some(e) = HubEvent::of(event) else { continue };
                    send(tx, Message::Text(e.json)).await?;
                }
                cursor = page.next_since;
                if !page.has_more {
                    debug!(project_id = %project_id, since, until = cursor, "events replayed");
                    return Ok(cursor);
                }
            }
            Err(e @ CoreError::EventGap { .. }) => {
                let mut gap = json!({"type": "gap", "project_id": project_id, "message": e.to_string()});
                if let (Some(g), Some(d)) = (gap.as_object_mut(), e.details().as_object()) {
                    g.extend(d.clone());
                }
                send(tx, text(gap)).await?;
                // Live from here: the client reloads the project's state.
                return Ok(live_from);
            }
            Err(e) => {
                let e = ApiError::from(e);
                send(tx, error_message(e.code, &e.message)).await?;
                return Ok(live_from);
            }
        }
    }
}
