//! End-to-end tests: each starts the real server in-process on `127.0.0.1:0` with a temp data dir
//! and drives it as users do.

// Starting servers and talking to them.
mod harness;
// A webhook receiver on loopback that can acknowledge, fail or hang.
mod receiver;

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
// Task boards over the hold model: claim races, dependencies, reclaim, conditional PATCH.
mod tasks;
// Locks over the hold model: races, expiry, keepalive, deregistration, fences, waits, tokens.
mod locks;
// File reservations: overlap, all or nothing, normalised paths, check, expiry, deregistration.
mod reservations;
// Messages: ids and names, threads, inboxes, receipts, limits, events without bodies.
mod messages;
// Long-polls: events, inbox and state waits; deadlines, metrics, a thousand waiters, shutdown.
mod waiting;
// The MCP endpoint: the rmcp client, raw-HTTP transport rules, restarts.
mod mcp;
// MCP for coordination: resuming an identity, the lock tool, strict argument types, limits.
mod mcp_work;
// Validation rules: every match type, globs, stacks, proposals over REST and MCP, bad input.
mod rules;
// The web dashboard: its listener, and the page in headless Chromium (skipped without it unless CI).
mod dashboard;
// Webhooks: signatures, order under failures, restarts, isolation, auto-disable.
mod webhooks;
// The audit log: every kind of mutation, actors, filters, retention.
mod audit;
// Backup under load, restore, and the Prometheus exposition.
mod backup;
// Rules export and import.
mod rules_io;
// Issue 16: DNS rebinding, idle connections, costly patterns, exact event data, a full disk, the lock.
mod hardening;
