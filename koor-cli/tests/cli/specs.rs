//! `specs ...`.

use serde_json::json;

use crate::harness::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_get_list_delete() {
    let server = Server::start().await;
    let cli = server.cli();

    assert_eq!(
        cli.run(&["specs", "list", "shop"]).await.json(),
        json!({"project":"shop","specs":[]})
    );
    let written = cli
        .run(&[
            "specs",
            "set",
            "shop/orders",
            "--data",
            r#"{"openapi":"3.1.0"}"#,
        ])
        .await
        .json();
    assert_eq!(written["project"], "shop");
    assert_eq!(written["name"], "orders");
    assert_eq!(written["version"], 1);

    // Names may contain slashes; data may come from stdin.
    let nested = server
        .cli()
        .stdin(r#"{"v":1}"#)
        .run(&["specs", "set", "shop/api/v1"])
        .await
        .json();
    assert_eq!(nested["name"], "api/v1");

    let got = cli.run(&["specs", "get", "shop/orders"]).await;
    got.assert_ok();
    assert_eq!(got.stdout, br#"{"openapi":"3.1.0"}"#);
    let got = cli.run(&["specs", "get", "shop/api/v1", "--pretty"]).await;
    assert_eq!(got.text(), "{\n  \"v\": 1\n}\n");

    let list = cli.run(&["specs", "list", "shop"]).await.json();
    let names: Vec<&str> = list["specs"]
        .as_array()
        .expect("specs")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names.len(), 2);
    assert!(
        names.contains(&"orders") && names.contains(&"api/v1"),
        "{names:?}"
    );

    cli.run(&[
        "specs",
        "set",
        "shop/orders",
        "--create-only",
        "--data",
        "{}",
    ])
    .await
    .assert_fails(6, "precondition failed");
    cli.run(&[
        "specs",
        "set",
        "shop/orders",
        "--if-version",
        "1",
        "--data",
        r#"{"openapi":"3.1.1"}"#,
    ])
    .await
    .assert_ok();
    cli.run(&["specs", "delete", "shop/orders", "--if-version", "1"])
        .await
        .assert_fails(6, "precondition failed");

    assert_eq!(
        cli.run(&["specs", "delete", "shop/orders"]).await.json(),
        json!({"deleted":"shop/orders"})
    );
    cli.run(&["specs", "get", "shop/orders"])
        .await
        .assert_fails(5, "spec not found: shop/orders");
    cli.run(&["specs", "get", "no-slash"])
        .await
        .assert_fails(2, "expected PROJECT/NAME");
}
