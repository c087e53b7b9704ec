//! The `ecs-image-operator` binary: parses the command line and runs the chosen subcommand.

use std::process::ExitCode;

use clap::Parser;
use ecs_image_operator::cli::{Cli, Command, LogFormat, LoggingArgs};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    ecs_image_operator::ecs::ensure_tls_provider();
    let cli = Cli::parse();
    init_logging(&cli.logging);
    let result: Result<ExitCode, Box<dyn std::error::Error>> = match cli.command {
        Command::Run(args) => args
            .run()
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::Crd => print_crd(),
        Command::Ecs(command) => command.run().await.map_err(Into::into),
        Command::Emulator(args) => args.run().await.map_err(Into::into),
        Command::Import(args) => args.run().await.map_err(Into::into),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{}", error_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// The error and every cause: the whole explanation a user gets.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

fn print_crd() -> Result<ExitCode, Box<dyn std::error::Error>> {
    print!("{}", ecs_image_operator::api::crd_yaml()?);
    Ok(ExitCode::SUCCESS)
}

fn init_logging(args: &LoggingArgs) {
    let filter = EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
