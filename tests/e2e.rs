//! End-to-end tests: each starts the real server in-process on `127.0.0.1:0` with a temp data dir
//! and drives it as users do.

// Starting servers and talking to them.
mod harness;

// Health, metrics, errors, auth, restart, the data-dir lock.
mod server;
// The State section of API.md, conditional writes, concurrent writers.
mod state;
// The Specs section of API.md.
mod specs;
// Publish, history, WebSocket subscribe with resume, system topics, retention.
mod events;
// The server's log ring and log stream.
mod logs;
// The agent registry: lifecycle, liveness, filters, persistence.
mod instances;
// Locks over the hold model: races, expiry, keepalive, deregistration, fences, waits, tokens.
mod locks;
// Task boards over the hold model: claim races, dependencies, reclaim, conditional PATCH.
mod tasks;
// The MCP endpoint: the rmcp client, raw-HTTP transport rules, restarts.
mod mcp;
// Validation rules: every match type, globs, stacks, proposals over REST and MCP, bad input.
mod rules;
// The web dashboard: its listener, and the page in headless Chromium (skipped without it unless CI).
mod dashboard;
