//! `specs ...`: per-project specs, addressed as PROJECT/NAME.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::done;
use super::state::Conditions;
use crate::Ctx;
use crate::exit::usage;
use crate::input::ValueArgs;

#[derive(Debug, Subcommand)]
pub enum SpecsCmd {
    /// List a project's specs with their versions.
    #[command(after_help = "Example:\n  koor-cli specs list shop")]
    List {
        /// The project.
        project: String,
    },

    /// Print a spec's stored data, byte for byte (--pretty indents it).
    #[command(after_help = "Example:\n  koor-cli specs get shop/orders --pretty")]
    Get {
        /// PROJECT/NAME (the name may contain '/').
        spec: String,
    },

    /// Store a spec (from --data, --file or stdin) as its next version.
    #[command(
        after_help = "Example:\n  koor-cli specs set shop/orders --data '{\"openapi\":\"3.1.0\"}'\n  koor-cli specs set shop/modal --file ./modal.json --if-version 2"
    )]
    Set {
        /// PROJECT/NAME (the name may contain '/').
        spec: String,
        #[command(flatten)]
        value: ValueArgs,
        #[command(flatten)]
        cond: Conditions,
        /// Only create: fail with exit 6 when the spec already exists.
        #[arg(long, conflicts_with_all = ["if_match", "if_version"])]
        create_only: bool,
    },

    /// Delete a spec.
    #[command(after_help = "Example:\n  koor-cli specs delete shop/orders")]
    Delete {
        /// PROJECT/NAME (the name may contain '/').
        spec: String,
        #[command(flatten)]
        cond: Conditions,
    },
}

/// Splits `PROJECT/NAME` at its first slash.
fn split(spec: &str) -> Result<(&str, &str)> {
    match spec.split_once('/') {
        Some((project, name)) if !project.is_empty() && !name.is_empty() => Ok((project, name)),
        _ => Err(usage(format!(
            "expected PROJECT/NAME, got {spec:?} (e.g. shop/orders)"
        ))),
    }
}

impl SpecsCmd {
    pub async fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        match self {
            SpecsCmd::List { project } => {
                let list = ctx.client()?.specs_list(&project).await?;
                ctx.out.json(&list)?;
            }
            SpecsCmd::Get { spec } => {
                let (project, name) = split(&spec)?;
                let value = ctx.client()?.spec_get(project, name).await?;
                ctx.out.raw(&value.bytes)?;
            }
            SpecsCmd::Set {
                spec,
                value,
                cond,
                create_only,
            } => {
                let (project, name) = split(&spec)?;
                let bytes = value.read()?;
                let written = ctx
                    .client()?
                    .spec_set_if(project, name, bytes, &cond.to_condition(create_only))
                    .await?;
                ctx.out.json(&written)?;
            }
            SpecsCmd::Delete { spec, cond } => {
                let (project, name) = split(&spec)?;
                let deleted = ctx
                    .client()?
                    .spec_delete_if(project, name, &cond.to_condition(false))
                    .await?;
                ctx.out.json(&deleted)?;
            }
        }
        done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_first_slash() {
        assert_eq!(split("shop/orders").expect("ok"), ("shop", "orders"));
        assert_eq!(split("shop/api/v1").expect("ok"), ("shop", "api/v1"));
        assert!(split("shop").is_err());
        assert!(split("/orders").is_err());
        assert!(split("shop/").is_err());
    }
}
