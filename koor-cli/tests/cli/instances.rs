//! `register` and `instances ...`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::Server;

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_list_get_heartbeat_activate_capabilities_deregister() {
    let server = Server::start().await;
    let cli = server.cli();

    let front = cli
        .run(&[
            "register",
            "claude-frontend",
            "--workspace",
            "/projects/web",
            "--intent",
            "dark mode",
            "--stack",
            "react",
            "--capability",
            "code-edit",
            "--capability",
            "review,test",
        ])
        .await
        .json();
    assert_eq!(front["name"], "claude-frontend");
    assert_eq!(front["workspace"], "/projects/web");
    assert_eq!(front["intent"], "dark mode");
    assert_eq!(front["stack"], "react");
    assert_eq!(
        front["capabilities"],
        json!(["code-edit", "review", "test"])
    );
    assert_eq!(front["status"], "pending");
    assert!(!front["token"].as_str().expect("token").is_empty());
    let front_id = front["id"].as_str().expect("id").to_owned();

    let back = cli
        .run(&["register", "cursor-backend", "--stack", "rust"])
        .await
        .json();
    let back_id = back["id"].as_str().expect("id").to_owned();

    let all = cli.run(&["instances", "list"]).await.json();
    assert_eq!(ids(&all).len(), 2);
    assert!(all[0].get("token").is_none(), "no tokens in listings");
    assert_eq!(
        ids(&cli
            .run(&["instances", "list", "--stack", "rust"])
            .await
            .json()),
        vec![back_id.clone()]
    );
    assert_eq!(
        ids(&cli
            .run(&["instances", "list", "--capability", "review"])
            .await
            .json()),
        vec![front_id.clone()]
    );
    assert_eq!(
        ids(&cli
            .run(&[
                "instances",
                "list",
                "--name",
                "claude-frontend",
                "--workspace",
                "/projects/web"
            ])
            .await
            .json()),
        vec![front_id.clone()]
    );

    let got = cli.run(&["instances", "get", &front_id]).await.json();
    assert_eq!(got["id"], front_id.as_str());
    assert!(got.get("token").is_none());

    let hb = cli.run(&["instances", "heartbeat", &front_id]).await.json();
    assert_eq!(hb, json!({"id": front_id, "status": "ok"}));
    let act = cli.run(&["instances", "activate", &back_id]).await.json();
    assert_eq!(act, json!({"id": back_id, "status": "active"}));
    assert_eq!(
        ids(&cli
            .run(&["instances", "list", "--status", "active"])
            .await
            .json())
        .len(),
        2
    );

    let caps = cli
        .run(&["instances", "capabilities", &back_id, "deploy", "migrate"])
        .await
        .json();
    assert_eq!(caps["capabilities"], json!(["deploy", "migrate"]));

    assert_eq!(cli.run(&["instances", "stale"]).await.json(), json!([]));

    let gone = cli
        .run(&["instances", "deregister", &front_id])
        .await
        .json();
    assert_eq!(gone, json!({"deleted": front_id}));
    cli.run(&["instances", "get", &front_id])
        .await
        .assert_fails(5, "instance not found");
    cli.run(&["instances", "heartbeat", &front_id])
        .await
        .assert_fails(5, "instance not found");
    cli.run(&["instances", "deregister", &front_id])
        .await
        .assert_fails(5, "instance not found");
    assert_eq!(
        ids(&cli.run(&["instances", "list", "--pretty"]).await.json()),
        [back_id]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_instances_are_listed_and_pruned() {
    let server = Server::start_with(|c| c.stale_after = Duration::from_millis(1)).await;
    let cli = server.cli();
    let id = cli.run(&["register", "sleepy"]).await.json()["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // Ask the server to run its liveness check until the instance is marked (bounded).
    let client = server.client();
    let mut stale = Value::Null;
    for _ in 0..200 {
        let check = client.request(reqwest::Method::POST, "/api/liveness/check");
        client.send(check).await.expect("liveness check");
        stale = cli.run(&["instances", "stale"]).await.json();
        if !ids(&stale).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ids(&stale), vec![id.clone()]);
    assert_eq!(stale[0]["status"], "stale");

    let pruned = cli.run(&["instances", "prune"]).await.json();
    assert_eq!(pruned, json!({"deleted": [id]}));
    assert_eq!(cli.run(&["instances", "list"]).await.json(), json!([]));
    assert_eq!(
        cli.run(&["instances", "prune"]).await.json(),
        json!({"deleted": []})
    );
}
