//! `rules ...` and `validate` (exit 8 on error-severity violations, so CI can gate on it).

use serde_json::{Value, json};

use crate::harness::Server;

fn ids(list: &Value) -> Vec<String> {
    list["rules"]
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
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_set_list_propose_accept_reject() {
    let server = Server::start().await;
    let cli = server.cli();
    let rules = json!([
        {"rule_id": "no-inline-style", "pattern": "style\\s*=", "message": "no inline styles", "applies_to": ["*.html"]},
        {"rule_id": "require-ai-id", "severity": "warning", "match_type": "missing", "pattern": "data-ai-id", "message": "add data-ai-id"}
    ]);
    let file = cli.cwd().join("rules.json");
    std::fs::write(&file, rules.to_string()).expect("write rules");
    let set = cli
        .run(&["rules", "set", "shop", "--file", "rules.json"])
        .await
        .json();
    assert_eq!(set, json!({"project": "shop", "count": 2}));

    let proposed = cli
        .run(&[
            "rules",
            "propose",
            "shop",
            "no-console-log",
            "--match-type",
            "custom",
            "--pattern",
            "no-console-log",
            "--message",
            "Remove console.log",
            "--applies-to",
            "*.js,*.ts",
            "--proposed-by",
            "cli-test",
        ])
        .await
        .json();
    assert_eq!(
        proposed,
        json!({"project": "shop", "rule_id": "no-console-log", "status": "proposed"})
    );
    let all = cli.run(&["rules", "list", "shop"]).await.json();
    assert_eq!(
        ids(&all),
        [
            "no-console-log:proposed",
            "no-inline-style:accepted",
            "require-ai-id:accepted"
        ]
    );
    let pending = cli
        .run(&["rules", "list", "shop", "--status", "proposed"])
        .await
        .json();
    assert_eq!(ids(&pending), ["no-console-log:proposed"]);
    assert_eq!(pending["rules"][0]["applies_to"], json!(["*.js", "*.ts"]));
    assert_eq!(pending["rules"][0]["proposed_by"], "cli-test");

    let accepted = cli
        .run(&["rules", "accept", "shop", "no-console-log"])
        .await
        .json();
    assert_eq!(accepted["status"], "accepted");
    let rejected = cli
        .run(&["rules", "reject", "shop", "require-ai-id"])
        .await
        .json();
    assert_eq!(rejected["status"], "rejected");
    let accepted = server
        .client()
        .rules_list("shop", Some("accepted"))
        .await
        .expect("list");
    assert_eq!(accepted.rules.len(), 2);

    // Pretty output keeps the server's key order.
    let pretty = cli.run(&["rules", "list", "shop", "--pretty"]).await;
    pretty.assert_ok();
    assert!(
        pretty
            .text()
            .starts_with("{\n  \"project\": \"shop\",\n  \"rules\": [")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_exit_codes_gate_ci() {
    let server = Server::start().await;
    let cli = server.cli();
    let client = server.client();
    client
        .rules_set(
            "shop",
            json!([
                {"rule_id": "no-console-log", "match_type": "custom", "pattern": "no-console-log", "message": "Remove console.log", "applies_to": ["src/**/*.js"]},
                {"rule_id": "no-todo", "severity": "warning", "pattern": "TODO", "message": "resolve TODOs"},
                {"rule_id": "go-only", "pattern": "panic", "message": "no panics", "stack": "go"}
            ])
            .to_string()
            .into_bytes(),
        )
        .await
        .expect("set rules");
    std::fs::create_dir_all(cli.cwd().join("src/app")).expect("mkdir");
    std::fs::write(
        cli.cwd().join("src/app/main.js"),
        "// TODO tidy\nconsole.log('hi');\n",
    )
    .expect("write");
    std::fs::write(cli.cwd().join("src/app/ok.js"), "// TODO tidy\n").expect("write");
    std::fs::write(cli.cwd().join("clean.js"), "export const a = 1;\n").expect("write");

    // An error-severity violation: the report on stdout, one line on stderr, exit 8.
    let out = cli
        .run(&["validate", "shop", "--file", "src/app/main.js"])
        .await;
    assert_eq!(out.code, 8, "stderr: {}", out.stderr);
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["count"], 2);
    assert_eq!(report["violations"][0]["rule_id"], "no-console-log");
    assert_eq!(report["violations"][0]["line"], 2);
    assert_eq!(report["violations"][0]["match"], "console.log(");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("validation failed: 1 error and 1 warning in src/app/main.js"),
        "{}",
        out.stderr
    );

    // Warnings alone pass, and so does a clean file.
    let out = cli
        .run(&["validate", "shop", "--file", "src/app/ok.js"])
        .await;
    assert_eq!(out.json()["count"], 1);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    let out = cli.run(&["validate", "shop", "--file", "clean.js"]).await;
    assert_eq!(
        out.json(),
        json!({"project": "shop", "violations": [], "count": 0})
    );

    // The filename chooses the rules: the same content under another name passes.
    let out = cli
        .run(&[
            "validate",
            "shop",
            "--file",
            "src/app/main.js",
            "--filename",
            "lib/main.js",
        ])
        .await;
    assert_eq!(out.json()["count"], 1);

    // Stdin with --filename and --stack.
    let out = server
        .cli()
        .stdin("package main\nfunc main() { panic(\"x\") }\n")
        .run(&[
            "validate",
            "shop",
            "--file",
            "-",
            "--filename",
            "main.go",
            "--stack",
            "go",
        ])
        .await;
    assert_eq!(out.code, 8, "stderr: {}", out.stderr);
    assert!(out.stderr.contains("in main.go"), "{}", out.stderr);
    let out = server
        .cli()
        .stdin("func main() { panic(\"x\") }\n")
        .run(&["validate", "shop", "--file", "-", "--stack", "react"])
        .await;
    assert_eq!(out.json()["count"], 0);

    // Failures keep their usual codes.
    cli.run(&["validate", "shop", "--file", "nope.js"])
        .await
        .assert_fails(1, "cannot read nope.js");
    let usage = cli.run(&["validate", "shop"]).await;
    assert_eq!(usage.code, 2);
    assert!(usage.stderr.contains("--file"), "{}", usage.stderr);
    cli.run(&[
        "rules",
        "propose",
        "shop",
        "broken",
        "--pattern",
        "([",
        "--message",
        "m",
    ])
    .await
    .assert_fails(7, "invalid regex in rule broken");
    cli.run(&["rules", "accept", "shop", "nope"])
        .await
        .assert_fails(5, "rule not found: shop/nope");
    server
        .cli()
        .stdin("{\"rule_id\": \"x\"}")
        .run(&["rules", "set", "shop"])
        .await
        .assert_fails(2, "must be a JSON array");
    server
        .cli()
        .stdin("[{\"rule_id\": \"x\", \"pattern\": \"(\"}]")
        .run(&["rules", "set", "shop"])
        .await
        .assert_fails(7, "invalid regex in rule x");
    // Rules were not changed by the failed set.
    assert_eq!(
        client
            .rules_list("shop", Some("accepted"))
            .await
            .expect("list")
            .rules
            .len(),
        3
    );
}
