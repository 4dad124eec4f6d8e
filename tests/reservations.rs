//! File reservations over the hold model: overlap (file vs glob, glob vs glob, shared vs
//! exclusive, own holds), all or nothing, normalised paths, check, renew, release, expiry,
//! deregistration, bad input.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Seen, Server, error, json, next, ws_connect};

const WAIT: Duration = Duration::from_secs(10);

async fn register(s: &Server, name: &str) -> String {
    crate::harness::register_agent(s, name).await.0
}

async fn reserve(s: &Server, body: Value) -> reqwest::Response {
    s.post_json("/api/reservations", body).await
}

/// Reserves and expects 200; returns the reservations.
async fn reserved(s: &Server, body: Value) -> Vec<Value> {
    let r = json(reserve(s, body).await, 200).await;
    r["reservations"].as_array().expect("reservations").clone()
}

async fn check(s: &Server, body: Value) -> Value {
    json(s.post_json("/api/reservations/check", body).await, 200).await
}

fn paths_of(list: &Value) -> Vec<String> {
    list["reservations"]
        .as_array()
        .expect("reservations")
        .iter()
        .map(|r| r["path"].as_str().expect("path").to_owned())
        .collect()
}

/// The next event on `ws` whose topic starts with `koor.reservation.`.
async fn next_reservation_event(ws: &mut crate::harness::Ws) -> Value {
    loop {
        match next(ws, WAIT).await {
            Seen::Event(e)
                if e["topic"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("koor.reservation.")) =>
            {
                return e;
            }
            Seen::Event(_) => {}
            other => panic!("no reservation event: {other:?}"),
        }
    }
}

#[tokio::test]
async fn file_against_glob_glob_against_glob_shared_and_exclusive() {
    let s = Server::start().await;
    let a = register(&s, "alpha").await;
    let b = register(&s, "beta").await;

    let got = reserved(
        &s,
        json!({"instance_id": a, "project": "shop", "paths": ["src/auth/**"],
               "ttl": "10m", "reason": "refactoring auth"}),
    )
    .await;
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r["path"], "src/auth/**");
    assert_eq!(r["project"], "shop");
    assert_eq!(r["exclusive"], true, "exclusive by default");
    assert_eq!(r["holder"], json!({"id": a, "name": "alpha"}));
    assert_eq!(r["reason"], "refactoring auth");
    for key in ["id", "fence", "created_at", "expires_at"] {
        assert!(r.get(key).is_some(), "{key}: {r}");
    }

    // A file under the glob: 409 naming the holder, the held path and the reason.
    let body = error(
        reserve(
            &s,
            json!({"instance_id": b, "project": "shop", "paths": ["src/auth/login.rs"]}),
        )
        .await,
        409,
        "reserved through src/auth/** by alpha",
    )
    .await;
    let c = &body["conflicts"][0];
    assert_eq!(c["path"], "src/auth/login.rs");
    assert_eq!(c["held_path"], "src/auth/**");
    assert_eq!(c["holder"], json!({"id": a, "name": "alpha"}));
    assert_eq!(c["exclusive"], true);
    assert_eq!(c["reason"], "refactoring auth");
    assert!(c["expires_at"].is_string());
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("refactoring auth"))
    );

    // Glob against glob: an overlapping glob conflicts, a disjoint one does not.
    error(
        reserve(
            &s,
            json!({"instance_id": b, "project": "shop", "paths": ["src/**/*.rs"]}),
        )
        .await,
        409,
        "alpha",
    )
    .await;
    reserved(
        &s,
        json!({"instance_id": b, "project": "shop", "paths": ["src/api/**", "docs/*.md"]}),
    )
    .await;
    // `*` stays in one segment: `*.md` is not `docs/guide.md`.
    reserved(
        &s,
        json!({"instance_id": a, "project": "shop", "paths": ["*.md"]}),
    )
    .await;
    // Another project never conflicts.
    reserved(
        &s,
        json!({"instance_id": b, "project": "blog", "paths": ["src/auth/login.rs"]}),
    )
    .await;

    // Shared holds coexist; an exclusive request meets them.
    reserved(
        &s,
        json!({"instance_id": a, "project": "shop", "paths": ["Cargo.lock"], "exclusive": false}),
    )
    .await;
    reserved(
        &s,
        json!({"instance_id": b, "project": "shop", "paths": ["Cargo.lock"], "exclusive": false}),
    )
    .await;
    let c = error(
        reserve(
            &s,
            json!({"instance_id": b, "project": "shop", "paths": ["Cargo.lock"]}),
        )
        .await,
        409,
        "as shared",
    )
    .await;
    assert_eq!(c["conflicts"][0]["exclusive"], false);

    // Own holds never conflict, exclusive or not.
    reserved(
        &s,
        json!({"instance_id": a, "project": "shop", "paths": ["src/auth/login.rs", "src/auth/**/*.rs"]}),
    )
    .await;

    let all = json(s.get("/api/reservations?project=shop").await, 200).await;
    assert_eq!(all["reservations"].as_array().map(Vec::len), Some(8));
    let mine = json(
        s.get(&format!("/api/reservations?project=shop&instance_id={b}"))
            .await,
        200,
    )
    .await;
    assert_eq!(paths_of(&mine), ["Cargo.lock", "docs/*.md", "src/api/**"]);
    // `path`: the reservations that cover that file.
    let covering = json(
        s.get("/api/reservations?project=shop&path=./src/auth/login.rs")
            .await,
        200,
    )
    .await;
    assert_eq!(
        paths_of(&covering),
        ["src/auth/**", "src/auth/**/*.rs", "src/auth/login.rs"]
    );
}

#[tokio::test]
async fn all_or_nothing_and_reserving_again_renews() {
    let s = Server::start().await;
    let a = register(&s, "alpha").await;
    let b = register(&s, "beta").await;
    let first = reserved(
        &s,
        json!({"instance_id": a, "project": "p", "paths": ["a.rs", "lib/**"], "ttl": "30s"}),
    )
    .await;

    // One free path and two taken: 409 with both conflicts, and nothing granted.
    let body = error(
        reserve(
            &s,
            json!({"instance_id": b, "project": "p", "paths": ["free.rs", "a.rs", "lib/x.rs"]}),
        )
        .await,
        409,
        "and 1 more",
    )
    .await;
    let conflicts: Vec<&str> = body["conflicts"]
        .as_array()
        .expect("conflicts")
        .iter()
        .map(|c| c["path"].as_str().expect("path"))
        .collect();
    assert_eq!(conflicts, ["a.rs", "lib/x.rs"]);
    let of_b = json(
        s.get(&format!("/api/reservations?instance_id={b}")).await,
        200,
    )
    .await;
    assert_eq!(of_b, json!({"reservations": []}), "nothing granted");

    // Reserving again what you hold renews it: same id and fence, later expiry, new terms.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = reserved(
        &s,
        json!({"instance_id": a, "project": "p", "paths": ["./a.rs"], "ttl": "5m",
               "exclusive": false, "reason": "shared now"}),
    )
    .await;
    assert_eq!(again[0]["id"], first[0]["id"]);
    assert_eq!(again[0]["fence"], first[0]["fence"]);
    assert!(again[0]["expires_at"].as_str() > first[0]["expires_at"].as_str());
    assert_eq!(again[0]["exclusive"], false);
    assert_eq!(again[0]["reason"], "shared now");
    // Now shared: another instance may share it.
    reserved(
        &s,
        json!({"instance_id": b, "project": "p", "paths": ["a.rs"], "exclusive": false}),
    )
    .await;
}

#[tokio::test]
async fn paths_are_normalised_and_bad_ones_refused() {
    let s = Server::start().await;
    let a = register(&s, "alpha").await;
    let b = register(&s, "beta").await;
    let got = reserved(
        &s,
        json!({"instance_id": a, "project": "p", "paths": ["./src/x/../auth//login.rs"]}),
    )
    .await;
    assert_eq!(got[0]["path"], "src/auth/login.rs");
    error(
        reserve(
            &s,
            json!({"instance_id": b, "project": "p", "paths": ["src/auth/./login.rs"]}),
        )
        .await,
        409,
        "alpha",
    )
    .await;

    for (paths, needle) in [
        (json!(["/etc/passwd"]), "absolute path"),
        (json!(["../outside.rs"]), "leaves the project root"),
        (json!(["src/../../x"]), "leaves the project root"),
        (json!(["."]), "project root itself"),
        (json!([""]), "empty path"),
        (json!(["src/[ab"]), "invalid glob"),
        (json!([]), "paths is required"),
    ] {
        error(
            reserve(
                &s,
                json!({"instance_id": b, "project": "p", "paths": paths}),
            )
            .await,
            400,
            needle,
        )
        .await;
    }
    error(
        reserve(&s, json!({"instance_id": b, "paths": ["a"]})).await,
        400,
        "project is required",
    )
    .await;
    error(
        reserve(&s, json!({"project": "p", "paths": ["a"]})).await,
        400,
        "instance_id is required",
    )
    .await;
    error(
        reserve(
            &s,
            json!({"instance_id": "nope", "project": "p", "paths": ["a"]}),
        )
        .await,
        400,
        "instance not found: nope",
    )
    .await;
    error(
        reserve(
            &s,
            json!({"instance_id": b, "project": "p", "paths": ["a"], "ttl": "1s"}),
        )
        .await,
        400,
        "at least 5s",
    )
    .await;
    error(
        reserve(&s, json!({"instance_id": b, "project": "p", "paths": "a"})).await,
        400,
        "invalid JSON",
    )
    .await;
    let many: Vec<String> = (0..300).map(|i| format!("f{i}")).collect();
    error(
        reserve(&s, json!({"instance_id": b, "project": "p", "paths": many})).await,
        400,
        "too many paths",
    )
    .await;
    error(
        s.get("/api/reservations?path=/abs").await,
        400,
        "absolute path",
    )
    .await;
    error(
        s.req(Method::PUT, "/api/reservations")
            .send()
            .await
            .expect("send"),
        405,
        "not allowed",
    )
    .await;
    error(s.get("/api/reservations/check").await, 405, "not allowed").await;
    error(
        s.get("/api/reservations/nope").await,
        404,
        "reservation not found: nope",
    )
    .await;
    error(s.get("/api/reservations/a/b/c").await, 404, "no such route").await;
}

#[tokio::test]
async fn check_reports_what_others_hold_and_changes_nothing() {
    let s = Server::start().await;
    let a = register(&s, "alpha").await;
    let b = register(&s, "beta").await;
    reserved(
        &s,
        json!({"instance_id": a, "project": "p", "paths": ["src/auth/**"], "reason": "auth"}),
    )
    .await;
    reserved(
        &s,
        json!({"instance_id": a, "project": "p", "paths": ["Cargo.toml"], "exclusive": false}),
    )
    .await;

    let answer = check(
        &s,
        json!({"project": "p", "paths": ["src/auth/login.rs", "src/main.rs", "Cargo.toml"],
               "instance_id": b}),
    )
    .await;
    assert_eq!(answer["ok"], false);
    let conflicts = answer["conflicts"].as_array().expect("conflicts");
    assert_eq!(
        conflicts.len(),
        1,
        "shared holds do not block an edit: {answer}"
    );
    assert_eq!(conflicts[0]["path"], "src/auth/login.rs");
    assert_eq!(conflicts[0]["held_path"], "src/auth/**");
    assert_eq!(conflicts[0]["holder"]["name"], "alpha");
    assert_eq!(conflicts[0]["reason"], "auth");

    // Could beta take them exclusively? The shared hold counts then.
    let answer = check(
        &s,
        json!({"project": "p", "paths": ["Cargo.toml"], "instance_id": b, "exclusive": true}),
    )
    .await;
    assert_eq!(answer["ok"], false);
    assert_eq!(answer["conflicts"][0]["exclusive"], false);

    // The holder itself is never in conflict with its own holds.
    let answer = check(
        &s,
        json!({"project": "p", "paths": ["src/auth/login.rs"], "instance_id": a}),
    )
    .await;
    assert_eq!(answer, json!({"ok": true, "conflicts": []}));
    // Without an instance every hold is someone else's.
    let answer = check(&s, json!({"project": "p", "paths": ["src/auth/a.rs"]})).await;
    assert_eq!(answer["ok"], false);
    // Another project, or a free file: ok.
    let answer = check(&s, json!({"project": "q", "paths": ["src/auth/a.rs"]})).await;
    assert_eq!(answer["ok"], true);
    error(
        s.post_json(
            "/api/reservations/check",
            json!({"project": "p", "paths": ["../x"]}),
        )
        .await,
        400,
        "leaves the project root",
    )
    .await;
    // Read-only: still exactly the two reservations.
    let all = json(s.get("/api/reservations").await, 200).await;
    assert_eq!(all["reservations"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn renew_release_one_release_all_and_force() {
    let s = Server::start().await;
    let a = register(&s, "alpha").await;
    let b = register(&s, "beta").await;
    let mut ws = ws_connect(&s, "/api/events/subscribe?pattern=koor.reservation.*", &[])
        .await
        .expect("connect");
    let got = reserved(
        &s,
        json!({"instance_id": a, "project": "p", "paths": ["a.rs", "b.rs", "c.rs"], "ttl": "30s"}),
    )
    .await;
    for r in &got {
        let e = next_reservation_event(&mut ws).await;
        assert_eq!(e["topic"], "koor.reservation.granted");
        assert_eq!(e["data"]["id"], r["id"]);
        assert_eq!(e["data"]["path"], r["path"]);
        assert_eq!(e["data"]["project"], "p");
        assert_eq!(e["data"]["holder"], json!({"id": a, "name": "alpha"}));
        assert_eq!(e["id"], r["fence"], "the fence is the grant's event id");
    }
    let id = got[0]["id"].as_str().expect("id");

    // renew
    tokio::time::sleep(Duration::from_millis(20)).await;
    let renewed = json(
        s.post_json(
            &format!("/api/reservations/{id}/renew"),
            json!({"instance_id": a, "ttl": "5m"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(renewed["fence"], got[0]["fence"]);
    assert!(renewed["expires_at"].as_str() > got[0]["expires_at"].as_str());
    error(
        s.post_json(
            &format!("/api/reservations/{id}/renew"),
            json!({"instance_id": b}),
        )
        .await,
        409,
        "not by beta",
    )
    .await;
    error(
        s.post_json("/api/reservations/nope/renew", json!({"instance_id": a}))
            .await,
        404,
        "reservation not found",
    )
    .await;

    // release one: not the holder 409, no instance 400, the holder 200
    error(
        s.delete(&format!("/api/reservations/{id}?instance_id={b}"))
            .await,
        409,
        "not by beta",
    )
    .await;
    error(
        s.delete(&format!("/api/reservations/{id}")).await,
        400,
        "instance_id is required",
    )
    .await;
    let released = json(
        s.delete(&format!("/api/reservations/{id}?instance_id={a}"))
            .await,
        200,
    )
    .await;
    assert_eq!(released["released"][0]["path"], "a.rs");
    let e = next_reservation_event(&mut ws).await;
    assert_eq!(e["topic"], "koor.reservation.released");
    assert_eq!(e["data"]["reason"], "released");
    assert_eq!(e["data"]["path"], "a.rs");
    error(
        s.delete(&format!("/api/reservations/{id}?instance_id={a}"))
            .await,
        404,
        "reservation not found",
    )
    .await;

    // operators force-release whoever holds it
    let c_id = got[2]["id"].as_str().expect("id");
    let forced = json(
        s.delete(&format!("/api/reservations/{c_id}?force=1")).await,
        200,
    )
    .await;
    assert_eq!(forced["released"][0]["path"], "c.rs");
    let e = next_reservation_event(&mut ws).await;
    assert_eq!(e["data"]["reason"], "forced");

    // release all of an instance's, by path or all
    reserved(
        &s,
        json!({"instance_id": a, "project": "q", "paths": ["x.rs", "y.rs"]}),
    )
    .await;
    let by_path = json(
        s.delete(&format!(
            "/api/reservations?instance_id={a}&project=q&path=./x.rs"
        ))
        .await,
        200,
    )
    .await;
    assert_eq!(
        by_path["released"].as_array().map(Vec::len),
        Some(1),
        "{by_path}"
    );
    let rest = json(
        s.delete(&format!("/api/reservations?instance_id={a}"))
            .await,
        200,
    )
    .await;
    let mut left: Vec<&str> = rest["released"]
        .as_array()
        .expect("released")
        .iter()
        .map(|r| r["path"].as_str().expect("path"))
        .collect();
    left.sort_unstable();
    assert_eq!(left, ["b.rs", "y.rs"]);
    assert_eq!(
        json(s.get("/api/reservations").await, 200).await,
        json!({"reservations": []})
    );
    error(
        s.delete("/api/reservations").await,
        400,
        "instance_id is required",
    )
    .await;
}

#[tokio::test]
async fn an_expired_reservation_is_free_at_once_and_its_expiry_published_first() {
    let s = Server::start().await;
    let a = register(&s, "alpha").await;
    let b = register(&s, "beta").await;
    let mut ws = ws_connect(&s, "/api/events/subscribe?pattern=koor.reservation.*", &[])
        .await
        .expect("connect");
    let got = reserved(
        &s,
        json!({"instance_id": a, "project": "p", "paths": ["src/**"], "ttl": "5s"}),
    )
    .await;
    assert_eq!(
        next_reservation_event(&mut ws).await["topic"],
        "koor.reservation.granted"
    );
    let expires: chrono::DateTime<chrono::Utc> = got[0]["expires_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("expires_at");
    let until = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(until + Duration::from_millis(5)).await;
    // Past expires_at: free for the next caller whether or not the sweep ran.
    let taken = reserved(
        &s,
        json!({"instance_id": b, "project": "p", "paths": ["src/main.rs"]}),
    )
    .await;
    assert_eq!(taken[0]["holder"]["name"], "beta");
    let expired = next_reservation_event(&mut ws).await;
    assert_eq!(expired["topic"], "koor.reservation.expired", "{expired}");
    assert_eq!(expired["data"]["path"], "src/**");
    assert_eq!(expired["data"]["holder"], json!({"id": a, "name": "alpha"}));
    let granted = next_reservation_event(&mut ws).await;
    assert_eq!(granted["topic"], "koor.reservation.granted");
    assert_eq!(granted["data"]["holder"]["name"], "beta");
}

#[tokio::test]
async fn deregistering_the_holder_releases_its_reservations() {
    let s = Server::start().await;
    let a = register(&s, "alpha").await;
    let b = register(&s, "beta").await;
    let mut ws = ws_connect(&s, "/api/events/subscribe?pattern=koor.reservation.*", &[])
        .await
        .expect("connect");
    reserved(
        &s,
        json!({"instance_id": a, "project": "p", "paths": ["one.rs", "two/**"]}),
    )
    .await;
    next_reservation_event(&mut ws).await;
    next_reservation_event(&mut ws).await;
    json(s.delete(&format!("/api/instances/{a}")).await, 200).await;
    let mut released = Vec::new();
    while released.len() < 2 {
        let e = next_reservation_event(&mut ws).await;
        assert_eq!(e["topic"], "koor.reservation.released");
        assert_eq!(e["data"]["reason"], "deregistered", "{e}");
        released.push(e["data"]["path"].as_str().expect("path").to_owned());
    }
    released.sort();
    assert_eq!(released, ["one.rs", "two/**"]);
    reserved(
        &s,
        json!({"instance_id": b, "project": "p", "paths": ["one.rs", "two/x.rs"]}),
    )
    .await;
}

#[tokio::test]
async fn instance_tokens_are_checked() {
    let s = Server::start().await;
    let r = json(
        s.post_json("/api/instances/register", json!({"name": "alpha"}))
            .await,
        200,
    )
    .await;
    let a = r["id"].as_str().expect("id");
    let token = r["token"].as_str().expect("token");
    let wrong = s
        .req(Method::POST, "/api/reservations")
        .header("X-Koor-Instance-Token", "koor_wrong")
        .json(&json!({"instance_id": a, "project": "p", "paths": ["a"]}))
        .send()
        .await
        .expect("send");
    error(wrong, 403, "does not match").await;
    let right = s
        .req(Method::POST, "/api/reservations")
        .header("X-Koor-Instance-Token", token)
        .json(&json!({"instance_id": a, "project": "p", "paths": ["a"]}))
        .send()
        .await
        .expect("send");
    assert_eq!(right.status(), 200);
    let dir = s.stop().await;
    let s = Server::start_in(dir, |c| c.require_instance_token = true).await;
    error(
        s.delete(&format!("/api/reservations?instance_id={a}"))
            .await,
        401,
        "X-Koor-Instance-Token",
    )
    .await;
    // reads and check need no instance token
    assert_eq!(
        json(s.get("/api/reservations").await, 200).await["reservations"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "kept over the restart"
    );
    check(&s, json!({"project": "p", "paths": ["a"]})).await;
}

#[tokio::test]
async fn racing_reservers_of_overlapping_paths_exactly_one_wins() {
    let s = Server::start().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(register(&s, &format!("racer-{i}")).await);
    }
    for round in 0..20 {
        let project = format!("race-{round}");
        // Each asks for the glob and a file of its own under it: every pair overlaps.
        let attempts = ids.iter().enumerate().map(|(i, id)| {
            let req = s.req(Method::POST, "/api/reservations").json(&json!({
                "instance_id": id, "project": project,
                "paths": [format!("src/racer{i}.rs"), "src/**"]
            }));
            async move { req.send().await.expect("send").status().as_u16() }
        });
        let statuses = futures_util::future::join_all(attempts).await;
        let won = statuses.iter().filter(|s| **s == 200).count();
        let lost = statuses.iter().filter(|s| **s == 409).count();
        assert_eq!((won, lost), (1, 11), "round {round}: {statuses:?}");
        let held = json(
            s.get(&format!("/api/reservations?project={project}")).await,
            200,
        )
        .await;
        assert_eq!(
            held["reservations"].as_array().map(Vec::len),
            Some(2),
            "the winner's two paths and nothing of the losers"
        );
    }
}
