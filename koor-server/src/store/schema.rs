//! Schema migrations, applied in order on start. `PRAGMA user_version` records how far a database
//! has come; a database from a newer server is refused rather than misread.

use rusqlite::Connection;

/// Each entry migrates from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: state with versions, specs, events, instances, validation rules.
    r#"
    CREATE TABLE state (
        key          TEXT PRIMARY KEY,
        version      INTEGER NOT NULL,
        hash         TEXT NOT NULL,
        content_type TEXT NOT NULL,
        size         INTEGER NOT NULL,
        updated_at   TEXT NOT NULL
    );
    CREATE TABLE state_versions (
        id           INTEGER PRIMARY KEY,
        key          TEXT NOT NULL,
        version      INTEGER NOT NULL,
        hash         TEXT NOT NULL,
        content_type TEXT NOT NULL,
        value        BLOB NOT NULL,
        updated_at   TEXT NOT NULL,
        UNIQUE (key, version)
    );
    CREATE TABLE specs (
        project    TEXT NOT NULL,
        name       TEXT NOT NULL,
        version    INTEGER NOT NULL,
        hash       TEXT NOT NULL,
        data       BLOB NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (project, name)
    );
    CREATE TABLE events (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        topic      TEXT NOT NULL,
        data       TEXT NOT NULL,
        source     TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX events_topic ON events (topic, id);
    CREATE TABLE instances (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        workspace     TEXT NOT NULL,
        intent        TEXT NOT NULL,
        stack         TEXT NOT NULL,
        capabilities  TEXT NOT NULL,
        status        TEXT NOT NULL,
        token_hash    TEXT NOT NULL,
        registered_at TEXT NOT NULL,
        last_seen     TEXT NOT NULL
    );
    CREATE TABLE rules (
        project     TEXT NOT NULL,
        rule_id     TEXT NOT NULL,
        severity    TEXT NOT NULL,
        match_type  TEXT NOT NULL,
        pattern     TEXT NOT NULL,
        message     TEXT NOT NULL,
        applies_to  TEXT NOT NULL,
        stack       TEXT NOT NULL,
        status      TEXT NOT NULL,
        proposed_by TEXT NOT NULL,
        context     TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (project, rule_id)
    );
    "#,
    // 2: holds (locks, file reservations, task claims): one table, one model.
    r#"
    CREATE TABLE holds (
        id          TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        project     TEXT NOT NULL,
        resource    TEXT NOT NULL,
        holder      TEXT NOT NULL,
        holder_name TEXT NOT NULL,
        fence       INTEGER NOT NULL,
        ttl_ms      INTEGER NOT NULL,
        exclusive   INTEGER NOT NULL,
        reason      TEXT NOT NULL,
        acquired_at TEXT NOT NULL,
        expires_ms  INTEGER NOT NULL
    );
    CREATE INDEX holds_resource ON holds (kind, project, resource);
    CREATE INDEX holds_holder ON holds (holder);
    CREATE INDEX holds_expiry ON holds (expires_ms);
    "#,
    // 3: directed messages between instances, with threads and per-recipient receipts. Names are
    // kept beside ids so a message outlives the instances it names.
    r#"
    CREATE TABLE messages (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        thread_id    INTEGER NOT NULL,
        from_id      TEXT NOT NULL,
        from_name    TEXT NOT NULL,
        subject      TEXT NOT NULL,
        body         TEXT,
        ack_required INTEGER NOT NULL,
        created_at   TEXT NOT NULL
    );
    CREATE INDEX messages_thread ON messages (thread_id, id);
    CREATE TABLE message_recipients (
        message_id    INTEGER NOT NULL,
        pos           INTEGER NOT NULL,
        instance_id   TEXT NOT NULL,
        instance_name TEXT NOT NULL,
        read_at       TEXT,
        acked_at      TEXT,
        PRIMARY KEY (message_id, instance_id)
    );
    CREATE INDEX message_inbox ON message_recipients (instance_id, message_id);
    "#,
    // 4: webhooks with their delivery cursor and health; the append-only audit log.
    r#"
    CREATE TABLE webhooks (
        id              TEXT PRIMARY KEY,
        url             TEXT NOT NULL,
        patterns        TEXT NOT NULL,
        secret          TEXT NOT NULL,
        active          INTEGER NOT NULL,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        cursor          INTEGER NOT NULL,
        delivered       INTEGER NOT NULL DEFAULT 0,
        fail_count      INTEGER NOT NULL DEFAULT 0,
        last_fired      TEXT,
        last_attempt_at TEXT,
        last_status     INTEGER,
        last_error      TEXT
    );
    CREATE TABLE audit_log (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        timestamp  TEXT NOT NULL,
        actor      TEXT NOT NULL,
        action     TEXT NOT NULL,
        resource   TEXT NOT NULL,
        detail     TEXT NOT NULL,
        outcome    TEXT NOT NULL,
        status     INTEGER NOT NULL,
        method     TEXT NOT NULL,
        path       TEXT NOT NULL,
        remote     TEXT NOT NULL,
        token_used INTEGER NOT NULL
    );
    CREATE INDEX audit_log_timestamp ON audit_log (timestamp);
    "#,
    // 5: task boards (the claim on a task is a hold of kind `task`).
    r#"
    CREATE TABLE tasks (
        project     TEXT NOT NULL,
        num         INTEGER NOT NULL,
        title       TEXT NOT NULL,
        description TEXT NOT NULL,
        status      TEXT NOT NULL,
        priority    INTEGER NOT NULL,
        labels      TEXT NOT NULL,
        attempts    INTEGER NOT NULL,
        result      TEXT,
        reason      TEXT NOT NULL,
        created_by  TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        version     INTEGER NOT NULL,
        PRIMARY KEY (project, num)
    );
    CREATE INDEX tasks_ready ON tasks (project, status, priority DESC, num);
    CREATE TABLE task_deps (
        project TEXT NOT NULL,
        task    INTEGER NOT NULL,
        dep     INTEGER NOT NULL,
        PRIMARY KEY (project, task, dep)
    );
    CREATE INDEX task_deps_dep ON task_deps (project, dep);
    "#,
    // 6: each inbox's unread count kept in a row of its own, by triggers, so reading it costs
    // the same at 20 messages as at 20,000. (No partial index on the unread receipts: SQLite
    // then plans every statement on the table again whenever a bound value changes.)
    r#"
    CREATE TABLE inbox_unread (
        instance_id TEXT PRIMARY KEY,
        unread      INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO inbox_unread (instance_id, unread)
        SELECT instance_id, COUNT(*) FROM message_recipients WHERE read_at IS NULL
        GROUP BY instance_id;
    CREATE TRIGGER inbox_unread_insert AFTER INSERT ON message_recipients
        WHEN NEW.read_at IS NULL
    BEGIN
        INSERT INTO inbox_unread (instance_id, unread) VALUES (NEW.instance_id, 1)
            ON CONFLICT (instance_id) DO UPDATE SET unread = unread + 1;
    END;
    CREATE TRIGGER inbox_unread_read AFTER UPDATE OF read_at ON message_recipients
        WHEN OLD.read_at IS NULL AND NEW.read_at IS NOT NULL
    BEGIN
        UPDATE inbox_unread SET unread = unread - 1 WHERE instance_id = OLD.instance_id;
    END;
    CREATE TRIGGER inbox_unread_delete AFTER DELETE ON message_recipients
        WHEN OLD.read_at IS NULL
    BEGIN
        UPDATE inbox_unread SET unread = unread - 1 WHERE instance_id = OLD.instance_id;
    END;
    "#,
];

/// The schema version this server writes (a restored backup must not be newer).
pub fn version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Brings the schema up to date in one transaction.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    let current: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|e| e.to_string())?;
    let current = usize::try_from(current).unwrap_or(usize::MAX);
    if current > MIGRATIONS.len() {
        return Err(format!(
            "the database has schema version {current}, newer than this server knows ({}); upgrade koor-server",
            MIGRATIONS.len()
        ));
    }
    let mut apply = || -> rusqlite::Result<()> {
        let tx = conn.transaction()?;
        for sql in &MIGRATIONS[current..] {
            tx.execute_batch(sql)?;
        }
        tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
        tx.commit()
    };
    apply().map_err(|e| format!("schema migration failed: {e}"))
}
