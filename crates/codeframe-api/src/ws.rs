//! The WebSocket: per-project subscriptions to [`ProjectEvent`]s, fed by one tail of the
//! database's event log.
//!
//! The [`EventHub`] reads the log (woken at once by this process's commits, polling for other
//! processes' ones) and broadcasts each event, serialised once, to every session. A session
//! that subscribes with `since` first replays that project's later events from the log, then
//! streams live ones; the `seq` of each event makes the boundary exact (no gap, no duplicate).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use codeframe_core::{CoreError, ProjectService};
use codeframe_models::{EventSeq, ProjectEvent, ProjectId};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::auth::{Caller, bearer, caller_for, visible_project};
use crate::{ApiError, AppState};

/// Fans events out to every WebSocket; a subscriber that falls this far behind is dropped.
pub const HUB_CAPACITY: usize = 4096;
const PING_EVERY: Duration = Duration::from_secs(20);
const IDLE_LIMIT: Duration = Duration::from_secs(60);
const AUTH_WAIT: Duration = Duration::from_secs(10);
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Events read from the log per query while replaying.
const REPLAY_PAGE: i64 = 500;

/// One event as broadcast: serialised once for every subscriber.
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

/// The event fan-out of a server: one tail of the event log, broadcast to every WebSocket
/// session. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: broadcast::Sender<HubEvent>,
    /// The `seq` of the last event broadcast.
    cursor: Arc<AtomicI64>,
}

impl EventHub {
    /// A hub fed by a task tailing `service`'s event log from its current head: events
    /// committed by this process arrive at once, those of other processes within the
    /// service's poll interval. The task lives as long as the runtime.
    pub async fn follow(service: &ProjectService) -> Result<Self, CoreError> {
        let mut tail = service.tail_events(None, None).await?;
        let hub =
            Self { tx: broadcast::channel(HUB_CAPACITY).0, cursor: Arc::new(AtomicI64::new(tail.cursor())) };
        let (feed, retry) = (hub.clone(), service.config().poll_interval);
        tokio::spawn(async move {
            loop {
                match tail.next_batch().await {
                    Ok(batch) => {
                        for event in &batch {
                            if let Some(e) = HubEvent::of(event) {
                                // No receiver is not a failure: nobody is listening.
                                let _ = feed.tx.send(e);
                            }
                            feed.cursor.store(event.seq, Ordering::Release);
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "event tail: cannot read the event log; retrying");
                        tokio::time::sleep(retry).await;
                    }
                }
            }
        });
        Ok(hub)
    }

    /// A receiver of every event broadcast from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.tx.subscribe()
    }

    /// Connected receivers.
    pub fn receivers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// The `seq` of the last event broadcast.
    pub fn cursor(&self) -> EventSeq {
        self.cursor.load(Ordering::Acquire)
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Auth {
        token: String,
    },
    Subscribe {
        project_id: ProjectId,
        #[serde(default)]
        since: Option<EventSeq>,
    },
    Unsubscribe {
        project_id: ProjectId,
    },
    Ping,
}

/// `GET /ws`: a bearer token in the header, or `{"type":"auth","token":…}` as first message.
pub(crate) async fn handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let caller = match bearer(&headers) {
        Some(token) => match caller_for(&state, token).await {
            Ok(Some(c)) => Some(c),
            Ok(None) => return ApiError::unauthorized("invalid token").into_response(),
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    upgrade.on_upgrade(move |socket| session(state, caller, socket))
}

fn text(v: serde_json::Value) -> Message {
    Message::Text(Utf8Bytes::from(v.to_string()))
}

fn error_message(code: &str, message: &str) -> Message {
    text(json!({"type": "error", "error": {"code": code, "message": message, "details": {}}}))
}

async fn close(mut sink: impl SinkExt<Message> + Unpin, code: u16, reason: &'static str) {
    let _ =
        sink.send(Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }))).await;
}

async fn session(state: AppState, caller: Option<Caller>, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let caller = match caller {
        Some(c) => c,
        None => {
            let first = tokio::time::timeout(AUTH_WAIT, rx.next()).await;
            let token = match first {
                Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<ClientMessage>(&t) {
                    Ok(ClientMessage::Auth { token }) => token,
                    _ => String::new(),
                },
                _ => String::new(),
            };
            match caller_for(&state, &token).await {
                Ok(Some(c)) if !token.is_empty() => {
                    let _ = tx.send(text(json!({"type": "authenticated"}))).await;
                    c
                }
                _ => {
                    let _ = tx
                        .send(error_message("unauthorized", "send {\"type\":\"auth\",\"token\":…} first"))
                        .await;
                    close(tx, 4401, "unauthorized").await;
                    return;
                }
            }
        }
    };
    let mut events = state.hub.subscribe();
    // Subscribed projects, each with the `seq` of the last event sent for it.
    let mut subscriptions: HashMap<ProjectId, EventSeq> = HashMap::new();
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut last_seen = Instant::now();
    debug!(user_id = caller.user_id, "websocket session open");
    loop {
        tokio::select! {
            incoming = rx.next() => {
                let Some(Ok(msg)) = incoming else { break };
                last_seen = Instant::now();
                let reply = match msg {
                    Message::Text(t) => match serde_json::from_str::<ClientMessage>(&t) {
                        Ok(ClientMessage::Subscribe { project_id, since }) => {
                            match visible_project(&state, caller, project_id).await {
                                Ok(_) => match subscribe(&state, &mut tx, project_id, since).await {
                                    Ok(last) => {
                                        subscriptions.insert(project_id, last);
                                        None
                                    }
                                    Err(()) => break,
                                },
                                Err(e) => Some(error_message(e.code, &e.message)),
                            }
                        }
                        Ok(ClientMessage::Unsubscribe { project_id }) => {
                            subscriptions.remove(&project_id);
                            Some(text(json!({"type": "unsubscribed", "project_id": project_id})))
                        }
                        Ok(ClientMessage::Ping) => Some(text(json!({"type": "pong"}))),
                        Ok(ClientMessage::Auth { .. }) => None,
                        Err(e) => Some(error_message("bad_request", &format!("unreadable message: {e}"))),
                    },
                    Message::Close(_) => break,
                    Message::Binary(_) => Some(error_message("bad_request", "binary messages are not supported")),
                    Message::Ping(_) | Message::Pong(_) => None,
                };
                if let Some(reply) = reply
                    && tx.send(reply).await.is_err()
                {
                    break;
                }
            }
            event = events.recv() => match event {
                Ok(ev) => {
                    // Live events at or before what was replayed were sent already.
                    let Some(last) = subscriptions.get_mut(&ev.project_id) else { continue };
                    if ev.seq <= *last {
                        continue;
                    }
                    *last = ev.seq;
                    if tx.send(Message::Text(ev.json)).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    info!(user_id = caller.user_id, missed, "dropping a websocket subscriber that fell behind");
                    close(tx, 1013, "too slow: events were dropped; reconnect").await;
                    // Wait (briefly) for the client's close reply: dropping a socket with unread
                    // input resets it, and the reset can discard the close frame in flight.
                    let _ = tokio::time::timeout(CLOSE_WAIT, async {
                        while let Some(Ok(msg)) = rx.next().await {
                            if matches!(msg, Message::Close(_)) {
                                break;
                            }
                        }
                    })
                    .await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = ping.tick() => {
                if last_seen.elapsed() > IDLE_LIMIT {
                    close(tx, 1001, "idle").await;
                    return;
                }
                if tx.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    debug!(user_id = caller.user_id, "websocket session closed");
}

type WsSink = SplitSink<WebSocket, Message>;

/// Acknowledges a subscription and, with `since`, replays the project's events after it from
/// the log (or says there is a gap). Returns the `seq` the live stream continues after; `Err`
/// when the socket is gone.
async fn subscribe(
    state: &AppState,
    tx: &mut WsSink,
    project_id: ProjectId,
    since: Option<EventSeq>,
) -> Result<EventSeq, ()> {
    // "From now" is the log's head, not the hub's cursor: the tail may not have broadcast an
    // event committed a moment ago, and it must not arrive as if it came after.
    let live_from = match state.service.event_head().await {
        Ok(head) => head.max(state.hub.cursor()),
        Err(e) => {
            let e = ApiError::from(e);
            tx.send(error_message(e.code, &e.message)).await.map_err(drop)?;
            return Err(());
        }
    };
    let Some(since) = since else {
        let ack = json!({"type": "subscribed", "project_id": project_id, "seq": live_from});
        return tx.send(text(ack)).await.map(|()| live_from).map_err(drop);
    };
    tx.send(text(json!({"type": "subscribed", "project_id": project_id, "since": since})))
        .await
        .map_err(drop)?;
    let mut cursor = since;
    loop {
        match state.service.events_since(project_id, cursor, REPLAY_PAGE).await {
            Ok(page) => {
                for event in &page.events {
                    let Some(e) = HubEvent::of(event) else { continue };
                    tx.send(Message::Text(e.json)).await.map_err(drop)?;
                }
                cursor = page.next_since;
                if !page.has_more {
                    debug!(project_id, since, until = cursor, "events replayed");
                    return Ok(cursor);
                }
            }
            Err(e @ CoreError::EventGap { .. }) => {
                let mut gap = json!({"type": "gap", "project_id": project_id, "message": e.to_string()});
                if let (Some(g), Some(d)) = (gap.as_object_mut(), e.details().as_object()) {
                    g.extend(d.clone());
                }
                tx.send(text(gap)).await.map_err(drop)?;
                // Live from here: the client reloads the project's state.
                return Ok(live_from);
            }
            Err(e) => {
                let e = ApiError::from(e);
                tx.send(error_message(e.code, &e.message)).await.map_err(drop)?;
                return Ok(live_from);
            }
        }
    }
}
