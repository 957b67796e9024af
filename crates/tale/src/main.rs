//! Entry point: parse the command line, run the command, turn errors into one line and exit 1.

use clap::Parser;
use std::time::Duration;
use tale::cli::{Cli, Command};
use tale::{admin, doctor, logging, server, settings};

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async {
        let result = match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Admin { command } => admin::run(command).await,
            Command::Doctor(args) => return doctor::run(&args).await,
            Command::Secrets { command } => tale::secrets_cmd::run(command),
            Command::Knowledge { command } => return tale::knowledge_cmd::run(command).await,
        };
        match result {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e:#}");
                1
            }
        }
    });
    std::process::exit(code);
}

async fn serve(args: tale::cli::ServeArgs) -> anyhow::Result<()> {
    let config = settings::load(&args.common, Some(&args), &settings::process_env)?;
    logging::init(&config);
    let running = server::start(config).await?;
    server::shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop(Duration::from_secs(10)).await
}
