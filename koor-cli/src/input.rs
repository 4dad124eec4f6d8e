//! The value a write sends: `--data`, `--file PATH` (`-` for stdin), or piped stdin.

use std::io::{self, IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::exit::usage;

/// Where a value comes from. With neither flag the value is read from stdin, which must not be a
/// terminal (the CLI never waits for typing).
#[derive(Debug, Clone, Args)]
pub struct ValueArgs {
    /// The value inline, e.g. '{"endpoint":"/users"}'.
    #[arg(long, short = 'd', value_name = "VALUE", conflicts_with = "file")]
    pub data: Option<String>,

    /// Read the value from a file ('-' reads stdin); sent byte for byte.
    #[arg(long, short = 'f', value_name = "PATH")]
    pub file: Option<PathBuf>,
}

impl ValueArgs {
    /// The bytes to send.
    pub fn read(&self) -> Result<Vec<u8>> {
        if let Some(data) = &self.data {
            return Ok(data.clone().into_bytes());
        }
        match &self.file {
            Some(path) if path.as_os_str() == "-" => read_stdin(),
            Some(path) => {
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
            }
            None if io::stdin().is_terminal() => Err(usage(
                "no value given: pass --data VALUE or --file PATH, or pipe the value on stdin",
            )),
            None => read_stdin(),
        }
    }

    /// The value parsed as one JSON document (for event data); empty input is a usage error.
    pub fn read_json(&self) -> Result<serde_json::Value> {
        let what = self.source();
        self.read_json_if_any()?
            .ok_or_else(|| usage(format!("{what} is empty: expected a JSON document")))
    }

    /// The value parsed as one JSON document, or `None` when the input is empty (whitespace
    /// only), so the caller can say what was expected instead of a parser's "EOF".
    pub fn read_json_if_any(&self) -> Result<Option<serde_json::Value>> {
        let bytes = self.read()?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| usage(format!("{} is not valid JSON: {e}", self.source())))
    }

    /// Where the value comes from, as messages name it.
    fn source(&self) -> String {
        match (&self.data, &self.file) {
            (Some(_), _) => "--data".to_owned(),
            (None, Some(path)) if path.as_os_str() != "-" => path.display().to_string(),
            _ => "stdin".to_owned(),
        }
    }
}

fn read_stdin() -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io::stdin()
        .lock()
        .read_to_end(&mut bytes)
        .context("cannot read stdin")?;
    Ok(bytes)
}
