//! The `streamhub` binary: parses the command line and runs `serve` or `token`.

use clap::Parser;
use mimalloc::MiMalloc;
use streamhub_server::config::{Cli, Command};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> anyhow::Result<()> {
    match Cli::parse().into_command() {
        Command::Serve(config) => streamhub_server::serve::run(*config),
        Command::Token(args) => streamhub_server::token::run(&args),
    }
}
