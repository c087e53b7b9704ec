//! The `ecs-image-operator` binary: parses the command line and runs the chosen subcommand.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use ecs_image_operator::cli::{Cli, Command, LogFormat, LoggingArgs};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    ecs_image_operator::ecs::ensure_tls_provider();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `--log-format json` keeps stderr JSON-only, a command line that does not parse included.
        Err(error) if error.use_stderr() && json_asked() => {
            init_logging(&LoggingArgs {
                log_format: LogFormat::Json,
                log_level: "info".into(),
            });
            tracing::error!("{}", error.render().to_string().trim_end());
            return ExitCode::from(2);
        }
        Err(error) => error.exit(),
    };
    init_logging(&cli.logging);
    let log_format = cli.logging.log_format;
    let result: Result<ExitCode, Box<dyn std::error::Error>> = match cli.command {
        Command::Run(args) => args
            .run()
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::Crd => print_crd(),
        Command::Ecs(command) => command.run(log_format).await.map_err(Into::into),
        Command::Emulator(args) => args.run().await.map_err(Into::into),
        Command::Import(args) => args.run(log_format).await.map_err(Into::into),
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

/// Whether the command line or the environment asks for JSON logs, read without clap (for a
/// command line clap refused).
fn json_asked() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let on_command_line = args.iter().enumerate().find_map(|(at, arg)| {
        if let Some(value) = arg.strip_prefix("--log-format=") {
            return Some(value == "json");
        }
        (arg == "--log-format").then(|| args.get(at + 1).is_some_and(|value| value == "json"))
    });
    on_command_line.unwrap_or_else(|| {
        std::env::var("ECS_IMAGE_OPERATOR_LOG_FORMAT").is_ok_and(|value| value == "json")
    })
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
        LogFormat::Json => {
            builder.json().flatten_event(true).init();
            // A panic, too, is a JSON line rather than the default hook's text.
            std::panic::set_hook(Box::new(|info| tracing::error!("{info}")));
        }
    }
}
