//! A real webhook receiver on a loopback port: records every request, and answers as told
//! (acknowledge, fail with a status, or hang without answering).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use warp::Filter;
use warp::http::{HeaderMap, StatusCode};

/// Longest a test waits for deliveries before it fails (a guard against hangs, not a timing
/// assertion).
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ack,
    /// Answer this status to the next `n` requests, then acknowledge.
    FailNext(u32, u16),
    /// Answer this status to every request.
    Fail(u16),
    /// Never answer.
    Hang,
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Hit {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Whether the receiver acknowledged it.
    pub acked: bool,
}

impl Hit {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON delivery")
    }

    pub fn event_id(&self) -> i64 {
        self.json()["event_id"].as_i64().expect("event_id")
    }
}

struct Inner {
    mode: Mutex<Mode>,
    hits: Mutex<Vec<Hit>>,
    changed: Notify,
}

pub struct Receiver {
    pub url: String,
    inner: Arc<Inner>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Receiver {
    pub async fn start(mode: Mode) -> Receiver {
        let inner = Arc::new(Inner {
            mode: Mutex::new(mode),
            hits: Mutex::new(Vec::new()),
            changed: Notify::new(),
        });
        let state = inner.clone();
        let route = warp::any()
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    let mode = {
                        let mut m = state.mode.lock().expect("mode");
                        let now = *m;
                        if let Mode::FailNext(n, status) = now {
                            *m = if n <= 1 {
                                Mode::Ack
                            } else {
                                Mode::FailNext(n - 1, status)
                            };
                        }
                        now
                    };
                    let status = match mode {
                        Mode::Ack => StatusCode::OK,
                        Mode::FailNext(_, s) | Mode::Fail(s) => {
                            StatusCode::from_u16(s).expect("status")
                        }
                        Mode::Hang => StatusCode::OK,
                    };
                    state.hits.lock().expect("hits").push(Hit {
                        headers,
                        body,
                        acked: mode == Mode::Ack,
                    });
                    state.changed.notify_waiters();
                    if mode == Mode::Hang {
                        std::future::pending::<()>().await;
                    }
                    warp::reply::with_status("", status)
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(
            warp::serve(route)
                .incoming(listener)
                .graceful(async move {
                    let _ = stopped.await;
                })
                .run(),
        );
        Receiver {
            url,
            inner,
            stop: Some(stop),
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.inner.mode.lock().expect("mode") = mode;
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.inner.hits.lock().expect("hits").clone()
    }

    /// Waits until `done` holds over the hits so far (failing the test after [`HANG_GUARD`]).
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let deadline = tokio::time::Instant::now() + HANG_GUARD;
        loop {
            let changed = self.inner.changed.notified();
            let hits = self.hits();
            if done(&hits) {
                return hits;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!(
                    "receiver: gave up waiting for {what}; got {} requests",
                    hits.len()
                );
            }
        }
    }

    /// The acknowledged deliveries' event ids, each once, in the order first acknowledged.
    pub fn acked_ids(&self) -> Vec<i64> {
        let mut seen = Vec::new();
        for h in self.hits().iter().filter(|h| h.acked) {
            let id = h.event_id();
            if !seen.contains(&id) {
                seen.push(id);
            }
        }
        seen
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
