//! Backups and restores of the whole store.
//!
//! A backup is `VACUUM INTO` a new file, run on a read connection: SQLite writes a consistent
//! snapshot of one read transaction while the writer keeps committing (WAL readers never block
//! it), so the file holds exactly the commits made before the snapshot began. A restore checks
//! the file (`PRAGMA integrity_check`, schema version) and puts it in place of `data.db` only
//! while no server holds the data directory.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::{DirLock, Result, StoreError, lock, schema};

/// Writes a consistent snapshot of the database `conn` reads into `dest` (which must not exist).
pub fn snapshot(conn: &Connection, dest: &Path) -> Result<()> {
    let dest = dest
        .to_str()
        .ok_or_else(|| StoreError::Invalid("the backup path is not valid UTF-8".into()))?;
    conn.execute("VACUUM INTO ?1", [dest])?;
    Ok(())
}

/// What [`check`] found in a backup file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Checked {
    pub schema_version: i64,
    pub state_keys: i64,
    pub events: i64,
    pub last_event_id: i64,
}

/// Opens `file` read-only and checks that it is an intact Koor database this server can use.
pub fn check(file: &Path) -> Result<Checked, String> {
    let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("{} is not a SQLite database: {e}", file.display()))?;
    if integrity != "ok" {
        return Err(format!(
            "{} failed PRAGMA integrity_check: {integrity}",
            file.display()
        ));
    }
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if version < 1 {
        return Err(format!(
            "{} is not a Koor database (schema version {version})",
            file.display()
        ));
    }
    if version > schema::version() {
        return Err(format!(
            "{} has schema version {version}, newer than this server knows ({}); restore it with a newer koor-server",
            file.display(),
            schema::version()
        ));
    }
    let count = |sql: &str| -> Result<i64, String> {
        conn.query_row(sql, [], |r| r.get(0))
            .map_err(|e| format!("{} is not a Koor database: {e}", file.display()))
    };
    Ok(Checked {
        schema_version: version,
        state_keys: count("SELECT COUNT(*) FROM state")?,
        events: count("SELECT COUNT(*) FROM events")?,
        last_event_id: count("SELECT COALESCE(MAX(id), 0) FROM events")?,
    })
}

/// What [`restore`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    pub database: PathBuf,
    /// Where the database that was there before now is (`None` when there was none).
    pub previous: Option<PathBuf>,
    #[serde(flatten)]
    pub checked: Checked,
}

/// Replaces `data_dir`'s database with the backup `file`. Refuses while a server holds the
/// directory, and when the file fails [`check`]. The database that was there is kept beside it
/// as `data.db.before-restore-<time>` (with its WAL, if any).
pub fn restore(file: &Path, data_dir: &Path) -> Result<Restored, String> {
    if !data_dir.is_dir() {
        return Err(format!(
            "data dir {} is not a directory",
            data_dir.display()
        ));
    }
    let _lock = DirLock::acquire(data_dir).map_err(|e| match e {
        lock::LockError::Held { holder } => format!(
            "a koor-server is using data dir {}{holder}: stop it before restoring",
            data_dir.display()
        ),
        lock::LockError::Io(e) => format!("data dir {} is not writable: {e}", data_dir.display()),
    })?;
    let checked = check(file)?;
    let db = data_dir.join("data.db");
    let staged = data_dir.join("data.db.restoring");
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    std::fs::copy(file, &staged).map_err(|e| io("cannot copy the backup into the data dir", e))?;
    std::fs::File::open(&staged)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("cannot sync the copied backup", e))?;
    // The copy must be the same database: check it again where it now lies.
    if let Err(e) = check(&staged) {
        let _ = std::fs::remove_file(&staged);
        return Err(e);
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let previous = if db.exists() {
        let aside = data_dir.join(format!("data.db.before-restore-{stamp}"));
        std::fs::rename(&db, &aside).map_err(|e| io("cannot move the old database aside", e))?;
        for suffix in ["-wal", "-shm"] {
            let side = data_dir.join(format!("data.db{suffix}"));
            if side.exists() {
                let moved = data_dir.join(format!("data.db.before-restore-{stamp}{suffix}"));
                std::fs::rename(&side, &moved)
                    .map_err(|e| io("cannot move the old database's WAL aside", e))?;
            }
        }
        Some(aside)
    } else {
        None
    };
    std::fs::rename(&staged, &db).map_err(|e| io("cannot put the backup in place", e))?;
    if let Ok(dir) = std::fs::File::open(data_dir) {
        let _ = dir.sync_all();
    }
    Ok(Restored {
        database: db,
        previous,
        checked,
    })
}
