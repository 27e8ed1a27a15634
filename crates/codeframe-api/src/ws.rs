//! The WebSocket: per-project subscriptions to [`ProjectEvent`]s, fed by a broadcast hub.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use codeframe_core::{EventError, EventSink};
use codeframe_models::{ProjectEvent, ProjectId};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tracing::{debug, info};

use crate::auth::{Caller, bearer, caller_for, visible_project};
use crate::{ApiError, AppState};

/// Fans events out to every WebSocket; a subscriber that falls this far behind is dropped.
pub const HUB_CAPACITY: usize = 4096;
const PING_EVERY: Duration = Duration::from_secs(20);
const IDLE_LIMIT: Duration = Duration::from_secs(60);
const AUTH_WAIT: Duration = Duration::from_secs(10);
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The broadcast hub the service publishes into. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: broadcast::Sender<ProjectEvent>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self { tx: broadcast::channel(HUB_CAPACITY).0 }
    }
}

impl EventHub {
    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ProjectEvent> {
        self.tx.subscribe()
    }

    /// Connected receivers.
    pub fn receivers(&self) -> usize {
        self.tx.receiver_count()
    }
}

#[async_trait]
impl EventSink for EventHub {
    async fn publish(&self, event: &ProjectEvent) -> Result<(), EventError> {
        // No receiver is not a failure: nobody is listening.
        let _ = self.tx.send(event.clone());
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Auth { token: String },
    Subscribe { project_id: ProjectId },
    Unsubscribe { project_id: ProjectId },
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
    let mut subscriptions: HashSet<ProjectId> = HashSet::new();
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
                        Ok(ClientMessage::Subscribe { project_id }) => {
                            match visible_project(&state, caller, project_id).await {
                                Ok(_) => {
                                    subscriptions.insert(project_id);
                                    Some(text(json!({"type": "subscribed", "project_id": project_id})))
                                }
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
                Ok(ev) if subscriptions.contains(&ev.project_id) => {
                    let Ok(json) = serde_json::to_string(&ev) else { continue };
                    if tx.send(Message::Text(Utf8Bytes::from(json))).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
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
