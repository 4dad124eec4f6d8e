//! `state ...`.

use serde_json::json;

use crate::harness::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_get_list_history_diff_rollback_delete() {
    let server = Server::start().await;
    let cli = server.cli();

    let v1 = cli
        .run(&[
            "state",
            "set",
            "api-contract",
            "--data",
            r#"{"endpoint":"/users","method":"GET"}"#,
        ])
        .await
        .json();
    assert_eq!(v1["key"], "api-contract");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["content_type"], "application/json");
    assert_eq!(v1["hash"].as_str().expect("hash").len(), 64);

    let v2 = cli
        .run(&[
            "state",
            "set",
            "api-contract",
            "-d",
            r#"{"endpoint":"/users","method":"POST"}"#,
        ])
        .await
        .json();
    assert_eq!(v2["version"], 2);

    let got = cli.run(&["state", "get", "api-contract"]).await;
    got.assert_ok();
    assert_eq!(got.stdout, br#"{"endpoint":"/users","method":"POST"}"#);
    let old = cli
        .run(&["state", "get", "api-contract", "--version", "1"])
        .await;
    assert_eq!(old.stdout, br#"{"endpoint":"/users","method":"GET"}"#);

    let list = cli.run(&["state", "list"]).await.json();
    assert_eq!(list.as_array().expect("array").len(), 1);
    assert_eq!(list[0]["key"], "api-contract");
    assert_eq!(list[0]["version"], 2);

    let history = cli
        .run(&["state", "history", "api-contract", "--limit", "1"])
        .await
        .json();
    assert_eq!(history["key"], "api-contract");
    assert_eq!(history["versions"].as_array().expect("versions").len(), 1);
    assert_eq!(history["versions"][0]["version"], 2);

    let diff = cli
        .run(&["state", "diff", "api-contract", "--v1", "1", "--v2", "2"])
        .await
        .json();
    assert_eq!(diff["v1"], 1);
    assert_eq!(diff["v2"], 2);
    assert_eq!(
        diff["diffs"],
        json!([{"operation":"replace","path":"/method","old_value":"GET","new_value":"POST"}])
    );

    let rolled = cli
        .run(&["state", "rollback", "api-contract", "--version", "1"])
        .await
        .json();
    assert_eq!(rolled["version"], 3);
    assert_eq!(rolled["rolled_back"], 1);
    let got = cli.run(&["state", "get", "api-contract"]).await;
    assert_eq!(got.stdout, br#"{"endpoint":"/users","method":"GET"}"#);

    let deleted = cli.run(&["state", "delete", "api-contract"]).await.json();
    assert_eq!(deleted, json!({"deleted":"api-contract"}));
    cli.run(&["state", "get", "api-contract"])
        .await
        .assert_fails(5, "key not found: api-contract");
    cli.run(&["state", "delete", "api-contract"])
        .await
        .assert_fails(5, "key not found");
    assert_eq!(cli.run(&["state", "list"]).await.json(), json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_values_round_trip_byte_for_byte() {
    let server = Server::start().await;
    let cli = server.cli();
    let mut value: Vec<u8> = (0..=255u8).collect();
    value.extend((0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    value.extend_from_slice(b"\r\n\0\xff\xfe");
    let key = "bin/dir with space/blob.bin";

    let written = cli
        .stdin(value.clone())
        .run(&[
            "state",
            "set",
            key,
            "--content-type",
            "application/octet-stream",
        ])
        .await
        .json();
    assert_eq!(written["key"], key);
    assert_eq!(written["content_type"], "application/octet-stream");

    let cli = server.cli();
    let got = cli.run(&["state", "get", key]).await;
    got.assert_ok();
    assert_eq!(got.stdout.len(), value.len());
    assert!(got.stdout == value, "bytes differ");
    // --pretty leaves a value that is not JSON alone.
    let got = cli.run(&["state", "get", key, "--pretty"]).await;
    assert!(got.stdout == value, "bytes differ with --pretty");

    // The same through a file.
    let path = cli.cwd().join("blob.bin");
    std::fs::write(&path, &value).expect("write file");
    let v2 = cli
        .run(&[
            "state",
            "set",
            "copy",
            "--file",
            path.to_str().expect("path"),
            "--content-type",
            "application/octet-stream",
        ])
        .await
        .json();
    assert_eq!(v2["hash"], written["hash"]);
    assert!(cli.run(&["state", "get", "copy"]).await.stdout == value);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_file_and_dash_inputs() {
    let server = Server::start().await;
    let from_stdin = server
        .cli()
        .stdin(r#"{"from":"stdin"}"#)
        .run(&["state", "set", "a"])
        .await
        .json();
    assert_eq!(from_stdin["version"], 1);
    let dash = server
        .cli()
        .stdin(r#"{"from":"dash"}"#)
        .run(&["state", "set", "a", "--file", "-"])
        .await
        .json();
    assert_eq!(dash["version"], 2);
    let got = server.cli().run(&["state", "get", "a"]).await;
    assert_eq!(got.stdout, br#"{"from":"dash"}"#);

    // Nothing on stdin is an empty body: the server's 400, exit 7.
    server
        .cli()
        .run(&["state", "set", "a"])
        .await
        .assert_fails(7, "empty body");
    // --data and --file together is a usage error.
    let out = server
        .cli()
        .run(&["state", "set", "a", "--data", "1", "--file", "x"])
        .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    // A missing file: exit 1 naming the file.
    server
        .cli()
        .run(&["state", "set", "a", "--file", "does-not-exist.json"])
        .await
        .assert_fails(1, "does-not-exist.json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pretty_output_anywhere_on_the_line() {
    let server = Server::start().await;
    let cli = server.cli();
    cli.run(&[
        "state",
        "set",
        "doc",
        "--data",
        r#"{"z":1,"a":{"b":[1,2]}}"#,
    ])
    .await
    .assert_ok();

    let compact = cli.run(&["state", "list"]).await;
    assert_eq!(compact.text().lines().count(), 1);
    for args in [
        &["--pretty", "state", "list"][..],
        &["state", "--pretty", "list"][..],
        &["state", "list", "--pretty"][..],
    ] {
        let pretty = cli.run(args).await;
        assert!(
            pretty.text().lines().count() > 3,
            "{args:?}: {}",
            pretty.text()
        );
        assert!(
            pretty.text().contains("\n    \"key\": \"doc\""),
            "{}",
            pretty.text()
        );
        assert_eq!(pretty.json(), compact.json());
    }

    // A JSON value is indented with its key order kept.
    let got = cli.run(&["state", "get", "doc", "--pretty"]).await;
    assert_eq!(
        got.text(),
        "{\n  \"z\": 1,\n  \"a\": {\n    \"b\": [\n      1,\n      2\n    ]\n  }\n}\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_writes() {
    let server = Server::start().await;
    let cli = server.cli();

    let created = cli
        .run(&[
            "state",
            "set",
            "lock",
            "--create-only",
            "--data",
            r#"{"owner":"a"}"#,
        ])
        .await
        .json();
    assert_eq!(created["version"], 1);
    cli.run(&[
        "state",
        "set",
        "lock",
        "--create-only",
        "--data",
        r#"{"owner":"b"}"#,
    ])
    .await
    .assert_fails(6, "precondition failed");

    let v2 = cli
        .run(&[
            "state",
            "set",
            "lock",
            "--if-version",
            "1",
            "--data",
            r#"{"owner":"a2"}"#,
        ])
        .await
        .json();
    assert_eq!(v2["version"], 2);
    cli.run(&["state", "set", "lock", "--if-version", "1", "--data", "{}"])
        .await
        .assert_fails(6, "version 2");

    let hash = v2["hash"].as_str().expect("hash").to_owned();
    let v3 = cli
        .run(&[
            "state",
            "set",
            "lock",
            "--if-match",
            &hash,
            "--data",
            r#"{"owner":"a3"}"#,
        ])
        .await
        .json();
    assert_eq!(v3["version"], 3);
    // The old hash, quoted as an ETag this time, no longer matches.
    cli.run(&[
        "state",
        "set",
        "lock",
        "--if-match",
        &format!("\"{hash}\""),
        "--data",
        "{}",
    ])
    .await
    .assert_fails(6, "precondition failed");

    cli.run(&["state", "delete", "lock", "--if-version", "2"])
        .await
        .assert_fails(6, "precondition failed");
    cli.run(&["state", "delete", "lock", "--if-version", "3"])
        .await
        .assert_ok();

    let out = cli
        .run(&[
            "state",
            "set",
            "x",
            "--create-only",
            "--if-version",
            "1",
            "--data",
            "{}",
        ])
        .await;
    assert_eq!(out.code, 2, "conflicting flags: {}", out.stderr);
}

/// Without --content-type a value is labelled by what it is: JSON, text, or bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_labels_values_by_what_they_are() {
    let server = Server::start().await;
    let cli = server.cli();
    let set = |key: &'static str, data: &'static str| {
        let cli = &cli;
        async move {
            cli.run(&["state", "set", key, "--data", data]).await.json()["content_type"].clone()
        }
    };
    assert_eq!(set("note", "plain text").await, "text/plain; charset=utf-8");
    assert_eq!(set("doc", r#"{"a":1}"#).await, "application/json");
    let bytes = server
        .cli()
        .stdin(vec![0xffu8, 0xfe, 0x00])
        .run(&["state", "set", "blob"])
        .await
        .json();
    assert_eq!(bytes["content_type"], "application/octet-stream");
    let named = cli
        .run(&[
            "state",
            "set",
            "page",
            "--data",
            "<p>hi</p>",
            "--content-type",
            "text/html",
        ])
        .await
        .json();
    assert_eq!(named["content_type"], "text/html");

    // The server serves the text back with the label it was stored under.
    let resp = reqwest::get(format!("{}/api/state/note", server.url()))
        .await
        .expect("GET");
    assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(resp.text().await.expect("body"), "plain text");
}
