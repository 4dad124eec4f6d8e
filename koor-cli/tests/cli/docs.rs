//! The docs agree with the product: every size the README and docs/ give for the MCP `tools/list`
//! answer is the size a running server answers (to a tenth of a KB, give or take rounding).

use std::path::Path;

use serde_json::json;

use crate::harness::Server;

/// Every "N.N KB" in the lines of `text` that mention `tools/list`.
fn stated_sizes(text: &str) -> Vec<f64> {
    let mut sizes = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        // A sentence may wrap: the line that names tools/list and the next one.
        if !line.contains("tools/list") {
            continue;
        }
        let joined = format!("{line} {}", lines.get(i + 1).unwrap_or(&""));
        let words: Vec<&str> = joined.split_whitespace().collect();
        for pair in words.windows(2) {
            if pair[1].trim_end_matches(|c: char| !c.is_alphanumeric()) == "KB"
                && let Ok(n) = pair[0].parse::<f64>()
            {
                sizes.push(n);
            }
        }
    }
    sizes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tools_list_size_the_docs_give_is_the_real_one() {
    let server = Server::start().await;
    let answer = reqwest::Client::new()
        .post(format!("{}/mcp", server.url()))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}))
        .send()
        .await
        .expect("POST /mcp")
        .bytes()
        .await
        .expect("body");
    let kb = answer.len() as f64 / 1000.0;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut checked = 0;
    for doc in ["README.md", "docs/coordination.md"] {
        let text = std::fs::read_to_string(root.join(doc)).expect("doc");
        for stated in stated_sizes(&text) {
            assert!(
                (stated - kb).abs() <= 0.15,
                "{doc} gives tools/list as {stated} KB; a running server answers {} bytes",
                answer.len()
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "the sizes were found ({checked})");
}
