//! `status` and `metrics`.

use std::process::ExitCode;

use anyhow::Result;

use super::done;
use crate::Ctx;

/// `GET /health`.
pub async fn status(ctx: &Ctx) -> Result<ExitCode> {
    let health = ctx.client()?.health().await?;
    ctx.out.json(&health)?;
    done()
}

/// `GET /api/metrics`.
pub async fn metrics(ctx: &Ctx) -> Result<ExitCode> {
    let metrics = ctx.client()?.metrics().await?;
    ctx.out.json(&metrics)?;
    done()
}
