//! Webhook delivery: one worker task per active webhook, reading committed events from history.
//!
//! - **Nothing lost.** A worker reads events after its webhook's cursor from the store (not from
//!   the bus, which only wakes it), delivers them one at a time in id order, and moves the cursor
//!   only after the receiver acknowledged (status below 400). After a restart it resumes from the
//!   cursor, so events published while the server was down or the receiver was failing are sent.
//! - **At least once, de-duplicable.** A failed attempt is retried with exponential backoff
//!   (`webhook_retry_base`, doubling, capped at `webhook_retry_max`). Every attempt for one event
//!   carries the same `X-Koor-Delivery` id, derived from the webhook and the event id, so it is
//!   also the same after a restart.
//! - **Bounded failure.** After `webhook_max_failures` consecutive failures the webhook is
//!   disabled and `koor.webhook.disabled` is published; `koor.webhook.failing` and
//!   `koor.webhook.recovered` mark the first failure and the next success.
//! - **Isolated.** Workers are separate tasks with a per-attempt timeout; publishing never waits on
//!   them (the bus drops a lagging worker's wake-ups, and the worker then re-reads the store).
//!
//! The [`run`] supervisor starts and stops workers as webhooks are created, changed, disabled and
//! deleted, which it learns from the `koor.webhook.*` events.

use std::collections::HashMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use koor_shared::ops::{
    DELIVERY_HEADER, EVENT_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER, WEBHOOK_HEADER,
};
use koor_shared::topic::PatternSet;
use koor_shared::types::Event;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::App;
use crate::store::StoreError;
use crate::store::events::{self, HistoryFilter};
use crate::store::webhooks::{self as rows, Row};

/// Events read from history per query.
const BATCH: usize = 100;
/// How far the in-memory cursor may run ahead of the stored one over non-matching events before
/// it is written back (saves re-scanning them after a restart).
const ADVANCE_EVERY: i64 = 1000;

/// The body of a delivery, as the original sends it.
#[derive(Serialize)]
struct Payload<'a, D: Serialize> {
    topic: &'a str,
    data: &'a D,
    source: &'a str,
    event_id: i64,
    created_at: &'a str,
}

/// The JSON body POSTed for `event`.
pub fn payload(event: &Event) -> Vec<u8> {
    serde_json::to_vec(&Payload {
        topic: &event.topic,
        data: &event.data,
        source: &event.source,
        event_id: event.id,
        created_at: &event.created_at,
    })
    .unwrap_or_default()
}

/// Hex HMAC-SHA256 of `body` keyed by `secret` (the `X-Koor-Signature` value).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The delivery id of `event_id` for a webhook: stable across retries and restarts, different for
/// a webhook deleted and created again under the same id.
pub fn delivery_id(hook: &Row, event_id: i64) -> String {
    let digest = Sha256::new()
        .chain_update(hook.hook.id.as_bytes())
        .chain_update([0])
        .chain_update(hook.hook.created_at.as_bytes())
        .chain_update([0])
        .chain_update(event_id.to_be_bytes())
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    uuid::Uuid::from_bytes(id).hyphenated().to_string()
}

/// The HTTP client deliveries go through.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("koor-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// One POST of `body` to `url`. `Ok(status)` when the receiver acknowledged (status < 400).
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Result<u16, (Option<u16>, String)> {
    let mut req = client
        .post(url)
        .header("Content-Type", "application/json")
        .header(EVENT_HEADER, "true");
    if !secret.is_empty() {
        req = req.header(SIGNATURE_HEADER, sign(secret, &body));
    }
    for (name, value) in headers {
        req = req.header(*name, value.as_str());
    }
    match req.body(body).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            if status < 400 {
                Ok(status)
            } else {
                Err((Some(status), format!("webhook returned status {status}")))
            }
        }
        Err(e) if e.is_timeout() => Err((None, "timed out waiting for the receiver".into())),
        Err(e) => Err((None, error_chain(&e))),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn count(app: &App, outcome: &'static str) {
    app.metrics
        .webhook_deliveries
        .get_or_create(&crate::metrics::OutcomeLabels { outcome })
        .inc();
}

/// Supervises the workers until the server stops.
pub async fn run(app: App) {
    let client = client(app.config.webhook_timeout);
    // Subscribe before the first listing, so no change between the two is missed.
    let mut changes = app.bus.subscribe();
    let mut workers: HashMap<String, (String, JoinHandle<()>)> = HashMap::new();
    reconcile(&app, &client, &mut workers).await;
    let stopping = app.stopping();
    let mut stopping = std::pin::pin!(stopping);
    loop {
        tokio::select! {
            () = &mut stopping => break,
            got = changes.recv() => match got {
                Ok(ev) if ev.event.topic.starts_with("koor.webhook.") => {
                    reconcile(&app, &client, &mut workers).await;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => reconcile(&app, &client, &mut workers).await,
                Err(RecvError::Closed) => break,
            }
        }
    }
    for (_, (_, worker)) in workers {
        let _ = worker.await;
    }
}

/// Makes the running workers match the active webhooks in the store.
async fn reconcile(
    app: &App,
    client: &reqwest::Client,
    workers: &mut HashMap<String, (String, JoinHandle<()>)>,
) {
    let hooks = match app.store.read(rows::list).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list webhooks");
            return;
        }
    };
    let active: HashMap<String, Row> = hooks
        .into_iter()
        .filter(|h| h.hook.active)
        .map(|h| (h.hook.id.clone(), h))
        .collect();
    workers.retain(|id, (generation, worker)| {
        let keep = active
            .get(id)
            .is_some_and(|h| &h.updated_at == generation && !worker.is_finished());
        if !keep {
            worker.abort();
        }
        keep
    });
    for (id, hook) in active {
        if workers.contains_key(&id) {
            continue;
        }
        let generation = hook.updated_at.clone();
        let worker = tokio::spawn(deliver_loop(app.clone(), client.clone(), hook));
        workers.insert(id, (generation, worker));
    }
}

enum Outcome {
    Delivered,
    Disabled,
    Stopped,
}

/// One webhook's worker: deliver every matching event after the cursor, in order, forever.
async fn deliver_loop(app: App, client: reqwest::Client, hook: Row) {
    let patterns = PatternSet::new(&hook.hook.patterns);
    let filter = HistoryFilter {
        patterns: Some(patterns.clone()),
        ..HistoryFilter::default()
    };
    let mut wake = app.bus.subscribe();
    let mut cursor = hook.hook.last_event_id;
    let mut stored_cursor = cursor;
    let stopping = app.stopping();
    let mut stopping = std::pin::pin!(stopping);
    tracing::debug!(webhook = %hook.hook.id, cursor, "webhook worker started");
    loop {
        // Every event up to `seen` is committed: none found below it means none match.
        let seen = app.bus.last_id();
        let f = filter.clone();
        let batch = match app
            .store
            .read(move |c| events::after(c, &f, cursor, BATCH))
            .await
        {
            Ok(b) => b,
            Err(StoreError::Closed) => return,
            Err(e) => {
                tracing::warn!(webhook = %hook.hook.id, error = %e, "cannot read events for a webhook");
                tokio::select! {
                    () = &mut stopping => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        if batch.is_empty() {
            cursor = cursor.max(seen);
            if cursor - stored_cursor >= ADVANCE_EVERY {
                let (id, generation) = (hook.hook.id.clone(), hook.updated_at.clone());
                if app
                    .store
                    .write(move |tx| rows::advance(tx.conn(), &id, &generation, cursor))
                    .await
                    .is_ok()
                {
                    stored_cursor = cursor;
                }
            }
            // Sleep until a newer matching event is committed.
            loop {
                tokio::select! {
                    () = &mut stopping => return,
                    got = wake.recv() => match got {
                        Ok(ev) if ev.event.id > cursor && patterns.matches(&ev.event.topic) => break,
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => return,
                    }
                }
            }
            continue;
        }
        for event in batch {
            match deliver(&app, &client, &hook, &event, &mut stopping).await {
                Outcome::Delivered => {
                    cursor = event.id;
                    stored_cursor = cursor;
                }
                Outcome::Disabled | Outcome::Stopped => return,
            }
        }
    }
}

/// Delivers one event, retrying until it is acknowledged, the webhook is disabled, or the server
/// stops.
async fn deliver(
    app: &App,
    client: &reqwest::Client,
    hook: &Row,
    event: &Event,
    stopping: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Outcome {
    let body = payload(event);
    let headers = [
        (DELIVERY_HEADER, delivery_id(hook, event.id)),
        (EVENT_ID_HEADER, event.id.to_string()),
        (WEBHOOK_HEADER, hook.hook.id.clone()),
    ];
    let config = &app.config;
    let mut delay = config.webhook_retry_base;
    loop {
        let attempt = post(client, &hook.hook.url, &hook.secret, body.clone(), &headers);
        let result = tokio::select! {
            () = &mut *stopping => return Outcome::Stopped,
            r = attempt => r,
        };
        let (id, generation, event_id) = (hook.hook.id.clone(), hook.updated_at.clone(), event.id);
        match result {
            Ok(status) => {
                count(app, "delivered");
                let recorded = app
                    .store
                    .write(move |tx| rows::delivered(tx, &id, &generation, event_id, status))
                    .await;
                return match recorded {
                    Ok(()) => Outcome::Delivered,
                    Err(_) => Outcome::Stopped,
                };
            }
            Err((status, error)) => {
                count(app, "failed");
                tracing::warn!(webhook = %hook.hook.id, event_id, error = %error, "webhook delivery failed");
                let max = i64::from(config.webhook_max_failures);
                let err = error.clone();
                let recorded = app
                    .store
                    .write(move |tx| {
                        let failures = rows::failed(tx, &id, &generation, status, &err)?;
                        if failures >= max {
                            rows::disable(tx, &id, &generation, &err)?;
                        }
                        Ok(failures)
                    })
                    .await;
                match recorded {
                    Ok(failures) if failures >= max => {
                        tracing::warn!(webhook = %hook.hook.id, failures, "webhook disabled after repeated failures");
                        return Outcome::Disabled;
                    }
                    Ok(_) => {}
                    Err(_) => return Outcome::Stopped,
                }
                tokio::select! {
                    () = &mut *stopping => return Outcome::Stopped,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(config.webhook_retry_max);
            }
        }
    }
}

/// Sends the original's test payload to one webhook now (`POST /api/webhooks/{id}/test`).
pub async fn test_fire(app: &App, hook: &Row) -> Result<u16, String> {
    let body = serde_json::to_vec(&serde_json::json!({
        "topic": "webhook.test",
        "data": {"webhook_id": hook.hook.id, "test": true},
        "source": "koor",
    }))
    .unwrap_or_default();
    let headers = [(WEBHOOK_HEADER, hook.hook.id.clone())];
    post(
        &client(app.config.webhook_timeout),
        &hook.hook.url,
        &hook.secret,
        body,
        &headers,
    )
    .await
    .map_err(|(_, e)| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
