//! (ext) `register` saves `.koor/instance.json` and resumes from it; `whoami`; commands that act
//! for an instance find it walking up, and `KOOR_INSTANCE` overrides it.

use std::path::Path;

use serde_json::{Value, json};

use crate::harness::Server;

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

fn saved(dir: &Path) -> Value {
    let path = dir.join(".koor").join("instance.json");
    let text = std::fs::read_to_string(&path).expect("identity file");
    serde_json::from_str(&text).expect("identity JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_twice_in_one_workspace_gives_one_id_and_new_gives_another() {
    let server = Server::start().await;
    let cli = server.cli();

    let first = cli
        .run(&["register", "claude", "--project", "shop"])
        .await
        .json();
    let id = id_of(&first);
    assert_eq!(first["resumed"], false);
    let token = first["token"].as_str().expect("token").to_owned();
    let file = cli.cwd().join(".koor").join("instance.json");
    assert_eq!(
        Path::new(first["identity_file"].as_str().expect("path")),
        file
    );
    assert_eq!(
        saved(cli.cwd()),
        json!({"server": server.url(), "id": id, "token": token, "name": "claude", "project": "shop"})
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is private");
    }
    assert!(
        std::fs::read_to_string(cli.cwd().join(".koor").join(".gitignore"))
            .expect(".gitignore")
            .lines()
            .any(|l| l == "*"),
        "git ignores the identity"
    );
    // the default workspace is the directory the identity lives in
    assert_eq!(
        Path::new(first["workspace"].as_str().expect("workspace")),
        cli.cwd()
    );

    // again, same name: the same instance, resumed with a heartbeat (pending -> active)
    let again = cli.run(&["register", "claude"]).await.json();
    assert_eq!(id_of(&again), id);
    assert_eq!(again["resumed"], true);
    assert_eq!(again["token"], token.as_str());
    assert_eq!(again["status"], "active");
    assert_eq!(saved(cli.cwd())["project"], "shop", "the project is kept");
    let all = server
        .client()
        .instances(&Default::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 1, "one instance, not two");

    // --new: another instance, and the file now names it
    let fresh = cli.run(&["register", "claude", "--new"]).await.json();
    let new_id = id_of(&fresh);
    assert_ne!(new_id, id);
    assert_eq!(fresh["resumed"], false);
    assert_eq!(saved(cli.cwd())["id"], new_id.as_str());

    // another name: another instance, the file replaced
    let other = cli.run(&["register", "cursor"]).await.json();
    let other_id = id_of(&other);
    assert!(other_id != id && other_id != new_id);
    assert_eq!(saved(cli.cwd())["name"], "cursor");

    // whoami: the saved instance and the server's view, never the token
    let me = cli.run(&["whoami"]).await;
    let who = me.json();
    assert_eq!(who["id"], other_id.as_str());
    assert_eq!(who["name"], "cursor");
    assert_eq!(who["token"], true);
    assert_eq!(who["instance"]["id"], other_id.as_str());
    assert!(
        who["source"]
            .as_str()
            .expect("source")
            .ends_with(".koor/instance.json")
    );
    assert!(!me.text().contains(other["token"].as_str().expect("token")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn found_from_a_subdirectory_saved_at_the_git_top() {
    let server = Server::start().await;
    let top = server.cli();
    std::fs::create_dir_all(top.cwd().join(".git")).expect("a git checkout");
    let cli = top.in_subdir("src/auth");

    let reg = cli.run(&["register", "claude"]).await.json();
    let id = id_of(&reg);
    assert_eq!(saved(cli.cwd())["id"], id.as_str(), "saved at the git top");
    assert!(!cli.cwd().join("src/auth/.koor").exists());
    assert_eq!(
        Path::new(reg["workspace"].as_str().expect("workspace")),
        cli.cwd()
    );

    // commands from below find it: activate (the original's instruction), heartbeat, whoami
    assert_eq!(
        cli.run(&["activate"]).await.json(),
        json!({"id": id, "status": "active"})
    );
    assert_eq!(
        cli.run(&["heartbeat"]).await.json(),
        json!({"id": id, "status": "ok"})
    );
    assert_eq!(
        cli.run(&["instances", "heartbeat"]).await.json(),
        json!({"id": id, "status": "ok"})
    );
    assert_eq!(cli.run(&["whoami"]).await.json()["id"], id.as_str());

    // --save-dir puts it elsewhere (creating the directory)
    let other_dir = cli.cwd().join("agents/two");
    let two = cli
        .run(&[
            "register",
            "two",
            "--save-dir",
            other_dir.to_str().expect("utf-8"),
        ])
        .await
        .json();
    assert_eq!(saved(&other_dir)["id"], two["id"]);
    assert_eq!(saved(cli.cwd())["id"], id.as_str(), "the first one stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn koor_instance_overrides_the_file_and_activate_needs_an_instance() {
    let server = Server::start().await;
    let cli = server.cli();

    // nothing known: a usage error that says what to do
    cli.run(&["activate"])
        .await
        .assert_fails(2, "koor-cli register NAME");
    cli.run(&["whoami"]).await.assert_fails(2, "KOOR_INSTANCE");

    let mine = id_of(&cli.run(&["register", "claude"]).await.json());
    let other = id_of(
        &server
            .cli()
            .run(&["register", "cursor"])
            .await
            .json(),
    );

    let env = server.cli().env("KOOR_INSTANCE", &other);
    assert_eq!(env.run(&["whoami"]).await.json()["id"], other.as_str());
    assert_eq!(env.run(&["whoami"]).await.json()["source"], "env KOOR_INSTANCE");
    assert_eq!(
        env.run(&["activate"]).await.json(),
        json!({"id": other, "status": "active"})
    );

    // the variable wins over the file in the working directory too
    let both = server.cli().env("KOOR_INSTANCE", &other);
    both.run(&["register", "claude-two"]).await.assert_ok();
    let who = both.run(&["whoami"]).await.json();
    assert_eq!(who["id"], other.as_str());
    assert_eq!(who["token"], false, "the file's token is not another's");

    // an explicit id still works where a file exists
    assert_eq!(
        cli.run(&["activate", &other]).await.json(),
        json!({"id": other, "status": "active"})
    );
    assert_eq!(cli.run(&["whoami"]).await.json()["id"], mine.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deregistered_instance_is_not_resumed() {
    let server = Server::start().await;
    let cli = server.cli();
    let id = id_of(&cli.run(&["register", "claude"]).await.json());
    assert_eq!(
        cli.run(&["instances", "deregister"]).await.json(),
        json!({"deleted": id})
    );
    cli.run(&["whoami"])
        .await
        .assert_fails(5, "instance not found");
    let again = cli.run(&["register", "claude"]).await.json();
    assert_ne!(id_of(&again), id);
    assert_eq!(again["resumed"], false);
    assert_eq!(cli.run(&["whoami"]).await.json()["id"], again["id"]);
}
