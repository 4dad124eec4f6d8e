//! Messages between instances: send to ids and names, threads, inboxes that listing never marks
//! read, read and ack receipts, filters, limits, events without bodies, deregistered parties.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Seen, Server, error, json, next, ws_connect};

async fn register(s: &Server, name: &str) -> (String, String) {
    crate::harness::register_agent(s, name).await
}

async fn send(s: &Server, body: Value) -> Value {
    json(s.post_json("/api/messages", body).await, 200).await
}

async fn inbox(s: &Server, id: &str, query: &str) -> Value {
    json(
        s.get(&format!("/api/instances/{id}/inbox{query}")).await,
        200,
    )
    .await
}

fn ids(list: &Value) -> Vec<i64> {
    list["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_i64().expect("id"))
        .collect()
}

#[tokio::test]
async fn send_inbox_read_ack_round_trip() {
    let s = Server::start().await;
    let (a, _) = register(&s, "alpha").await;
    let (b, _) = register(&s, "beta").await;

    let sent = send(
        &s,
        json!({"from": a, "to": [b], "subject": "schema?", "body": {"q": "v2 or v3?"},
               "ack_required": true}),
    )
    .await;
    let id = sent["id"].as_i64().expect("id");
    assert_eq!(sent["thread_id"], id, "a new message starts its own thread");
    assert_eq!(sent["to"], json!([{"id": b, "name": "beta"}]));

    // Listing twice marks nothing read.
    for _ in 0..2 {
        let got = inbox(&s, &b, "").await;
        assert_eq!(got["instance_id"], b);
        assert_eq!(got["unread"], 1);
        let m = &got["messages"][0];
        assert_eq!(m["id"], id);
        assert_eq!(m["from"], json!({"id": a, "name": "alpha"}));
        assert_eq!(m["subject"], "schema?");
        assert_eq!(m["body"], json!({"q": "v2 or v3?"}));
        assert_eq!(m["ack_required"], true);
        assert!(m["read_at"].is_null() && m["acked_at"].is_null(), "{m}");
        assert!(m["created_at"].is_string());
    }
    assert_eq!(ids(&inbox(&s, &b, "?unread=1").await), vec![id]);
    assert_eq!(ids(&inbox(&s, &b, "?unacked=1").await), vec![id]);
    assert!(
        ids(&inbox(&s, &a, "").await).is_empty(),
        "the sender's inbox"
    );

    // Read: read_at set, still listed, no longer unread; still unacked.
    let read = json(
        s.post_json(&format!("/api/instances/{b}/inbox/{id}/read"), json!({}))
            .await,
        200,
    )
    .await;
    let read_at = read["read_at"].as_str().expect("read_at").to_owned();
    assert!(read["acked_at"].is_null());
    assert!(ids(&inbox(&s, &b, "?unread=1").await).is_empty());
    assert_eq!(ids(&inbox(&s, &b, "").await), vec![id]);
    assert_eq!(ids(&inbox(&s, &b, "?unacked=1").await), vec![id]);
    // Reading again keeps the first time.
    let again = json(
        s.post_json(&format!("/api/instances/{b}/inbox/{id}/read"), json!({}))
            .await,
        200,
    )
    .await;
    assert_eq!(again["read_at"], read_at.as_str());

    // Ack: acked_at set; the message shows both receipts for that recipient.
    let acked = json(
        s.post_json(&format!("/api/instances/{b}/inbox/{id}/ack"), json!({}))
            .await,
        200,
    )
    .await;
    assert!(acked["acked_at"].is_string());
    assert!(ids(&inbox(&s, &b, "?unacked=1").await).is_empty());
    let one = json(s.get(&format!("/api/messages/{id}")).await, 200).await;
    assert_eq!(one["to"][0]["id"], b);
    assert_eq!(one["to"][0]["read_at"], read_at.as_str());
    assert_eq!(one["to"][0]["acked_at"], acked["acked_at"]);
    assert_eq!(one["body"], json!({"q": "v2 or v3?"}));

    // The reply joins the thread; the thread lists both, oldest first.
    let reply = send(
        &s,
        json!({"from": b, "to": [a], "subject": "re: schema?", "body": "v3", "thread_id": id}),
    )
    .await;
    assert_eq!(reply["thread_id"], id);
    let rid = reply["id"].as_i64().expect("id");
    let thread = json(s.get(&format!("/api/messages/threads/{id}")).await, 200).await;
    assert_eq!(thread["thread_id"], id);
    assert_eq!(ids(&thread), vec![id, rid]);
    assert_eq!(thread["messages"][1]["body"], "v3");
    // Replying to the reply stays in the same thread.
    let third = send(
        &s,
        json!({"from": a, "to": [b], "subject": "thanks", "thread_id": rid}),
    )
    .await;
    assert_eq!(third["thread_id"], id);
    assert_eq!(
        ids(&inbox(&s, &b, &format!("?thread_id={id}")).await),
        vec![id, third["id"].as_i64().expect("id")]
    );
    assert_eq!(
        ids(&inbox(&s, &b, &format!("?since={id}")).await),
        vec![third["id"].as_i64().expect("id")]
    );
    assert!(json(s.get(&format!("/api/messages/{rid}")).await, 200).await["body"] == "v3");
}

#[tokio::test]
async fn a_name_reaches_every_instance_of_that_name() {
    let s = Server::start().await;
    let (a, _) = register(&s, "lead").await;
    let (w1, _) = register(&s, "worker").await;
    let (w2, _) = register(&s, "worker").await;
    let (w3, _) = register(&s, "worker").await;
    let (other, _) = register(&s, "reviewer").await;

    // Names and ids mixed; an instance named twice gets one copy.
    let sent = send(
        &s,
        json!({"from": a, "to": ["worker", w1, other], "subject": "standup"}),
    )
    .await;
    let to: Vec<&str> = sent["to"]
        .as_array()
        .expect("to")
        .iter()
        .map(|h| h["id"].as_str().expect("id"))
        .collect();
    assert_eq!(to, vec![w1.as_str(), &w2, &w3, &other]);
    let id = sent["id"].as_i64().expect("id");
    for w in [&w1, &w2, &w3, &other] {
        assert_eq!(ids(&inbox(&s, w, "").await), vec![id]);
    }
    // One recipient reading leaves the others unread.
    json(
        s.post_json(&format!("/api/instances/{w2}/inbox/{id}/read"), json!({}))
            .await,
        200,
    )
    .await;
    assert!(ids(&inbox(&s, &w2, "?unread=1").await).is_empty());
    assert_eq!(ids(&inbox(&s, &w1, "?unread=1").await), vec![id]);
    let one = json(s.get(&format!("/api/messages/{id}")).await, 200).await;
    let read: Vec<bool> = one["to"]
        .as_array()
        .expect("to")
        .iter()
        .map(|r| r["read_at"].is_string())
        .collect();
    assert_eq!(read, vec![false, true, false, false]);
    let counts = json(s.get("/api/messages/unread").await, 200).await;
    assert_eq!(counts["unread"][&w1], 1);
    assert!(counts["unread"].get(&w2).is_none(), "{counts}");

    // A name that matches nobody is a 400 naming it; nothing is sent.
    error(
        s.post_json(
            "/api/messages",
            json!({"from": a, "to": ["worker", "ghost"], "subject": "x"}),
        )
        .await,
        400,
        "\"ghost\"",
    )
    .await;
    assert_eq!(ids(&inbox(&s, &w1, "").await), vec![id]);
}

#[tokio::test]
async fn bad_input_is_a_clear_400_or_413_never_a_500() {
    let s = Server::start().await;
    let (a, _) = register(&s, "alpha").await;
    let (b, _) = register(&s, "beta").await;
    let post = |body: Value| s.post_json("/api/messages", body);
    error(
        post(json!({"to": [b], "subject": "x"})).await,
        400,
        "from is required",
    )
    .await;
    error(
        post(json!({"from": "nobody", "to": [b], "subject": "x"})).await,
        400,
        "instance not found: nobody",
    )
    .await;
    error(
        post(json!({"from": a, "subject": "x"})).await,
        400,
        "to is required",
    )
    .await;
    error(
        post(json!({"from": a, "to": [b]})).await,
        400,
        "subject is required",
    )
    .await;
    error(
        post(json!({"from": a, "to": [b], "subject": "x", "thread_id": 999})).await,
        400,
        "thread not found: 999",
    )
    .await;
    error(
        post(json!({"from": a, "to": [b], "subject": "x", "thread_id": "abc"})).await,
        400,
        "invalid thread_id",
    )
    .await;
    error(post(json!([1, 2])).await, 400, "invalid JSON").await;
    error(
        s.req(Method::POST, "/api/messages")
            .body("{not json")
            .send()
            .await
            .expect("send"),
        400,
        "invalid JSON",
    )
    .await;
    // `to` may be one string.
    send(&s, json!({"from": a, "to": "beta", "subject": "one"})).await;

    // A body up to 1 MiB is fine; beyond is a 413.
    let big = "x".repeat(1024 * 1024 - 2);
    send(
        &s,
        json!({"from": a, "to": [b], "subject": "big", "body": big}),
    )
    .await;
    let too_big = "x".repeat(1024 * 1024);
    error(
        post(json!({"from": a, "to": [b], "subject": "big", "body": too_big})).await,
        413,
        "too large",
    )
    .await;
    let huge = "x".repeat(3 * 1024 * 1024);
    error(
        post(json!({"from": a, "to": [b], "subject": "huge", "body": huge})).await,
        413,
        "too large",
    )
    .await;

    error(
        s.get("/api/messages/999").await,
        404,
        "message not found: 999",
    )
    .await;
    error(s.get("/api/messages/abc").await, 400, "not a message id").await;
    error(
        s.get("/api/messages/threads/999").await,
        404,
        "thread not found",
    )
    .await;
    error(
        s.post_json(&format!("/api/instances/{b}/inbox/999/read"), json!({}))
            .await,
        404,
        "message not found",
    )
    .await;
    let first = ids(&inbox(&s, &b, "").await)[0];
    error(
        s.post_json(&format!("/api/instances/{a}/inbox/{first}/ack"), json!({}))
            .await,
        404,
        "not in the inbox of alpha",
    )
    .await;
    error(
        s.get("/api/instances/nobody/inbox").await,
        404,
        "instance not found",
    )
    .await;
    error(
        s.get(&format!("/api/instances/{b}/inbox?wait=3m")).await,
        400,
        "longest wait",
    )
    .await;
    error(
        s.get(&format!("/api/instances/{b}/inbox?since=x")).await,
        400,
        "invalid since",
    )
    .await;
    error(s.delete("/api/messages").await, 405, "not allowed").await;
    error(
        s.get(&format!("/api/instances/{b}/inbox/{first}/read"))
            .await,
        405,
        "not allowed",
    )
    .await;
    // The instance routes beside the inbox still answer.
    json(s.get(&format!("/api/instances/{b}")).await, 200).await;
}

#[tokio::test]
async fn sent_events_carry_no_body_and_receipts_are_published() {
    let s = Server::start().await;
    let (a, _) = register(&s, "alpha").await;
    let (b, _) = register(&s, "beta").await;
    let mut ws = ws_connect(&s, "/api/events/subscribe?pattern=koor.message.*", &[])
        .await
        .expect("subscribe");
    let sent = send(
        &s,
        json!({"from": a, "to": ["beta"], "subject": "hello", "body": "secret plans"}),
    )
    .await;
    let id = sent["id"].as_i64().expect("id");
    let Seen::Event(e) = next(&mut ws, Duration::from_secs(10)).await else {
        panic!("no event")
    };
    assert_eq!(e["topic"], "koor.message.sent");
    assert_eq!(e["data"]["id"], id);
    assert_eq!(e["data"]["thread_id"], id);
    assert_eq!(e["data"]["from"], json!({"id": a, "name": "alpha"}));
    assert_eq!(e["data"]["to"], json!([{"id": b, "name": "beta"}]));
    assert_eq!(e["data"]["subject"], "hello");
    assert!(e["data"].get("body").is_none(), "{e}");
    assert!(!e.to_string().contains("secret plans"));

    json(
        s.post_json(&format!("/api/instances/{b}/inbox/{id}/ack"), json!({}))
            .await,
        200,
    )
    .await;
    let Seen::Event(e) = next(&mut ws, Duration::from_secs(10)).await else {
        panic!("no event")
    };
    assert_eq!(e["topic"], "koor.message.acked");
    assert_eq!(e["data"]["instance"], json!({"id": b, "name": "beta"}));
    // Marking again changes nothing and publishes nothing; the next event is the next send.
    json(
        s.post_json(&format!("/api/instances/{b}/inbox/{id}/read"), json!({}))
            .await,
        200,
    )
    .await;
    send(&s, json!({"from": a, "to": [b], "subject": "second"})).await;
    let Seen::Event(e) = next(&mut ws, Duration::from_secs(10)).await else {
        panic!("no event")
    };
    assert_eq!(e["topic"], "koor.message.sent");
    assert_eq!(e["data"]["subject"], "second");

    let recent = json(s.get("/api/messages?last=1").await, 200).await;
    assert_eq!(recent["messages"][0]["subject"], "second");
    assert_eq!(recent["messages"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn messages_outlive_deregistration_and_restarts() {
    let s = Server::start().await;
    let (a, _) = register(&s, "alpha").await;
    let (b, _) = register(&s, "beta").await;
    let id = send(
        &s,
        json!({"from": a, "to": [b], "subject": "bye", "body": [1, 2]}),
    )
    .await["id"]
        .as_i64()
        .expect("id");
    json(s.delete(&format!("/api/instances/{a}")).await, 200).await;
    // The sender is gone: the recipient still reads the message, with the sender's name.
    let got = inbox(&s, &b, "").await;
    assert_eq!(
        got["messages"][0]["from"],
        json!({"id": a, "name": "alpha"})
    );
    let one = json(s.get(&format!("/api/messages/{id}")).await, 200).await;
    assert_eq!(one["from"]["name"], "alpha");
    // A gone instance can no longer send, nor be addressed.
    error(
        s.post_json(
            "/api/messages",
            json!({"from": a, "to": [b], "subject": "x"}),
        )
        .await,
        400,
        "instance not found",
    )
    .await;
    error(
        s.post_json(
            "/api/messages",
            json!({"from": b, "to": ["alpha"], "subject": "x"}),
        )
        .await,
        400,
        "\"alpha\"",
    )
    .await;

    let dir = s.stop().await;
    let s = Server::start_in(dir, |_| {}).await;
    let got = inbox(&s, &b, "").await;
    assert_eq!(got["messages"][0]["body"], json!([1, 2]));
    json(s.delete(&format!("/api/instances/{b}")).await, 200).await;
    let one = json(s.get(&format!("/api/messages/{id}")).await, 200).await;
    assert_eq!(
        one["to"][0]["name"], "beta",
        "readable by id after both left"
    );
}

#[tokio::test]
async fn inbox_calls_check_the_instance_token() {
    let s = Server::start().await;
    let (a, ta) = register(&s, "alpha").await;
    let (b, tb) = register(&s, "beta").await;
    let wrong = s
        .req(Method::POST, "/api/messages")
        .header("X-Koor-Instance-Token", &tb)
        .json(&json!({"from": a, "to": [b], "subject": "spoofed"}))
        .send()
        .await
        .expect("send");
    error(wrong, 403, "does not match").await;
    let right = s
        .req(Method::POST, "/api/messages")
        .header("X-Koor-Instance-Token", &ta)
        .json(&json!({"from": a, "to": [b], "subject": "real"}))
        .send()
        .await
        .expect("send");
    let id = json(right, 200).await["id"].as_i64().expect("id");
    let peek = s
        .req(Method::GET, &format!("/api/instances/{b}/inbox"))
        .header("X-Koor-Instance-Token", &ta)
        .send()
        .await
        .expect("send");
    error(peek, 403, "does not match").await;
    let dir = s.stop().await;

    let s = Server::start_in(dir, |c| c.require_instance_token = true).await;
    error(
        s.get(&format!("/api/instances/{b}/inbox")).await,
        401,
        "X-Koor-Instance-Token",
    )
    .await;
    error(
        s.post_json(&format!("/api/instances/{b}/inbox/{id}/read"), json!({}))
            .await,
        401,
        "X-Koor-Instance-Token",
    )
    .await;
    let own = s
        .req(Method::GET, &format!("/api/instances/{b}/inbox"))
        .header("X-Koor-Instance-Token", &tb)
        .send()
        .await
        .expect("send");
    assert_eq!(ids(&json(own, 200).await), vec![id]);
}

#[tokio::test]
async fn unread_counts_stay_exact_through_reads_acks_repeats_and_a_restart() {
    let s = Server::start().await;
    let (a, _) = register(&s, "lead").await;
    let (b, _) = register(&s, "worker").await;
    let mut sent = Vec::new();
    for n in 0..5 {
        let m = send(
            &s,
            json!({"from": a, "to": [b], "subject": format!("m{n}"), "ack_required": true}),
        )
        .await;
        sent.push(m["id"].as_i64().expect("id"));
    }
    assert_eq!(inbox(&s, &b, "").await["unread"], 5);
    // A read, the same read again, an ack of a read one and an ack of an unread one.
    for (id, what) in [
        (sent[0], "read"),
        (sent[0], "read"),
        (sent[0], "ack"),
        (sent[1], "ack"),
    ] {
        json(
            s.post_json(&format!("/api/instances/{b}/inbox/{id}/{what}"), json!({}))
                .await,
            200,
        )
        .await;
    }
    let listed = inbox(&s, &b, "?last=2").await;
    assert_eq!(listed["unread"], 3, "{listed}");
    assert_eq!(ids(&inbox(&s, &b, "?unread=1").await), sent[2..].to_vec());
    let counts = json(s.get("/api/messages/unread").await, 200).await;
    assert_eq!(counts["unread"][&b], 3, "{counts}");
    assert!(counts["unread"].get(&a).is_none(), "{counts}");

    let dir = s.stop().await;
    let s = Server::start_in(dir, |_| {}).await;
    assert_eq!(
        inbox(&s, &b, "").await["unread"],
        3,
        "kept across a restart"
    );
    json(
        s.post_json(
            &format!("/api/instances/{b}/inbox/{}/read", sent[4]),
            json!({}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(inbox(&s, &b, "").await["unread"], 2);
}
