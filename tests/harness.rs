//! A real server on an ephemeral loopback port with a temp data dir, and an HTTP client for it.

use koor_server::{Config, Running};
use reqwest::{Method, Response};
use tempfile::TempDir;

pub struct Server {
    pub running: Running,
    pub dir: TempDir,
    pub http: reqwest::Client,
    pub token: Option<String>,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, tweak).await
    }

    /// Starts on an existing data dir (to test restarts).
    pub async fn start_in(dir: TempDir, tweak: impl FnOnce(&mut Config)) -> Server {
        let mut config = Config::for_data_dir(dir.path());
        tweak(&mut config);
        let token = config.auth_token.clone();
        let running = koor_server::spawn(config).await.expect("server starts");
        Server {
            running,
            dir,
            http: reqwest::Client::new(),
            token,
        }
    }

    /// Stops the server and hands back its data dir.
    pub async fn stop(self) -> TempDir {
        self.running.stop().await;
        self.dir
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.url())
    }

    /// A request with the server's token, if it has one.
    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, self.url(path));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.req(Method::GET, path).send().await.expect("GET")
    }

    pub async fn put(&self, path: &str, body: impl Into<reqwest::Body>) -> Response {
        self.req(Method::PUT, path)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("PUT")
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> Response {
        self.req(Method::POST, path)
            .json(&body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.req(Method::DELETE, path).send().await.expect("DELETE")
    }
}

/// Reads a JSON body, asserting the status first.
pub async fn json(resp: Response, status: u16) -> serde_json::Value {
    let got = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    assert_eq!(got, status, "status (body: {text})");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts a JSON error body `{"error": <message>, "code": <status>}` containing `needle`.
pub async fn error(resp: Response, status: u16, needle: &str) -> serde_json::Value {
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = json(resp, status).await;
    assert!(ct.starts_with("application/json"), "content type {ct}");
    assert_eq!(body["code"], status, "{body}");
    let msg = body["error"].as_str().expect("error message");
    assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
    body
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What a subscriber sees next.
#[derive(Debug)]
pub enum Seen {
    Event(serde_json::Value),
    Closed(u16, String),
    /// Nothing within the wait.
    Nothing,
}

/// Opens a WebSocket on `path`, with extra headers; the HTTP status on refusal.
pub async fn ws_connect(s: &Server, path: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("ws://{}{path}", s.running.addr);
    let mut req = url.into_client_request().expect("request");
    if let Some(t) = &s.token {
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    for (k, v) in headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName =
            k.parse().expect("header name");
        req.headers_mut().insert(name, v.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

/// The next text frame as JSON, or the close frame, waiting at most `wait`.
pub async fn next(ws: &mut Ws, wait: std::time::Duration) -> Seen {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Seen::Nothing,
            Ok(None) => return Seen::Closed(1006, String::new()),
            Ok(Some(Err(_))) => return Seen::Closed(1006, String::new()),
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(t) => {
                return Seen::Event(serde_json::from_str(t.as_str()).expect("JSON frame"));
            }
            Message::Close(f) => {
                return f
                    .map(|f| Seen::Closed(u16::from(f.code), f.reason.to_string()))
                    .unwrap_or(Seen::Closed(1005, String::new()));
            }
            _ => continue,
        }
    }
}

/// Publishes an event and returns its id.
pub async fn publish(s: &Server, topic: &str, data: serde_json::Value) -> i64 {
    let e = json(
        s.post_json(
            "/api/events/publish",
            serde_json::json!({"topic": topic, "data": data, "source": "test"}),
        )
        .await,
        200,
    )
    .await;
    e["id"].as_i64().expect("id")
}

/// Registers an instance named `name`: its (id, token).
pub async fn register_agent(s: &Server, name: &str) -> (String, String) {
    let r = json(
        s.post_json("/api/instances/register", serde_json::json!({"name": name}))
            .await,
        200,
    )
    .await;
    (
        r["id"].as_str().expect("id").to_owned(),
        r["token"].as_str().expect("token").to_owned(),
    )
}
