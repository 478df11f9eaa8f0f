//! The `streamhub` binary: parses the command line and runs `serve`, `token` or
//! `migrate`.

use std::io::Write as _;

use anyhow::Context as _;
use clap::Parser;
use mimalloc::MiMalloc;
use streamhub_server::config::{Cli, Command, MigrateArgs};
use streamhub_server::store::pg;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> anyhow::Result<()> {
    match Cli::parse().into_command() {
        Command::Serve(config) => streamhub_server::serve::run(*config),
        Command::Token(args) => streamhub_server::token::run(&args),
        Command::Migrate(args) => migrate(&args),
    }
}

/// `streamhub migrate`: applies the schema on a runtime of its own and prints one line
/// saying what it applied.
fn migrate(args: &MigrateArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let report = runtime.block_on(async {
        let mut client = pg::connect(&args.database_url).await?;
        pg::migrate::migrate(&mut client).await
    })?;
    writeln!(std::io::stdout(), "{report}").context("writing the report")
}
