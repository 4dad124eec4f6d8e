//! One server per data directory: exclusive locks held for the server's lifetime and released by
//! the OS when the process ends, however it ends.
//!
//! The lock that counts is on the data directory itself (on Unix): a directory holding `data.db`
//! cannot be deleted from under a running server, whereas a lock file can, after which a second
//! server would lock a new file and run beside the first. `<data-dir>/koor.lock` is still locked
//! too (servers before this one look only at it) and names the holder's pid for the message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Seek, Write};
use std::path::Path;

#[derive(Debug)]
pub enum LockError {
    /// Another process holds the lock; `holder` describes it (" (pid 123)") when known.
    Held {
        holder: String,
    },
    Io(io::Error),
}

/// The held lock. Dropping it releases the lock.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    _dir: Option<File>,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock, LockError> {
        let path = dir.join("koor.lock");
        let held = || {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            let pid = pid.trim();
            let holder = if pid.is_empty() {
                String::new()
            } else {
                format!(" (pid {pid})")
            };
            LockError::Held { holder }
        };
        let dir_lock = lock_dir(dir).map_err(|e| match e {
            TryLockError::WouldBlock => held(),
            TryLockError::Error(e) => LockError::Io(e),
        })?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(LockError::Io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(held()),
            Err(TryLockError::Error(e)) => return Err(LockError::Io(e)),
        }
        file.set_len(0).map_err(LockError::Io)?;
        file.rewind().map_err(LockError::Io)?;
        write!(file, "{}", std::process::id()).map_err(LockError::Io)?;
        file.flush().map_err(LockError::Io)?;
        Ok(DirLock {
            _file: file,
            _dir: dir_lock,
        })
    }
}

/// Locks the directory itself (Unix: `flock` on a descriptor of the directory).
#[cfg(unix)]
fn lock_dir(dir: &Path) -> Result<Option<File>, TryLockError> {
    let handle = File::open(dir).map_err(TryLockError::Error)?;
    handle.try_lock()?;
    Ok(Some(handle))
}

/// Elsewhere a directory cannot be opened as a file: the lock file alone guards it.
#[cfg(not(unix))]
fn lock_dir(_dir: &Path) -> Result<Option<File>, TryLockError> {
    Ok(None)
}
