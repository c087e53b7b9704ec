//! The command line: every flag can also come from an environment variable (shown in `--help`).

pub mod output;

use std::io::{BufRead, IsTerminal, Write};
use std::num::NonZeroU32;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::ecs::api::{
    ALL_IMAGE_STATUSES, CancelTaskRequest, DeleteImageRequest, DescribeImagesRequest,
    DescribeRegionsRequest, DescribeTaskAttributeRequest, DescribeTasksRequest, TagFilter,
};
use crate::ecs::credentials::ServiceEndpoints;
use crate::ecs::endpoint::EcsEndpoint;
use crate::ecs::retry::Backoff;
use crate::ecs::{ClientConfig, CredentialProvider, CredentialSource, EcsClient, EcsError};

/// Imports disk images from OSS into Alibaba Cloud ECS, as a Kubernetes operator or from the shell.
#[derive(Debug, Parser)]
#[command(name = "ecs-image-operator", version, about, long_about = None)]
pub struct Cli {
    /// How log lines look.
    #[command(flatten)]
    pub logging: LoggingArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Logging options, shared by every subcommand.
#[derive(Debug, Args)]
pub struct LoggingArgs {
    /// Log line format: `text` for people, `json` for log pipelines.
    #[arg(long, global = true, env = "ECS_IMAGE_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax, e.g. `info` or `ecs_image_operator=debug`.
    #[arg(
        long,
        global = true,
        env = "ECS_IMAGE_OPERATOR_LOG",
        default_value = "info"
    )]
    pub log_level: String,
}

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller: watch ImageImport resources and import their images into ECS.
    Run(crate::run::RunArgs),
    /// Import once, outside Kubernetes, the image an `ImageImport` manifest describes, with a
    /// progress bar (`--emulator` for a dry run against an in-process ECS).
    Import(crate::import::ImportArgs),
    /// Print the `ImageImport` CustomResourceDefinition as YAML (`… crd | kubectl apply -f -`).
    Crd,
    /// Call ECS directly with the operator's client, to check credentials, endpoints, tasks and images.
    #[command(subcommand)]
    Ecs(EcsCommand),
    /// Serve an offline ECS emulator on loopback, for tests, demos and CI.
    Emulator(crate::emulator::EmulatorArgs),
}

/// How to reach ECS and with which credentials; shared by every ECS call.
#[derive(Debug, Args)]
pub struct EcsArgs {
    /// Region to act in, e.g. `cn-hangzhou`.
    #[arg(long, env = "ALIBABA_CLOUD_REGION_ID")]
    pub region: String,
    /// Where ECS, STS and the metadata service are.
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    /// Most ECS requests per second per AccessKey and endpoint (0 for no limit).
    #[arg(long, env = "ECS_IMAGE_OPERATOR_RATE_LIMIT", default_value_t = crate::ecs::client::DEFAULT_RATE_LIMIT)]
    pub rate_limit: u32,
    /// Seconds allowed for one ECS request.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_ECS_TIMEOUT", default_value_t = 30)]
    pub timeout_seconds: u64,
    /// Attempts per ECS call when ECS throttles, fails with 5xx or cannot be reached.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_ECS_MAX_ATTEMPTS", default_value_t = 4)]
    pub max_attempts: u32,
    /// How to print the answer: `table` (the default on a terminal), `json` (the default
    /// otherwise) or `yaml`.
    #[arg(long, short = 'o', env = "ECS_IMAGE_OPERATOR_OUTPUT")]
    pub output: Option<output::OutputFormat>,
}

/// How long one ECS attempt may take and how many attempts a call makes, for `run` and `import`
/// (the same environment variables as `ecs …`'s `--timeout-seconds` and `--max-attempts`;
/// `import` already has a `--timeout-seconds` of its own, for the whole import).
#[derive(Debug, Clone, Args)]
pub struct AttemptArgs {
    /// Seconds allowed for one ECS request attempt, from sending it to the last byte of the answer.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_ECS_TIMEOUT", default_value_t = 30)]
    pub ecs_timeout_seconds: u64,
    /// Attempts per ECS call (the first included) when ECS throttles, fails with 5xx or cannot be
    /// reached; 1 disables retries.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_ECS_MAX_ATTEMPTS", default_value_t = 4)]
    pub ecs_max_attempts: u32,
}

/// How sources are uploaded into OSS (`run` and `import`): a streamed multipart upload whose
/// memory is at most part size × parts in flight per transfer.
#[derive(Debug, Clone, Args)]
pub struct UploadArgs {
    /// Size of one multipart part, in MiB (OSS allows 10,000 parts: 16 MiB parts reach 156 GiB).
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_UPLOAD_PART_SIZE_MIB",
        default_value_t = 16
    )]
    pub upload_part_size_mib: u64,
    /// Parts of one transfer held in memory at once (the one being read included).
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_UPLOAD_PARTS_IN_FLIGHT",
        default_value_t = 4
    )]
    pub upload_parts_in_flight: usize,
    /// Transfers running at once in the process; the others wait their turn.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_MAX_UPLOADS", default_value_t = 4)]
    pub max_uploads: usize,
    /// A bandwidth cap shared by all transfers, in bytes per second (none by default).
    #[arg(long, env = "ECS_IMAGE_OPERATOR_UPLOAD_BYTES_PER_SECOND")]
    pub upload_bytes_per_second: Option<u64>,
    /// The largest source accepted, in GiB.
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_UPLOAD_MAX_SIZE_GIB",
        default_value_t = 1024
    )]
    pub upload_max_size_gib: u64,
    /// Allow sources at private and link-local addresses (RFC 1918, 100.64.0.0/10, fc00::/7);
    /// refused by default, since the instance metadata service lives there.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_ALLOW_PRIVATE_SOURCES")]
    pub allow_private_sources: bool,
    /// Allow sources on loopback (`http://127.0.0.1/…`): for tests and `import -f` on one
    /// machine; refused by default in the cluster.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_ALLOW_LOOPBACK_SOURCES")]
    pub allow_loopback_sources: bool,
    /// An OSS endpoint to reach path-style (the emulator's URL), instead of the region's
    /// `https://oss-{region}.aliyuncs.com`.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_OSS_ENDPOINT")]
    pub oss_endpoint: Option<String>,
}

impl UploadArgs {
    /// The transfers' settings these flags ask for.
    pub fn settings(&self) -> crate::upload::Settings {
        crate::upload::Settings {
            part_size: self.upload_part_size_mib.max(1) << 20,
            parts_in_flight: self.upload_parts_in_flight.max(1),
            max_uploads: self.max_uploads.max(1),
            bytes_per_second: self.upload_bytes_per_second,
            max_size: self.upload_max_size_gib.saturating_mul(1 << 30),
            allow_private_sources: self.allow_private_sources,
            allow_loopback_sources: self.allow_loopback_sources,
            oss_endpoint: self.oss_endpoint.clone(),
            ..crate::upload::Settings::default()
        }
    }
}

impl Default for AttemptArgs {
    fn default() -> Self {
        Self {
            ecs_timeout_seconds: 30,
            ecs_max_attempts: 4,
        }
    }
}

impl AttemptArgs {
    /// `config` with this attempt timeout and attempt count (at least 1 s and 1 attempt).
    pub fn apply(&self, config: ClientConfig) -> ClientConfig {
        ClientConfig {
            request_timeout: Duration::from_secs(self.ecs_timeout_seconds.max(1)),
            max_attempts: self.ecs_max_attempts.max(1),
            ..config
        }
    }
}

/// Endpoint overrides shared by `run`, `import` and `ecs …`.
#[derive(Debug, Clone, Default, Args)]
pub struct EndpointArgs {
    /// Send ECS requests here instead of `https://ecs.<region>.aliyuncs.com` (an emulator, a proxy or a
    /// VPC endpoint); plain http is allowed only to loopback hosts.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_ECS_ENDPOINT")]
    pub ecs_endpoint: Option<String>,
    /// STS endpoint for RRSA (OIDC) credentials instead of `https://sts.aliyuncs.com` (or the
    /// regional one `ALIBABA_CLOUD_STS_REGION` names).
    #[arg(long, env = "ECS_IMAGE_OPERATOR_STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,
    /// Metadata service for ECS instance RAM role credentials instead of `http://100.100.100.200`.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_METADATA_ENDPOINT")]
    pub metadata_endpoint: Option<String>,
}

impl EndpointArgs {
    /// Where ECS requests go.
    pub fn ecs(&self) -> Result<EcsEndpoint, EcsError> {
        match &self.ecs_endpoint {
            Some(url) => EcsEndpoint::override_url(url).map_err(EcsError::Endpoint),
            None => Ok(EcsEndpoint::Regional),
        }
    }

    /// Where credentials come from, for [`CredentialSource::from_environment`].
    pub fn services(&self) -> ServiceEndpoints {
        ServiceEndpoints {
            sts: self.sts_endpoint.clone(),
            metadata: self.metadata_endpoint.clone(),
        }
    }
}

impl EcsArgs {
    /// The client configuration these flags describe.
    pub fn client_config(&self) -> Result<ClientConfig, EcsError> {
        Ok(ClientConfig {
            endpoint: self.endpoints.ecs()?,
            request_timeout: Duration::from_secs(self.timeout_seconds.max(1)),
            max_attempts: self.max_attempts.max(1),
            backoff: Backoff::default(),
            rate_limit: NonZeroU32::new(self.rate_limit),
            ..ClientConfig::default()
        })
    }

    /// The credentials of the environment: AccessKey variables, RRSA, or the instance RAM role.
    /// When none gives any, the error lists every source tried, in order.
    pub fn credentials(&self) -> Result<CredentialProvider, EcsError> {
        self.credentials_after(Vec::new())
    }

    /// As [`EcsArgs::credentials`], after sources the caller tried first: `earlier` entries
    /// (`"<source>: <why not>"`, e.g. `"Secret document: none in FILE"`) come first in the list
    /// of sources tried that an error shows.
    pub fn credentials_after(&self, earlier: Vec<String>) -> Result<CredentialProvider, EcsError> {
        let choice = CredentialSource::choose_from_environment(
            |name| std::env::var(name).ok(),
            &self.endpoints.services(),
            earlier,
        )?;
        Ok(CredentialProvider::chosen(choice)?)
    }
}

/// ECS calls, printed as JSON.
#[derive(Debug, Subcommand)]
pub enum EcsCommand {
    /// List the regions the account can use (a quick check of credentials and endpoint).
    DescribeRegions {
        /// How to reach ECS.
        #[command(flatten)]
        ecs: EcsArgs,
    },
    /// Show up to 100 tasks at once.
    DescribeTasks {
        /// How to reach ECS.
        #[command(flatten)]
        ecs: EcsArgs,
        /// Task IDs (`t-…`); without any, the newest image-import tasks.
        task_ids: Vec<String>,
    },
    /// Show one task in detail, with its progress and error.
    DescribeTask {
        /// How to reach ECS.
        #[command(flatten)]
        ecs: EcsArgs,
        /// Task ID (`t-…`).
        task_id: String,
    },
    /// Show images by ID, or those the operator manages, in every status.
    DescribeImages {
        /// How to reach ECS.
        #[command(flatten)]
        ecs: EcsArgs,
        /// Image IDs (`m-…`); without any, the images tagged by this operator.
        image_ids: Vec<String>,
    },
    /// Cancel a running image-import task.
    CancelTask {
        /// How to reach ECS.
        #[command(flatten)]
        ecs: EcsArgs,
        /// Task ID (`t-…`).
        task_id: String,
    },
    /// Delete an image.
    DeleteImage {
        /// How to reach ECS.
        #[command(flatten)]
        ecs: EcsArgs,
        /// Image ID (`m-…`).
        image_id: String,
        /// Delete even when instances still use the image.
        #[arg(long, env = "ECS_IMAGE_OPERATOR_DELETE_FORCE")]
        force: bool,
        /// Delete without asking (on a terminal the command asks first).
        #[arg(long, short = 'y', env = "ECS_IMAGE_OPERATOR_DELETE_YES")]
        yes: bool,
    },
}

/// The tag key every image this operator creates carries.
pub const UID_TAG_KEY: &str = "ecs-image-operator/uid";

impl EcsCommand {
    /// Runs the call and prints the answer on stdout (`--output`); notes for the person (a
    /// target that does not exist) go to stderr as plain lines, or as log lines with
    /// `--log-format json`, so that stderr stays JSON-only.
    pub async fn run(self, log_format: LogFormat) -> Result<ExitCode, EcsError> {
        let say = |line: &str| match log_format {
            LogFormat::Text => eprintln_plain(line),
            LogFormat::Json => tracing::warn!("{line}"),
        };
        match self {
            Self::DescribeRegions { ecs } => {
                let (client, credentials) = connect(&ecs)?;
                let request = DescribeRegionsRequest {
                    region_id: ecs.region.clone(),
                    ..Default::default()
                };
                print(&ecs, &client.call(&credentials, &request).await?)
            }
            Self::DescribeTasks { ecs, task_ids } => {
                let (client, credentials) = connect(&ecs)?;
                let request = DescribeTasksRequest {
                    region_id: ecs.region.clone(),
                    task_action: task_ids.is_empty().then(|| "ImportImage".to_string()),
                    task_ids,
                    page_size: Some(100),
                    ..Default::default()
                };
                print(&ecs, &client.call(&credentials, &request).await?)
            }
            Self::DescribeTask { ecs, task_id } => {
                let (client, credentials) = connect(&ecs)?;
                let request = DescribeTaskAttributeRequest {
                    region_id: ecs.region.clone(),
                    task_id,
                };
                print(&ecs, &client.call(&credentials, &request).await?)
            }
            Self::DescribeImages { ecs, image_ids } => {
                let (client, credentials) = connect(&ecs)?;
                let tags = if image_ids.is_empty() {
                    vec![TagFilter {
                        key: UID_TAG_KEY.to_string(),
                        value: None,
                    }]
                } else {
                    Vec::new()
                };
                let request = DescribeImagesRequest {
                    region_id: ecs.region.clone(),
                    image_ids,
                    image_owner_alias: Some("self".into()),
                    statuses: ALL_IMAGE_STATUSES.split(',').map(String::from).collect(),
                    tags,
                    page_size: Some(100),
                    ..Default::default()
                };
                print(&ecs, &client.call(&credentials, &request).await?)
            }
            Self::CancelTask { ecs, task_id } => {
                let (client, credentials) = connect(&ecs)?;
                let request = CancelTaskRequest {
                    region_id: ecs.region.clone(),
                    task_id,
                };
                let task = request.task_id.clone();
                let outcome = client.cancel_task(&credentials, &request).await?;
                if outcome == crate::ecs::client::CancelOutcome::NotFound {
                    say(&format!(
                        "task {task} does not exist in {}: nothing was cancelled",
                        ecs.region
                    ));
                }
                print(
                    &ecs,
                    &serde_json::json!({ "outcome": format!("{outcome:?}") }),
                )
            }
            Self::DeleteImage {
                ecs,
                image_id,
                force,
                yes,
            } => {
                if !yes
                    && std::io::stdin().is_terminal()
                    && !confirmed(&image_id, &ecs.region, log_format)
                {
                    say("not deleted");
                    return Ok(ExitCode::FAILURE);
                }
                let (client, credentials) = connect(&ecs)?;
                let request = DeleteImageRequest {
                    region_id: ecs.region.clone(),
                    image_id: image_id.clone(),
                    force,
                };
                let outcome = client.delete_image(&credentials, &request).await?;
                if outcome == crate::ecs::client::DeleteOutcome::NotFound {
                    say(&format!(
                        "image {image_id} does not exist in {}: nothing was deleted",
                        ecs.region
                    ));
                }
                print(
                    &ecs,
                    &serde_json::json!({ "outcome": format!("{outcome:?}") }),
                )
            }
        }
    }
}

fn connect(ecs: &EcsArgs) -> Result<(EcsClient, CredentialProvider), EcsError> {
    Ok((EcsClient::new(ecs.client_config()?)?, ecs.credentials()?))
}

/// Prints an answer in the format `ecs` asks for.
fn print(ecs: &EcsArgs, value: &impl Serialize) -> Result<ExitCode, EcsError> {
    let format = output::OutputFormat::or_default(ecs.output);
    let text = output::render(value, format).map_err(|detail| EcsError::Decode {
        action: "print",
        status: 200,
        detail,
    })?;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    Ok(ExitCode::SUCCESS)
}

/// A line for the person at the terminal, on standard error.
fn eprintln_plain(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Asks on the terminal whether to delete the image; only `y` or `yes` says so. With JSON logs
/// the question is a log event too, so standard error stays JSON only.
fn confirmed(image_id: &str, region: &str, log_format: LogFormat) -> bool {
    let question = format!("delete image {image_id} in {region}? [y/N]");
    match log_format {
        LogFormat::Text => {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "{question} ");
            let _ = err.flush();
        }
        LogFormat::Json => tracing::warn!("{question}"),
    }
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
#[allow(clippy::panic)] // a test fails loudly by design
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    fn flags_without_env(command: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in command
            .get_arguments()
            .filter(|arg| arg.get_long().is_some() && !arg.is_global_set())
        {
            let name = arg.get_id().as_str();
            if arg.get_env().is_none() && !matches!(name, "help" | "version") {
                out.push(format!("{path} --{name}"));
            }
        }
        for sub in command.get_subcommands() {
            flags_without_env(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_flag_has_an_environment_variable() {
        let mut missing = Vec::new();
        flags_without_env(&Cli::command(), "ecs-image-operator", &mut missing);
        assert!(missing.is_empty(), "flags without an env var: {missing:?}");
        let run = Cli::command()
            .find_subcommand("run")
            .map(|run| run.get_arguments().count());
        assert!(run.unwrap_or(0) >= 10, "the run flags are checked too");
    }

    #[test]
    fn namespaces_are_repeated_or_separated_by_commas() {
        let cli = Cli::try_parse_from([
            "ecs-image-operator",
            "run",
            "--namespace",
            "team-a,team-b",
            "--namespace",
            "team-c",
        ]);
        match cli {
            Ok(Cli {
                command: Command::Run(run),
                ..
            }) => assert_eq!(run.namespace, ["team-a", "team-b", "team-c"]),
            other => panic!("unexpected parse: {other:?}"),
        }
    }

    /// The `--help` text of a subcommand.
    fn help_of(path: &[&str]) -> String {
        let mut command = Cli::command();
        let mut current = &mut command;
        for name in path {
            current = current
                .find_subcommand_mut(name)
                .unwrap_or_else(|| panic!("no subcommand {name}"));
        }
        current.render_long_help().to_string()
    }

    #[test]
    fn run_and_import_take_the_attempt_timeout_and_count_with_env_vars() {
        for path in [&["run"][..], &["import"][..]] {
            let help = help_of(path);
            for (flag, env) in [
                ("--ecs-timeout-seconds", "ECS_IMAGE_OPERATOR_ECS_TIMEOUT"),
                ("--ecs-max-attempts", "ECS_IMAGE_OPERATOR_ECS_MAX_ATTEMPTS"),
            ] {
                assert!(help.contains(flag), "{path:?} --help lacks {flag}:\n{help}");
                assert!(
                    help.contains(&format!("env: {env}="))
                        || help.contains(&format!("env: {env}]")),
                    "{path:?} --help does not name {env} for {flag}:\n{help}"
                );
            }
        }
    }

    #[test]
    fn the_attempt_flags_reach_the_client_config() {
        let cli = Cli::try_parse_from([
            "ecs-image-operator",
            "run",
            "--ecs-timeout-seconds",
            "7",
            "--ecs-max-attempts",
            "2",
        ]);
        match cli {
            Ok(Cli {
                command: Command::Run(run),
                ..
            }) => {
                let config = run.attempts.apply(ClientConfig::default());
                assert_eq!(config.request_timeout, Duration::from_secs(7));
                assert_eq!(config.max_attempts, 2);
            }
            other => panic!("unexpected parse: {other:?}"),
        }
        let zero = AttemptArgs {
            ecs_timeout_seconds: 0,
            ecs_max_attempts: 0,
        }
        .apply(ClientConfig::default());
        assert_eq!(zero.request_timeout, Duration::from_secs(1));
        assert_eq!(zero.max_attempts, 1);
    }

    #[test]
    fn an_http_endpoint_off_this_machine_is_refused() {
        let cli = Cli::try_parse_from([
            "ecs-image-operator",
            "ecs",
            "describe-regions",
            "--region",
            "cn-hangzhou",
            "--ecs-endpoint",
            "http://ecs.example.com",
        ]);
        match cli {
            Ok(Cli {
                command: Command::Ecs(EcsCommand::DescribeRegions { ecs }),
                ..
            }) => {
                assert!(matches!(ecs.client_config(), Err(EcsError::Endpoint(_))));
            }
            other => panic!("unexpected parse: {other:?}"),
        }
    }
}
