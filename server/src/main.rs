//! The `streamhub` binary: parses the command line and runs `serve`, `token`,
//! `migrate` or `seed`.

use std::io::Write as _;

use anyhow::Context as _;
use clap::Parser;
use mimalloc::MiMalloc;
use streamhub_server::config::{Cli, Command, MigrateArgs, SeedArgs};
use streamhub_server::store::pg;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> anyhow::Result<()> {
    match Cli::parse().into_command() {
        Command::Serve(config) => streamhub_server::serve::run(*config),
        Command::Token(args) => streamhub_server::token::run(&args),
        Command::Migrate(args) => migrate(&args),
        Command::Seed(args) => seed(&args),
    }
}

/// A current-thread runtime for a command that talks to PostgreSQL and exits.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// `streamhub migrate`: applies the schema on a runtime of its own and prints one line
/// saying what it applied.
fn migrate(args: &MigrateArgs) -> anyhow::Result<()> {
    let report = runtime()?.block_on(async {
        let mut client = pg::connect(&args.database_url).await?;
        pg::migrate::migrate(&mut client).await
    })?;
    writeln!(std::io::stdout(), "{report}").context("writing the report")
}

/// `streamhub seed`: migrates the schema and loads the demo data (unless it is there)
/// on a runtime of its own, and prints one line saying what it did.
fn seed(args: &SeedArgs) -> anyhow::Result<()> {
    let report = runtime()?.block_on(async {
        let mut client = pg::connect(&args.database_url).await?;
        anyhow::Ok(pg::seed::seed(&mut client, args.demo_data).await?)
    })?;
    writeln!(std::io::stdout(), "{report}").context("writing the report")
}
