use reqwest::Method;

use crate::harness::{Server, error, json};

#[tokio::test]
async fn specs_lifecycle() {
    let s = Server::start().await;
    let list = json(s.get("/api/specs/shop").await, 200).await;
    assert_eq!(list, serde_json::json!({"project": "shop", "specs": []}));

    let w = json(
        s.put("/api/specs/shop/api/orders", r#"{"paths":{}}"#).await,
        200,
    )
    .await;
    assert_eq!(w["project"], "shop");
    assert_eq!(w["name"], "api/orders");
    assert_eq!(w["version"], 1);
    assert!(w["hash"].is_string() && w["updated_at"].is_string());
    let w = json(
        s.put("/api/specs/shop/api/orders", r#"{"paths":{"/a":{}}}"#)
            .await,
        200,
    )
    .await;
    assert_eq!(w["version"], 2);

    let resp = s.get("/api/specs/shop/api/orders").await;
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["x-koor-version"], "2");
    let etag = resp.headers()["etag"].to_str().expect("etag").to_owned();
    assert_eq!(resp.text().await.expect("body"), r#"{"paths":{"/a":{}}}"#);
    let resp = s
        .req(Method::GET, "/api/specs/shop/api/orders")
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 304);

    let list = json(s.get("/api/specs/shop").await, 200).await;
    assert_eq!(list["specs"][0]["name"], "api/orders");
    assert_eq!(list["specs"][0]["version"], 2);
    assert!(list["specs"][0]["updated_at"].is_string());
    // Other projects are separate.
    assert_eq!(
        json(s.get("/api/specs/other").await, 200).await["specs"],
        serde_json::json!([])
    );

    error(
        s.get("/api/specs/shop/nope").await,
        404,
        "spec not found: shop/nope",
    )
    .await;
    error(s.put("/api/specs/shop/empty", "").await, 400, "empty body").await;
    let d = json(s.delete("/api/specs/shop/api/orders").await, 200).await;
    assert_eq!(d, serde_json::json!({"deleted": "shop/api/orders"}));
    error(
        s.delete("/api/specs/shop/api/orders").await,
        404,
        "spec not found: shop/api/orders",
    )
    .await;
    error(
        s.req(Method::PUT, "/api/specs/shop")
            .body("{}")
            .send()
            .await
            .expect("PUT"),
        405,
        "not allowed",
    )
    .await;
    // (ext) The project list.
    json(s.put("/api/specs/zeta/a", "{}").await, 200).await;
    let projects = json(s.get("/api/specs").await, 200).await;
    assert_eq!(projects["projects"][0]["project"], "zeta", "{projects}");
    assert_eq!(projects["projects"][0]["specs"], 1);
    assert_eq!(json(s.get("/api/specs/").await, 200).await, projects);
}
