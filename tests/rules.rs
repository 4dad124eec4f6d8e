//! Validation rules: `PUT/GET /api/validate/{project}/rules`, `POST /api/validate/{project}`
//! (every match type, globs, stacks, severity), proposals over REST and MCP, bad input.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Seen, Server, error, json, next, ws_connect};

/// Longest a test waits for an event before it fails (a hang guard, not a measurement).
const WAIT: Duration = Duration::from_secs(30);

async fn put_rules(s: &Server, project: &str, rules: Value) -> reqwest::Response {
    s.put(&format!("/api/validate/{project}/rules"), rules.to_string())
        .await
}

async fn validate(s: &Server, project: &str, body: Value) -> Value {
    json(
        s.post_json(&format!("/api/validate/{project}"), body).await,
        200,
    )
    .await
}

/// `(rule_id, line, match)` of each violation.
fn found(v: &Value) -> Vec<(String, Option<i64>, Option<String>)> {
    assert_eq!(
        v["count"].as_u64(),
        v["violations"].as_array().map(|a| a.len() as u64),
        "count matches: {v}"
    );
    v["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .map(|x| {
            (
                x["rule_id"].as_str().expect("rule_id").to_owned(),
                x["line"].as_i64(),
                x["match"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn f(id: &str, line: Option<i64>, m: Option<&str>) -> (String, Option<i64>, Option<String>) {
    (id.to_owned(), line, m.map(str::to_owned))
}

async fn event(ws: &mut crate::harness::Ws, topic: &str) -> Value {
    loop {
        match next(ws, WAIT).await {
            Seen::Event(e) if e["topic"] == topic => return e,
            Seen::Event(_) => continue,
            other => panic!("no {topic} event: {other:?}"),
        }
    }
}

fn shop_rules() -> Value {
    json!([
        {"rule_id": "no-inline-style", "severity": "error", "match_type": "regex",
         "pattern": "style\\s*=\\s*\"[^\"]*\"", "message": "Inline styles are not allowed",
         "applies_to": ["*.html", "*.templ"]},
        {"rule_id": "require-ai-id", "severity": "warning", "match_type": "missing",
         "pattern": "data-ai-id", "message": "Components should have data-ai-id attributes",
         "applies_to": ["*.html"]},
        {"rule_id": "no-console-log", "match_type": "custom", "pattern": "no-console-log",
         "message": "Remove console.log statements", "applies_to": ["src/**/*.ts", "*.js"]},
        {"rule_id": "no-debugger", "match_type": "custom", "pattern": "\\bdebugger\\b",
         "message": "No debugger statements"},
        {"rule_id": "go-no-panic", "pattern": "panic\\(", "message": "Return errors instead",
         "stack": "go"},
        {"rule_id": "react-no-var", "severity": "warning", "pattern": "\\bvar\\s+\\w+",
         "message": "Use let or const", "stack": "react"}
    ])
}

#[tokio::test]
async fn rules_put_get_and_every_match_type() {
    let s = Server::start().await;
    let set = json(put_rules(&s, "shop", shop_rules()).await, 200).await;
    assert_eq!(set, json!({"project": "shop", "count": 6}));

    let listed = json(s.get("/api/validate/shop/rules").await, 200).await;
    assert_eq!(listed["project"], "shop");
    let rules = listed["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 6);
    let ids: Vec<&str> = rules
        .iter()
        .map(|r| r["rule_id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        [
            "go-no-panic",
            "no-console-log",
            "no-debugger",
            "no-inline-style",
            "react-no-var",
            "require-ai-id"
        ],
        "sorted by rule_id"
    );
    let inline = &rules[3];
    assert_eq!(inline["severity"], "error");
    assert_eq!(inline["match_type"], "regex");
    assert_eq!(inline["status"], "accepted");
    assert_eq!(inline["applies_to"], json!(["*.html", "*.templ"]));
    assert_eq!(rules[0]["severity"], "error", "severity defaults to error");
    assert_eq!(
        rules[0]["match_type"], "regex",
        "match_type defaults to regex"
    );
    // Another project has none.
    assert_eq!(
        json(s.get("/api/validate/other/rules").await, 200).await,
        json!({"project": "other", "rules": []})
    );

    // regex: one violation per matching line with its number and match; missing: one, no line.
    let html = "<div style=\"color: red\" class=\"c-button\">\n  <span>Click me</span>\n\
                <p style=\"margin:0\">x</p>\n</div>\n";
    let v = validate(
        &s,
        "shop",
        json!({"filename": "button.html", "content": html}),
    )
    .await;
    assert_eq!(v["project"], "shop");
    assert_eq!(
        found(&v),
        [
            f("no-inline-style", Some(1), Some("style=\"color: red\"")),
            f("no-inline-style", Some(3), Some("style=\"margin:0\"")),
            f("require-ai-id", None, None),
        ]
    );
    let first = &v["violations"][0];
    assert_eq!(first["severity"], "error");
    assert_eq!(first["message"], "Inline styles are not allowed");
    let missing = &v["violations"][2];
    assert_eq!(missing["severity"], "warning");
    assert!(
        missing.get("line").is_none() && missing.get("match").is_none(),
        "{missing}"
    );

    // The required pattern present: no missing violation.
    let v = validate(
        &s,
        "shop",
        json!({"filename": "ok.html", "content": "<div data-ai-id=\"x\"></div>"}),
    )
    .await;
    assert_eq!(found(&v), []);
    assert_eq!(v["count"], 0);

    // custom: the built-in no-console-log (console.log( only), and a custom name that is not
    // built in runs as a regex.
    let js = "const a = 1;\nconsole.log(a);\nconsole.error(a);\ndebugger;\n";
    let v = validate(
        &s,
        "shop",
        json!({"filename": "src/app/main.ts", "content": js}),
    )
    .await;
    assert_eq!(
        found(&v),
        [
            f("no-console-log", Some(2), Some("console.log(")),
            f("no-debugger", Some(4), Some("debugger")),
        ]
    );

    // Globs: src/**/*.ts matches at any depth under src/ only; *.js matches the base name.
    for (filename, console) in [
        ("src/main.ts", true),
        ("src/a/b/c/main.ts", true),
        ("lib/main.ts", false),
        ("web/static/app.js", true),
        ("app.jsx", false),
    ] {
        let v = validate(&s, "shop", json!({"filename": filename, "content": js})).await;
        let has = found(&v).iter().any(|(id, ..)| id == "no-console-log");
        assert_eq!(has, console, "{filename}: {v}");
    }
    // Without a filename every rule runs, whatever its globs.
    let v = validate(&s, "shop", json!({"content": js})).await;
    assert!(found(&v).iter().any(|(id, ..)| id == "no-console-log"));
    assert!(found(&v).iter().any(|(id, ..)| id == "require-ai-id"));

    // Stacks: the universal rules plus the requested stack's.
    let code = "var x = 1;\npanic(\"boom\")\n";
    let ids = |v: &Value| found(v).into_iter().map(|(id, ..)| id).collect::<Vec<_>>();
    let go = validate(
        &s,
        "shop",
        json!({"filename": "main.go", "content": code, "stack": "go"}),
    )
    .await;
    assert_eq!(ids(&go), ["go-no-panic"]);
    let react = validate(
        &s,
        "shop",
        json!({"filename": "main.go", "content": code, "stack": "react"}),
    )
    .await;
    assert_eq!(ids(&react), ["react-no-var"]);
    assert_eq!(react["violations"][0]["severity"], "warning");
    let python = validate(
        &s,
        "shop",
        json!({"filename": "main.go", "content": code, "stack": "python"}),
    )
    .await;
    assert_eq!(ids(&python), Vec::<String>::new());
    let any = validate(&s, "shop", json!({"filename": "main.go", "content": code})).await;
    assert_eq!(
        ids(&any),
        ["go-no-panic", "react-no-var"],
        "no stack: every rule"
    );

    // A project without rules has nothing to say.
    assert_eq!(
        validate(&s, "empty", json!({"content": "anything"})).await,
        json!({"project": "empty", "violations": [], "count": 0})
    );
    s.stop().await;
}

#[tokio::test]
async fn rules_put_replaces_accepted_rules_and_keeps_proposals() {
    let s = Server::start().await;
    let mut sys = ws_connect(&s, "/api/events/subscribe?pattern=koor.rule.*", &[])
        .await
        .expect("subscribe");
    json(put_rules(&s, "shop", shop_rules()).await, 200).await;
    let e = event(&mut sys, "koor.rule.replaced").await;
    assert_eq!(e["data"], json!({"project": "shop", "count": 6}));
    assert_eq!(e["source"], "koor");
    json(
        s.post_json(
            "/api/rules/propose",
            json!({"project": "shop", "rule_id": "no-todo", "pattern": "TODO", "message": "resolve TODOs"}),
        )
        .await,
        200,
    )
    .await;

    let set = json!([{"rule_id": "only", "pattern": "x", "message": "no x"}]);
    assert_eq!(
        json(put_rules(&s, "shop", set).await, 200).await["count"],
        1
    );
    let accepted = json(s.get("/api/validate/shop/rules").await, 200).await;
    let ids: Vec<&str> = accepted["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["rule_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["only"]);
    // The proposal is still there, and the status filters see it.
    let statuses = |v: &Value| {
        v["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .map(|r| {
                format!(
                    "{}:{}",
                    r["rule_id"].as_str().expect("id"),
                    r["status"].as_str().expect("status")
                )
            })
            .collect::<Vec<_>>()
    };
    let all = json(s.get("/api/validate/shop/rules?status=all").await, 200).await;
    assert_eq!(statuses(&all), ["no-todo:proposed", "only:accepted"]);
    let proposed = json(s.get("/api/validate/shop/rules?status=proposed").await, 200).await;
    assert_eq!(statuses(&proposed), ["no-todo:proposed"]);
    let ext = json(s.get("/api/rules/shop").await, 200).await;
    assert_eq!(ext["project"], "shop");
    assert_eq!(statuses(&ext), ["no-todo:proposed", "only:accepted"]);

    // Setting a rule under a proposal's id makes it an accepted rule.
    let set = json!([{"rule_id": "no-todo", "pattern": "TODO", "message": "set directly"}]);
    json(put_rules(&s, "shop", set).await, 200).await;
    let all = json(s.get("/api/rules/shop").await, 200).await;
    assert_eq!(statuses(&all), ["no-todo:accepted"]);
    // An empty array clears the accepted rules.
    assert_eq!(
        json(put_rules(&s, "shop", json!([])).await, 200).await["count"],
        0
    );
    assert_eq!(
        json(s.get("/api/validate/shop/rules").await, 200).await["rules"],
        json!([])
    );
    s.stop().await;
}

#[tokio::test]
async fn rules_proposals_lifecycle_over_rest() {
    let s = Server::start().await;
    let mut sys = ws_connect(&s, "/api/events/subscribe?pattern=koor.rule.*", &[])
        .await
        .expect("subscribe");
    let content = json!({"filename": "a.js", "content": "// TODO: later\nlet a = 1;"});

    let p = json(
        s.post_json(
            "/api/rules/propose",
            json!({"project": "web", "rule_id": "no-todo", "pattern": "TODO", "message": "resolve TODOs",
                   "severity": "warning", "applies_to": ["*.js"], "proposed_by": "claude-code",
                   "context": "seen in review"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        p,
        json!({"project": "web", "rule_id": "no-todo", "status": "proposed"})
    );
    let e = event(&mut sys, "koor.rule.proposed").await;
    assert_eq!(
        e["data"],
        json!({"project": "web", "rule_id": "no-todo", "severity": "warning"})
    );

    // A proposal does not run and is not among the project's rules.
    assert_eq!(validate(&s, "web", content.clone()).await["count"], 0);
    assert_eq!(
        json(s.get("/api/validate/web/rules").await, 200).await["rules"],
        json!([])
    );
    // It is listed, with who proposed it and why, in every project's pending list.
    let pending = json(s.get("/api/rules?status=proposed").await, 200).await;
    let rule = &pending["rules"][0];
    assert_eq!(
        (
            &rule["project"],
            &rule["rule_id"],
            &rule["proposed_by"],
            &rule["context"]
        ),
        (
            &json!("web"),
            &json!("no-todo"),
            &json!("claude-code"),
            &json!("seen in review")
        )
    );
    assert_eq!(
        json(s.get("/api/rules/web/no-todo").await, 200).await["status"],
        "proposed"
    );

    // Accepted: it runs.
    let a = json(
        s.req(Method::POST, "/api/rules/web/no-todo/accept")
            .send()
            .await
            .expect("accept"),
        200,
    )
    .await;
    assert_eq!(
        a,
        json!({"project": "web", "rule_id": "no-todo", "status": "accepted"})
    );
    let e = event(&mut sys, "koor.rule.accepted").await;
    assert_eq!(e["data"], json!({"project": "web", "rule_id": "no-todo"}));
    let v = validate(&s, "web", content.clone()).await;
    assert_eq!(found(&v), [f("no-todo", Some(1), Some("TODO"))]);
    assert_eq!(v["violations"][0]["severity"], "warning");
    // Accepting again is a no-op; re-proposing an accepted id is refused (412).
    json(
        s.req(Method::POST, "/api/rules/web/no-todo/accept")
            .send()
            .await
            .expect("accept"),
        200,
    )
    .await;
    error(
        s.post_json(
            "/api/rules/propose",
            json!({"project": "web", "rule_id": "no-todo", "pattern": "FIXME", "message": "m"}),
        )
        .await,
        412,
        "already accepted",
    )
    .await;

    // Rejected: it stops running.
    let r = json(
        s.req(Method::POST, "/api/rules/web/no-todo/reject")
            .send()
            .await
            .expect("reject"),
        200,
    )
    .await;
    assert_eq!(r["status"], "rejected");
    let e = event(&mut sys, "koor.rule.rejected").await;
    assert_eq!(e["data"], json!({"project": "web", "rule_id": "no-todo"}));
    assert_eq!(validate(&s, "web", content).await["count"], 0);
    assert_eq!(
        json(s.get("/api/rules/web?status=rejected").await, 200).await["rules"][0]["rule_id"],
        "no-todo"
    );

    // Unknown rules, wrong methods, unknown paths.
    error(
        s.req(Method::POST, "/api/rules/web/nope/accept")
            .send()
            .await
            .expect("accept"),
        404,
        "rule not found: web/nope",
    )
    .await;
    error(
        s.get("/api/rules/web/nope").await,
        404,
        "rule not found: web/nope",
    )
    .await;
    let wrong = s.get("/api/rules/web/no-todo/accept").await;
    assert_eq!(wrong.headers()["allow"], "POST");
    error(wrong, 405, "not allowed").await;
    error(s.get("/api/rules/propose/x/y/z").await, 404, "not found").await;
    error(
        s.req(Method::DELETE, "/api/validate/web/rules")
            .send()
            .await
            .expect("DELETE"),
        405,
        "not allowed",
    )
    .await;
    error(s.get("/api/validate/web").await, 405, "not allowed").await;
    error(s.get("/api/validate").await, 404, "not found").await;
    error(
        s.get("/api/rules/web?status=maybe").await,
        400,
        "invalid status \"maybe\"",
    )
    .await;
    s.stop().await;
}

/// Calls an MCP tool over raw JSON-RPC (as an IDE does) and returns its structured result.
async fn mcp_tool(s: &Server, name: &str, arguments: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": name, "arguments": arguments}});
    let resp = s
        .req(Method::POST, "/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string())
        .send()
        .await
        .expect("POST /mcp");
    let v = json(resp, 200).await;
    assert!(v["result"]["isError"] != json!(true), "tool error: {v}");
    v["result"]["structuredContent"].clone()
}

#[tokio::test]
async fn rules_proposed_over_mcp_accepted_over_rest_then_run() {
    let s = Server::start_with(|c| c.auth_token = Some("rules-token-1234".into())).await;
    let proposed = mcp_tool(
        &s,
        "propose_rule",
        json!({"project": "api", "rule_id": "no-println", "pattern": "println!\\(",
               "message": "use tracing, not println!", "severity": "error",
               "proposed_by": "claude-code", "context": "logs must be structured"}),
    )
    .await;
    assert_eq!(proposed["status"], "proposed");
    let content =
        json!({"filename": "src/main.rs", "content": "fn main() {\n    println!(\"hi\");\n}\n"});
    assert_eq!(validate(&s, "api", content.clone()).await["count"], 0);

    let pending = json(s.get("/api/rules/api?status=proposed").await, 200).await;
    assert_eq!(pending["rules"][0]["proposed_by"], "claude-code");
    json(
        s.req(Method::POST, "/api/rules/api/no-println/accept")
            .send()
            .await
            .expect("accept"),
        200,
    )
    .await;
    let v = validate(&s, "api", content).await;
    assert_eq!(found(&v), [f("no-println", Some(2), Some("println!("))]);
    assert_eq!(v["violations"][0]["message"], "use tracing, not println!");

    // The rule routes are behind the same auth as the rest of /api.
    for (method, path) in [
        (Method::GET, "/api/validate/api/rules"),
        (Method::POST, "/api/validate/api"),
        (Method::POST, "/api/rules/propose"),
        (Method::GET, "/api/rules"),
    ] {
        let resp = s
            .http
            .request(method, s.url(path))
            .send()
            .await
            .expect("request");
        error(resp, 401, "invalid or missing bearer token").await;
    }
    s.stop().await;
}

#[tokio::test]
async fn rules_bad_input_is_a_clear_400_or_413_and_changes_nothing() {
    let s = Server::start().await;
    json(put_rules(&s, "shop", shop_rules()).await, 200).await;
    let before = json(s.get("/api/validate/shop/rules").await, 200).await;

    // An invalid regex is a 400 naming the rule; nothing is replaced.
    let bad = json!([
        {"rule_id": "fine", "pattern": "ok", "message": "m"},
        {"rule_id": "broken", "pattern": "([a-z", "message": "m"}
    ]);
    let body = error(
        put_rules(&s, "shop", bad).await,
        400,
        "invalid regex in rule broken",
    )
    .await;
    assert!(
        !body["error"].as_str().expect("msg").contains("fine"),
        "{body}"
    );
    for (rules, needle) in [
        (
            json!([{"rule_id": "g", "pattern": "a", "applies_to": ["src/[x"]}]),
            "invalid applies_to glob \"src/[x\" in rule g",
        ),
        (
            json!([{"rule_id": "s", "pattern": "a", "severity": "fatal"}]),
            "invalid severity \"fatal\"",
        ),
        (
            json!([{"rule_id": "m", "pattern": "a", "match_type": "glob"}]),
            "invalid match_type \"glob\"",
        ),
        (json!([{"pattern": "a"}]), "rule_id is required (rule #1"),
        (json!([{"rule_id": "p"}]), "pattern is required"),
        (
            json!([{"rule_id": "d", "pattern": "a"}, {"rule_id": "d", "pattern": "b"}]),
            "duplicate rule_id \"d\"",
        ),
        (
            json!([{"rule_id": "big", "pattern": "\\w{1000}\\w{1000}\\w{1000}"}]),
            "rule big",
        ),
        (json!({"rule_id": "x"}), "JSON array of rules"),
    ] {
        error(put_rules(&s, "shop", rules).await, 400, needle).await;
    }
    error(
        s.put("/api/validate/shop/rules", "[{").await,
        400,
        "invalid JSON body",
    )
    .await;
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"rule_id": format!("r{i}"), "pattern": "a"}))
        .collect();
    error(
        put_rules(&s, "shop", Value::Array(too_many)).await,
        400,
        "too many rules: 1001",
    )
    .await;
    assert_eq!(
        json(s.get("/api/validate/shop/rules").await, 200).await,
        before,
        "unchanged"
    );

    // Proposals are checked the same way.
    error(
        s.post_json(
            "/api/rules/propose",
            json!({"project": "shop", "rule_id": "broken", "pattern": "(", "message": "m"}),
        )
        .await,
        400,
        "invalid regex in rule broken",
    )
    .await;
    error(
        s.post_json(
            "/api/rules/propose",
            json!({"rule_id": "x", "pattern": "a"}),
        )
        .await,
        400,
        "project is required",
    )
    .await;
    error(
        s.req(Method::POST, "/api/rules/propose")
            .body("not json")
            .send()
            .await
            .expect("POST"),
        400,
        "invalid JSON body",
    )
    .await;

    // Validation input: content is required; more than 1 MiB of it is a 413.
    error(
        s.post_json("/api/validate/shop", json!({"filename": "a.js"}))
            .await,
        400,
        "content is required",
    )
    .await;
    error(
        s.req(Method::POST, "/api/validate/shop")
            .send()
            .await
            .expect("POST"),
        400,
        "empty body",
    )
    .await;
    let huge = "a".repeat(1024 * 1024 + 1);
    error(
        s.post_json("/api/validate/shop", json!({"content": huge}))
            .await,
        413,
        "the limit is 1048576 bytes",
    )
    .await;
    let enormous = vec![b' '; 9 * 1024 * 1024];
    error(
        s.req(Method::POST, "/api/validate/shop")
            .body(enormous)
            .send()
            .await
            .expect("POST"),
        413,
        "too large",
    )
    .await;
    // Exactly 1 MiB is fine, and a pattern that is catastrophic for a backtracking engine
    // finishes (the regex crate is linear in the input).
    json(
        put_rules(
            &s,
            "evil",
            json!([{"rule_id": "evil", "pattern": "^(a+)+$"}, {"rule_id": "also", "match_type": "missing", "pattern": "(a|aa)*c"}]),
        )
        .await,
        200,
    )
    .await;
    let mut content = "a".repeat(1024 * 1024 - 1);
    content.push('!');
    let v = validate(&s, "evil", json!({"content": content})).await;
    assert_eq!(found(&v), [f("also", None, None)]);

    // Thousands of matches are capped, and the answer says so.
    json(
        put_rules(&s, "many", json!([{"rule_id": "x", "pattern": "x"}])).await,
        200,
    )
    .await;
    let v = validate(&s, "many", json!({"content": "x\n".repeat(20_000)})).await;
    assert_eq!(v["count"], 10_000);
    assert_eq!(v["truncated"], true);

    // The server is still serving.
    json(s.get("/health").await, 200).await;
    s.stop().await;
}

#[tokio::test]
async fn rules_survive_a_restart() {
    let s = Server::start().await;
    json(put_rules(&s, "shop", shop_rules()).await, 200).await;
    json(
        s.post_json(
            "/api/rules/propose",
            json!({"project": "shop", "rule_id": "no-todo", "pattern": "TODO", "message": "m"}),
        )
        .await,
        200,
    )
    .await;
    let before = json(s.get("/api/rules/shop").await, 200).await;
    let dir = s.stop().await;
    let s = Server::start_in(dir, |_| {}).await;
    assert_eq!(json(s.get("/api/rules/shop").await, 200).await, before);
    s.stop().await;
}
