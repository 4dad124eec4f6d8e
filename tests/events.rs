use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::harness::{Seen, Server, error, json, next, publish, ws_connect};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn publish_and_history() {
    let s = Server::start().await;
    assert_eq!(
        json(s.get("/api/events/history").await, 200).await,
        json!([])
    );

    let e = json(
        s.post_json(
            "/api/events/publish",
            json!({"topic": "api.change", "data": {"k": 1}, "source": "agent-a"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(e["topic"], "api.change");
    assert_eq!(e["data"], json!({"k": 1}));
    assert_eq!(e["source"], "agent-a");
    assert!(e["id"].as_i64().expect("id") >= 1);
    assert!(e["created_at"].as_str().expect("time").ends_with('Z'));

    publish(&s, "api.change.contract", json!(2)).await;
    publish(&s, "build.done", json!(null)).await;
    let last = publish(&s, "api.other", json!("x")).await;

    let all = json(s.get("/api/events/history").await, 200).await;
    let topics: Vec<&str> = all
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["topic"].as_str().expect("topic"))
        .collect();
    assert_eq!(
        topics,
        [
            "api.other",
            "build.done",
            "api.change.contract",
            "api.change"
        ],
        "newest first"
    );
    assert_eq!(all[0]["id"], last);

    let api = json(s.get("/api/events/history?topic=api.*").await, 200).await;
    let topics: Vec<&str> = api
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["topic"].as_str().expect("topic"))
        .collect();
    assert_eq!(topics, ["api.other", "api.change"], "api.* is one segment");
    let deep = json(s.get("/api/events/history?topic=api.**").await, 200).await;
    assert_eq!(deep.as_array().expect("array").len(), 3);
    let exact = json(s.get("/api/events/history?topic=api.change").await, 200).await;
    assert_eq!(
        exact.as_array().expect("array").len(),
        1,
        "a literal topic: {exact}"
    );
    assert_eq!(exact[0]["topic"], "api.change");
    let two = json(s.get("/api/events/history?last=2").await, 200).await;
    assert_eq!(two.as_array().expect("array").len(), 2);
    let src = json(s.get("/api/events/history?source=agent-a").await, 200).await;
    assert_eq!(src.as_array().expect("array").len(), 1);

    let first_id = e["id"].as_i64().expect("id");
    let since = json(
        s.get(&format!("/api/events/history?since={first_id}"))
            .await,
        200,
    )
    .await;
    let ids: Vec<i64> = since
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "since lists oldest first: {ids:?}"
    );

    let future = json(
        s.get("/api/events/history?from=2999-01-01T00:00:00Z").await,
        200,
    )
    .await;
    assert_eq!(future, json!([]));
    let past = json(
        s.get("/api/events/history?to=2000-01-01T00:00:00Z").await,
        200,
    )
    .await;
    assert_eq!(past, json!([]));
    let window = json(
        s.get("/api/events/history?from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00%2B02:00")
            .await,
        200,
    )
    .await;
    assert_eq!(window.as_array().expect("array").len(), 4);

    error(
        s.get("/api/events/history?from=yesterday").await,
        400,
        "from",
    )
    .await;
    error(s.get("/api/events/history?last=0").await, 400, "last").await;
    error(
        s.post_json("/api/events/publish", json!({"data": 1})).await,
        400,
        "topic is required",
    )
    .await;
    error(
        s.post_json(
            "/api/events/publish",
            json!({"topic": "koor.state.updated"}),
        )
        .await,
        400,
        "reserved",
    )
    .await;
    let resp = s
        .req(reqwest::Method::POST, "/api/events/publish")
        .body("{not json")
        .send()
        .await
        .expect("POST");
    error(resp, 400, "invalid JSON").await;
    error(s.get("/api/events/publish").await, 405, "not allowed").await;
}

#[tokio::test]
async fn subscribe_filters_by_pattern_in_order() {
    let s = Server::start().await;
    let mut ws = ws_connect(&s, "/api/events/subscribe?pattern=api.*", &[])
        .await
        .expect("connect");
    let mut all = ws_connect(&s, "/api/events/subscribe?pattern=*", &[])
        .await
        .expect("connect");
    let mut union = ws_connect(
        &s,
        "/api/events/subscribe?pattern=build.*&pattern=api.change.*",
        &[],
    )
    .await
    .expect("connect");
    let m = json(s.get("/api/metrics").await, 200).await;
    assert_eq!(m["subscribers"], 3);

    for topic in ["api.change", "api.change.contract", "build.done", "api.x"] {
        publish(&s, topic, json!({"t": topic})).await;
    }
    let mut got = Vec::new();
    for _ in 0..2 {
        match next(&mut ws, WAIT).await {
            Seen::Event(e) => got.push(e["topic"].as_str().expect("topic").to_owned()),
            other => panic!("expected an event, got {other:?}"),
        }
    }
    assert_eq!(got, ["api.change", "api.x"]);
    assert!(matches!(
        next(&mut ws, Duration::from_millis(200)).await,
        Seen::Nothing
    ));

    let mut ids = Vec::new();
    for _ in 0..4 {
        match next(&mut all, WAIT).await {
            Seen::Event(e) => ids.push(e["id"].as_i64().expect("id")),
            other => panic!("expected an event, got {other:?}"),
        }
    }
    assert!(
        ids.windows(2).all(|w| w[0] + 1 == w[1]),
        "in id order: {ids:?}"
    );

    let mut got = Vec::new();
    for _ in 0..2 {
        if let Seen::Event(e) = next(&mut union, WAIT).await {
            got.push(e["topic"].as_str().expect("topic").to_owned());
        }
    }
    assert_eq!(got, ["api.change.contract", "build.done"]);
}

#[tokio::test]
async fn since_replay_races_live_publishes_without_gap_or_duplicate() {
    let s = Arc::new(Server::start().await);
    let mut first = 0;
    for i in 0..150 {
        let id = publish(&s, "race.x", json!(i)).await;
        if i == 49 {
            first = id;
        }
    }
    // Keep publishing while the subscriber replays.
    let publisher = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut last = 0;
            for i in 0..300 {
                last = publish(&s, "race.x", json!(1000 + i)).await;
            }
            last
        })
    };
    let mut ws = ws_connect(
        &s,
        &format!("/api/events/subscribe?pattern=race.*&since={first}"),
        &[],
    )
    .await
    .expect("connect");
    let last = publisher.await.expect("publisher");
    let mut ids = Vec::new();
    while ids.last().is_none_or(|l| *l < last) {
        match next(&mut ws, WAIT).await {
            Seen::Event(e) => ids.push(e["id"].as_i64().expect("id")),
            other => panic!("stream ended early after {} events: {other:?}", ids.len()),
        }
    }
    let expected: Vec<i64> = ((first + 1)..=last).collect();
    assert_eq!(ids, expected, "every event after since, once, in order");
}

#[tokio::test]
async fn a_reader_that_stops_is_closed_with_a_resume_point_while_others_keep_receiving() {
    let s = Arc::new(Server::start_with(|c| c.subscriber_buffer = 32).await);
    let mut slow = ws_connect(&s, "/api/events/subscribe?pattern=load.*", &[])
        .await
        .expect("connect");
    let mut fast = ws_connect(&s, "/api/events/subscribe?pattern=load.*", &[])
        .await
        .expect("connect");

    // Big events fill the slow reader's socket buffers quickly; then its buffer overflows.
    let blob = "x".repeat(16 * 1024);
    let total = 1200;
    let reader = tokio::spawn(async move {
        let mut ids = Vec::new();
        while ids.len() < total {
            match next(&mut fast, WAIT).await {
                Seen::Event(e) => ids.push(e["id"].as_i64().expect("id")),
                other => panic!("fast reader lost its stream after {}: {other:?}", ids.len()),
            }
        }
        ids
    });
    let mut published = Vec::new();
    for chunk in 0..(total / 8) {
        let mut batch = Vec::new();
        for i in 0..8 {
            let s = s.clone();
            let data = json!({"n": chunk * 8 + i, "blob": blob});
            batch.push(tokio::spawn(
                async move { publish(&s, "load.x", data).await },
            ));
        }
        for b in batch {
            published.push(b.await.expect("publish"));
        }
    }
    published.sort_unstable();
    let fast_ids = reader.await.expect("fast reader");
    assert_eq!(
        fast_ids, published,
        "the reading subscriber got everything, in order"
    );

    // The slow reader now drains: contiguous events, then a close naming the last id sent.
    let mut got = Vec::new();
    let (code, reason) = loop {
        match next(&mut slow, WAIT).await {
            Seen::Event(e) => got.push(e["id"].as_i64().expect("id")),
            Seen::Closed(code, reason) => break (code, reason),
            Seen::Nothing => panic!("slow reader was never closed (got {})", got.len()),
        }
    };
    assert_eq!(code, 4001, "{reason}");
    let last = koor_shared::client::resume_id_from_reason(&reason).expect("last_id in reason");
    assert!(got.len() < total, "it was closed before getting everything");
    assert_eq!(
        got.last().copied().unwrap_or(published[0] - 1),
        last,
        "last_id is the last one delivered"
    );
    assert_eq!(
        got,
        published[..got.len()].to_vec(),
        "no gap before the close"
    );

    // Resuming with since=last_id delivers the rest.
    let mut resumed = ws_connect(
        &s,
        &format!("/api/events/subscribe?pattern=load.*&since={last}"),
        &[],
    )
    .await
    .expect("connect");
    let mut rest = Vec::new();
    while rest.len() + got.len() < total {
        match next(&mut resumed, WAIT).await {
            Seen::Event(e) => rest.push(e["id"].as_i64().expect("id")),
            other => panic!("resume stopped after {}: {other:?}", rest.len()),
        }
    }
    got.extend(rest);
    assert_eq!(got, published);
}

#[tokio::test]
async fn websockets_need_the_token_and_a_loopback_origin() {
    let s = Server::start_with(|c| {
        c.auth_token = Some("tok".into());
        c.allowed_origins = vec!["https://ops.example.com".into()];
    })
    .await;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("ws://{}/api/events/subscribe", s.running.addr);
    match tokio_tungstenite::connect_async(url.clone().into_client_request().expect("req")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    // Header or ?token= both work.
    ws_connect(&s, "/api/events/subscribe", &[])
        .await
        .expect("bearer");
    let with_query = format!("{url}?token=tok");
    tokio_tungstenite::connect_async(with_query.into_client_request().expect("req"))
        .await
        .expect("query token");

    assert_eq!(
        ws_connect(
            &s,
            "/api/events/subscribe",
            &[("origin", "http://evil.example")]
        )
        .await
        .err(),
        Some(403)
    );
    assert_eq!(
        ws_connect(
            &s,
            "/api/logs/subscribe",
            &[("origin", "http://evil.example")]
        )
        .await
        .err(),
        Some(403)
    );
    for sneaky in [
        "http://127.0.0.1.evil.example",
        "http://127.attacker.example:9",
        "http://localhost.evil.example",
    ] {
        assert_eq!(
            ws_connect(&s, "/api/events/subscribe", &[("origin", sneaky)])
                .await
                .err(),
            Some(403),
            "{sneaky}"
        );
    }
    ws_connect(
        &s,
        "/api/events/subscribe",
        &[("origin", "http://[::1]:8080")],
    )
    .await
    .expect("ipv6 loopback origin");
    ws_connect(
        &s,
        "/api/events/subscribe",
        &[("origin", "http://localhost:5173")],
    )
    .await
    .expect("loopback origin");
    ws_connect(
        &s,
        "/api/events/subscribe",
        &[("origin", "http://127.0.0.1:9847")],
    )
    .await
    .expect("loopback origin");
    ws_connect(
        &s,
        "/api/events/subscribe",
        &[("origin", "https://ops.example.com")],
    )
    .await
    .expect("configured origin");

    // Plain HTTP on the WebSocket route is a clear 400.
    error(s.get("/api/events/subscribe").await, 400, "bad handshake").await;
}

#[tokio::test]
async fn retention_prunes_history_and_since_past_it_is_refused_explicitly() {
    let s = Server::start_with(|c| {
        c.event_retention = 10;
        c.prune_every = Duration::from_millis(50);
    })
    .await;
    let mut last = 0;
    for i in 0..30 {
        last = publish(&s, "ret.x", json!(i)).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = json(s.get("/api/metrics").await, 200).await;
        if m["events_retained"] == 10 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never pruned: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let h = json(s.get("/api/events/history?last=100").await, 200).await;
    assert_eq!(h.as_array().expect("array").len(), 10);
    assert_eq!(h[0]["id"], last);
    let oldest = last - 9;

    let mut ws = ws_connect(&s, "/api/events/subscribe?since=1", &[])
        .await
        .expect("connect");
    match next(&mut ws, WAIT).await {
        Seen::Closed(code, reason) => {
            assert_eq!(code, 4002);
            assert!(reason.contains(&format!("oldest_id={oldest}")), "{reason}");
        }
        other => panic!("expected a close, got {other:?}"),
    }
    // Resuming from just before the oldest retained id works.
    let mut ws = ws_connect(
        &s,
        &format!("/api/events/subscribe?since={}", oldest - 1),
        &[],
    )
    .await
    .expect("connect");
    match next(&mut ws, WAIT).await {
        Seen::Event(e) => assert_eq!(e["id"], oldest),
        other => panic!("expected an event, got {other:?}"),
    }
}

#[tokio::test]
async fn system_topics_reach_only_koor_patterns() {
    let s = Server::start().await;
    let mut plain = ws_connect(&s, "/api/events/subscribe?pattern=*", &[])
        .await
        .expect("connect");
    let mut deep = ws_connect(&s, "/api/events/subscribe?pattern=**", &[])
        .await
        .expect("connect");
    let mut sys = ws_connect(&s, "/api/events/subscribe?pattern=koor.**", &[])
        .await
        .expect("connect");

    let w = json(
        s.put("/api/state/cfg/app", r#"{"secret":"value"}"#).await,
        200,
    )
    .await;
    json(s.put("/api/specs/p/api", "{}").await, 200).await;
    json(s.delete("/api/state/cfg/app").await, 200).await;
    json(s.delete("/api/specs/p/api").await, 200).await;
    publish(&s, "user.done", json!(1)).await;

    let mut topics = Vec::new();
    for _ in 0..4 {
        match next(&mut sys, WAIT).await {
            Seen::Event(e) => {
                assert!(
                    !e.to_string().contains("value"),
                    "never the stored value: {e}"
                );
                if e["topic"] == "koor.state.updated" {
                    assert_eq!(e["data"]["key"], "cfg/app");
                    assert_eq!(e["data"]["version"], 1);
                    assert_eq!(e["data"]["hash"], w["hash"]);
                }
                topics.push(e["topic"].as_str().expect("topic").to_owned());
            }
            other => panic!("expected a system event, got {other:?}"),
        }
    }
    assert_eq!(
        topics,
        [
            "koor.state.updated",
            "koor.spec.updated",
            "koor.state.deleted",
            "koor.spec.deleted"
        ]
    );
    for ws in [&mut plain, &mut deep] {
        match next(ws, WAIT).await {
            Seen::Event(e) => assert_eq!(e["topic"], "user.done", "only the user's event"),
            other => panic!("expected an event, got {other:?}"),
        }
    }
    let h = json(s.get("/api/events/history").await, 200).await;
    assert_eq!(
        h.as_array().expect("array").len(),
        1,
        "history hides system topics by default: {h}"
    );
    let h = json(s.get("/api/events/history?topic=koor.**").await, 200).await;
    assert_eq!(h.as_array().expect("array").len(), 4);
}

#[tokio::test]
async fn metrics_report_last_event_id_and_subscribers() {
    let s = Server::start().await;
    let id = publish(&s, "m.x", json!(1)).await;
    let _ws = ws_connect(&s, "/api/logs/subscribe", &[])
        .await
        .expect("connect");
    let m = json(s.get("/api/metrics").await, 200).await;
    assert_eq!(m["last_event_id"], id);
    assert_eq!(m["log_subscribers"], 1);
}

#[tokio::test]
async fn since_ahead_of_the_newest_event_is_refused_explicitly() {
    let s = Server::start().await;
    let last = publish(&s, "a.b", json!(1)).await;
    let mut ws = ws_connect(
        &s,
        &format!("/api/events/subscribe?since={}", last + 100),
        &[],
    )
    .await
    .expect("connect");
    match next(&mut ws, WAIT).await {
        Seen::Closed(code, reason) => {
            assert_eq!(code, 4003, "{reason}");
            assert!(reason.contains(&format!("newest_id={last}")), "{reason}");
        }
        other => panic!("expected a close, got {other:?}"),
    }
    assert_eq!(
        ws_connect(&s, "/api/events/subscribe?since=-1", &[])
            .await
            .err(),
        Some(400)
    );
    // since equal to the newest id is fine: live events follow.
    let mut ws = ws_connect(&s, &format!("/api/events/subscribe?since={last}"), &[])
        .await
        .expect("connect");
    let id = publish(&s, "a.c", json!(2)).await;
    match next(&mut ws, WAIT).await {
        Seen::Event(e) => assert_eq!(e["id"], id),
        other => panic!("expected the live event, got {other:?}"),
    }
}
