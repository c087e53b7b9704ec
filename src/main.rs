//! The `ecs-image-operator` binary: parses the command line and runs the chosen subcommand.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use ecs_image_operator::cli::{Cli, Command, LogFormat, LoggingArgs};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    ecs_image_operator::ecs::ensure_tls_provider();
    let cli = Cli::parse();
    init_logging(&cli.logging);
    let json_log = cli.logging.log_format == LogFormat::Json;
    let result: Result<ExitCode, Box<dyn std::error::Error>> = match cli.command {
        Command::Run(args) => args
            .run()
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::Crd => print_crd(),
        Command::Ecs(command) => command.run().await.map_err(Into::into),
        Command::Emulator(args) => args.run().await.map_err(Into::into),
        Command::Import(args) => args.run(json_log).await.map_err(Into::into),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{}", ecs_image_operator::explain::explain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn print_crd() -> Result<ExitCode, Box<dyn std::error::Error>> {
    print!("{}", ecs_image_operator::api::crd_yaml()?);
    Ok(ExitCode::SUCCESS)
}

fn init_logging(args: &LoggingArgs) {
    let filter = EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    // The OSS client logs request headers, the security token among them, at `trace`: whatever
    // the level asked for, it says nothing.
    let filter = match "ossify=off".parse() {
        Ok(quiet) => filter.add_directive(quiet),
        Err(_) => filter,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(ecs_image_operator::import::LogWriter);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
