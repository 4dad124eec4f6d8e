//! One server per data directory: an exclusive lock on `<data-dir>/koor.lock`, held for the
//! server's lifetime and released by the OS when the process ends, however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
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
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock, LockError> {
        let path = dir.join("koor.lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(LockError::Io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                let holder = if pid.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {pid})")
                };
                return Err(LockError::Held { holder });
            }
            Err(TryLockError::Error(e)) => return Err(LockError::Io(e)),
        }
        file.set_len(0).map_err(LockError::Io)?;
        file.rewind().map_err(LockError::Io)?;
        write!(file, "{}", std::process::id()).map_err(LockError::Io)?;
        file.flush().map_err(LockError::Io)?;
        Ok(DirLock { _file: file })
    }
}
