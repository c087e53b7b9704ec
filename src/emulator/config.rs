//! Configuration: the `emulator` subcommand's flags (each with an `ECS_IMAGE_OPERATOR_EMULATOR_…`
//! environment variable), the world file, and [`EmulatorConfig`], which tests build directly.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use jiff::SignedDuration;
use serde::Deserialize;

use super::auth::AccessKey;
use super::faults::{FaultSettings, FaultSpec};
use super::world::{
    AccountSettings, BucketDef, DEFAULT_IMAGE_QUOTA, DEFAULT_SNAPSHOT_QUOTA, ImportTiming,
    OssObject, RegionDef, default_copy_timing, default_regions,
};
use super::{Emulator, EmulatorError};

/// Everything an emulator starts with.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Allow a non-loopback `listen` address.
    pub allow_remote: bool,
    /// Accepted AccessKeys.
    pub keys: Vec<AccessKey>,
    /// OSS objects present at start.
    pub objects: Vec<OssObject>,
    /// OSS buckets present at start, empty or not (a bucket is also implied by its objects).
    pub buckets: Vec<BucketDef>,
    /// Regions.
    pub regions: Vec<RegionDef>,
    /// Resource groups besides `rg-default`.
    pub resource_groups: Vec<String>,
    /// Accounts with their own settings.
    pub accounts: BTreeMap<String, AccountSettings>,
    /// Settings of every other account.
    pub default_account: AccountSettings,
    /// Emulated seconds per real second.
    pub time_scale: f64,
    /// How long imports take.
    pub timing: ImportTiming,
    /// How long copies take (`per_gib` counts the source's disk sizes).
    pub copy_timing: ImportTiming,
    /// Faults at start.
    pub faults: FaultSettings,
    /// Share of imports that fail with `ImportImageFailed`.
    pub import_failure_rate: f64,
    /// Seed of every random choice (faults, failures, request IDs).
    pub seed: u64,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            allow_remote: false,
            keys: Vec::new(),
            objects: Vec::new(),
            buckets: Vec::new(),
            regions: default_regions(),
            resource_groups: Vec::new(),
            accounts: BTreeMap::new(),
            default_account: AccountSettings::default(),
            time_scale: 1.0,
            timing: ImportTiming::default(),
            copy_timing: default_copy_timing(),
            faults: FaultSettings::default(),
            import_failure_rate: 0.0,
            seed: 0,
        }
    }
}

/// The world file (`--objects`): objects, and optionally accounts, resource groups and regions.
///
/// ```yaml
/// objects:
///   - bucket: my-images
///     key: ubuntu-22.04.qcow2
///     region: cn-hangzhou
///     size: 2147483648        # bytes
///     virtual_size_gib: 20
///     format: QCOW2
/// accounts:
///   no-role: { import_role: false }
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldFile {
    /// OSS objects.
    #[serde(default)]
    pub objects: Vec<OssObject>,
    /// OSS buckets (name, region, optionally the one account that may use them).
    #[serde(default)]
    pub buckets: Vec<BucketDef>,
    /// Accounts with their own settings.
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountSettings>,
    /// Resource groups besides `rg-default`.
    #[serde(default)]
    pub resource_groups: Vec<String>,
    /// Replaces the default region table when given.
    #[serde(default)]
    pub regions: Option<Vec<RegionDef>>,
}

impl WorldFile {
    /// Parses the YAML text of a world file.
    pub fn parse(text: &str, path: &str) -> Result<Self, EmulatorError> {
        serde_saphyr::from_str(text).map_err(|source| EmulatorError::ParseWorld {
            path: path.to_string(),
            source: Box::new(source),
        })
    }

    /// Reads and parses a world file.
    pub fn read(path: &Path) -> Result<Self, EmulatorError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| EmulatorError::ReadFile {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Adds this file's contents to a configuration.
    pub fn apply(self, config: &mut EmulatorConfig) {
        config.objects.extend(self.objects);
        config.buckets.extend(self.buckets);
        config.accounts.extend(self.accounts);
        config.resource_groups.extend(self.resource_groups);
        if let Some(regions) = self.regions {
            config.regions = regions;
        }
    }
}

/// Flags of `ecs-image-operator emulator`.
#[derive(Debug, Clone, Args)]
pub struct EmulatorArgs {
    /// Address to listen on; port 0 picks a free port (the bound URL is printed on stdout).
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_EMULATOR_LISTEN",
        default_value = "127.0.0.1:0"
    )]
    pub listen: SocketAddr,
    /// Allow listening on a non-loopback address (anyone who can reach it and knows a test key
    /// can use it).
    #[arg(long, env = "ECS_IMAGE_OPERATOR_EMULATOR_ALLOW_REMOTE")]
    pub allow_remote: bool,
    /// An accepted AccessKey as `ID:SECRET` or `ID:SECRET:ACCOUNT`; repeatable (comma-separated
    /// in the environment variable).
    #[arg(
        long = "access-key",
        env = "ECS_IMAGE_OPERATOR_EMULATOR_ACCESS_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub access_keys: Vec<String>,
    /// A file of AccessKeys, one per line: `ID:SECRET[:ACCOUNT]`, or `sts ID:SECRET:TOKEN[:ACCOUNT]`
    /// for temporary keys; `#` starts a comment.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_EMULATOR_ACCESS_KEYS_FILE")]
    pub access_keys_file: Option<PathBuf>,
    /// A temporary (STS) key as `ID:SECRET:TOKEN` or `ID:SECRET:TOKEN:ACCOUNT`; requests with it
    /// must carry the token; repeatable.
    #[arg(
        long = "sts-key",
        env = "ECS_IMAGE_OPERATOR_EMULATOR_STS_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub sts_keys: Vec<String>,
    /// Seconds after start when the tokens of `--sts-key` keys expire
    /// (`InvalidSecurityToken.Expired` from then on); they never expire when not given.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_EMULATOR_STS_KEY_LIFETIME")]
    pub sts_key_lifetime: Option<u64>,
    /// YAML world file: `objects:` (bucket, key, region, size in bytes, virtual_size_gib, format),
    /// optionally `accounts:`, `resource_groups:`, `regions:`.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_EMULATOR_OBJECTS")]
    pub objects: Option<PathBuf>,
    /// Emulated seconds per real second: 600 makes a 10-minute import take 1 s.
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_EMULATOR_TIME_SCALE",
        default_value_t = 1.0
    )]
    pub time_scale: f64,
    /// Fixed part of every import's duration, in emulated seconds.
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_EMULATOR_IMPORT_BASE_SECONDS",
        default_value_t = 60
    )]
    pub import_base_seconds: u64,
    /// Emulated seconds added per GiB of image file.
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_EMULATOR_IMPORT_SECONDS_PER_GIB",
        default_value_t = 30
    )]
    pub import_seconds_per_gib: u64,
    /// Fixed part of every copy's duration (`CopyImage`), in emulated seconds.
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_EMULATOR_COPY_BASE_SECONDS",
        default_value_t = 60
    )]
    pub copy_base_seconds: u64,
    /// Emulated seconds a copy takes per GiB of the source's disks.
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_EMULATOR_COPY_SECONDS_PER_GIB",
        default_value_t = 10
    )]
    pub copy_seconds_per_gib: u64,
    /// Seed for every random choice, so a run can be repeated.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_EMULATOR_SEED", default_value_t = 0)]
    pub seed: u64,
    /// Share of requests answered `Throttling.User` (0.0–1.0).
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_EMULATOR_THROTTLE_RATE",
        default_value_t = 0.0
    )]
    pub throttle_rate: f64,
    /// Share of requests answered 500 `InternalError` or 503 `ServiceUnavailable`.
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_EMULATOR_ERROR_RATE",
        default_value_t = 0.0
    )]
    pub error_rate: f64,
    /// Share of requests whose connection is closed without an answer.
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_EMULATOR_DROP_RATE",
        default_value_t = 0.0
    )]
    pub drop_rate: f64,
    /// Milliseconds added to every answer.
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_EMULATOR_LATENCY_MS",
        default_value_t = 0
    )]
    pub latency_ms: u64,
    /// Apply the faults above only to these actions (comma-separated); all actions when empty.
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_EMULATOR_FAULT_ACTIONS",
        value_delimiter = ','
    )]
    pub fault_actions: Vec<String>,
    /// Share of imports that fail part-way with `ImportImageFailed`.
    #[arg(
        long,
        env = "ECS_IMAGE_OPERATOR_EMULATOR_IMPORT_FAILURE_RATE",
        default_value_t = 0.0
    )]
    pub import_failure_rate: f64,
    /// Custom images each account may hold.
    #[arg(long, env = "ECS_IMAGE_OPERATOR_EMULATOR_IMAGE_QUOTA", default_value_t = DEFAULT_IMAGE_QUOTA)]
    pub image_quota: u32,
    /// Snapshots each account may hold (one per imported disk).
    #[arg(long, env = "ECS_IMAGE_OPERATOR_EMULATOR_SNAPSHOT_QUOTA", default_value_t = DEFAULT_SNAPSHOT_QUOTA)]
    pub snapshot_quota: u32,
    /// Start accounts without the RAM role `AliyunECSImageImportDefaultRole`
    /// (imports fail with `NoSetRoletoECSServiceAcount` until it is set over the admin API).
    #[arg(long, env = "ECS_IMAGE_OPERATOR_EMULATOR_NO_IMPORT_ROLE")]
    pub no_import_role: bool,
}

fn timing(base_seconds: u64, seconds_per_gib: u64) -> ImportTiming {
    let seconds = |n: u64| SignedDuration::from_secs(i64::try_from(n).unwrap_or(0));
    ImportTiming {
        base: seconds(base_seconds),
        per_gib: seconds(seconds_per_gib),
    }
}

fn check_rate(name: &str, rate: f64) -> Result<f64, EmulatorError> {
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(EmulatorError::Config(format!(
            "--{name} must be between 0 and 1"
        )))
    }
}

impl EmulatorArgs {
    /// The configuration these flags describe (reading the files they name).
    pub fn config(&self) -> Result<EmulatorConfig, EmulatorError> {
        let Self {
            listen,
            allow_remote,
            access_keys,
            access_keys_file,
            sts_keys,
            sts_key_lifetime,
            objects,
            time_scale,
            import_base_seconds,
            import_seconds_per_gib,
            copy_base_seconds,
            copy_seconds_per_gib,
            seed,
            throttle_rate,
            error_rate,
            drop_rate,
            latency_ms,
            fault_actions,
            import_failure_rate,
            image_quota,
            snapshot_quota,
            no_import_role,
        } = self;
        let mut keys = Vec::new();
        for spec in access_keys {
            keys.push(
                AccessKey::parse_permanent(spec)
                    .map_err(|why| EmulatorError::Config(format!("--access-key: {why}")))?,
            );
        }
        let sts_expiry = sts_key_lifetime.map(|seconds| {
            let lifetime = SignedDuration::from_secs(i64::try_from(seconds).unwrap_or(i64::MAX));
            jiff::Timestamp::now()
                .checked_add(lifetime)
                .unwrap_or(jiff::Timestamp::MAX)
        });
        for spec in sts_keys {
            let key = AccessKey::parse_temporary(spec)
                .map_err(|why| EmulatorError::Config(format!("--sts-key: {why}")))?;
            keys.push(match sts_expiry {
                Some(at) => key.expiring_at(at),
                None => key,
            });
        }
        if let Some(path) = access_keys_file {
            keys.extend(read_keys_file(path)?);
        }
        if keys.is_empty() {
            return Err(EmulatorError::Config(
                "no AccessKey configured: pass --access-key ID:SECRET (or --sts-key, \
                 --access-keys-file)"
                    .into(),
            ));
        }
        if !(time_scale.is_finite() && *time_scale > 0.0) {
            return Err(EmulatorError::Config(
                "--time-scale must be a positive number".into(),
            ));
        }
        let spec = FaultSpec {
            throttle_rate: check_rate("throttle-rate", *throttle_rate)?,
            error_rate: check_rate("error-rate", *error_rate)?,
            drop_rate: check_rate("drop-rate", *drop_rate)?,
            latency_ms: *latency_ms,
            latency_rate: None,
            answer_code: None,
            // The hostile answers are set over the admin API (`PUT /_emulator/faults`).
            ..FaultSpec::default()
        };
        let faults = if fault_actions.is_empty() {
            FaultSettings {
                default: spec,
                ..Default::default()
            }
        } else {
            FaultSettings {
                actions: fault_actions
                    .iter()
                    .map(|action| (action.trim().to_string(), spec.clone()))
                    .collect(),
                ..Default::default()
            }
        };
        let mut config = EmulatorConfig {
            listen: *listen,
            allow_remote: *allow_remote,
            keys,
            time_scale: *time_scale,
            timing: timing(*import_base_seconds, *import_seconds_per_gib),
            copy_timing: timing(*copy_base_seconds, *copy_seconds_per_gib),
            faults,
            import_failure_rate: check_rate("import-failure-rate", *import_failure_rate)?,
            seed: *seed,
            default_account: AccountSettings {
                import_role: !no_import_role,
                image_quota: *image_quota,
                snapshot_quota: *snapshot_quota,
                ..AccountSettings::default()
            },
            ..EmulatorConfig::default()
        };
        if let Some(path) = objects {
            WorldFile::read(path)?.apply(&mut config);
        }
        Ok(config)
    }

    /// Runs the emulator until Ctrl-C.
    pub async fn run(self) -> Result<ExitCode, EmulatorError> {
        let config = self.config()?;
        let objects = config.objects.len();
        let handle = Emulator::start(config).await?;
        // The URL on stdout is the interface for scripts (`read URL < <(… emulator)`).
        println!("{}", handle.url());
        tracing::info!(
            url = %handle.url(),
            admin = %handle.admin_url(),
            objects,
            "ECS emulator listening"
        );
        tokio::signal::ctrl_c()
            .await
            .map_err(EmulatorError::Signal)?;
        tracing::info!("shutting down");
        handle.shutdown().await;
        Ok(ExitCode::SUCCESS)
    }
}

fn read_keys_file(path: &Path) -> Result<Vec<AccessKey>, EmulatorError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| EmulatorError::ReadFile {
        path: shown.clone(),
        source,
    })?;
    let mut keys = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let parsed = match line.strip_prefix("sts ") {
            Some(rest) => AccessKey::parse_temporary(rest),
            None => AccessKey::parse_permanent(line),
        };
        // The line itself holds a secret, so only its number is reported.
        keys.push(
            parsed.map_err(|why| {
                EmulatorError::Config(format!("{shown} line {}: {why}", number + 1))
            })?,
        );
    }
    Ok(keys)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly by design
mod tests {
    use super::*;

    #[test]
    fn a_world_file_parses() {
        let file = WorldFile::parse(
            "objects:\n  - bucket: my-images\n    key: a/b c.qcow2\n    region: cn-hangzhou\n    \
             size: 1024\n    virtual_size_gib: 20\n    format: QCOW2\naccounts:\n  no-role:\n    \
             import_role: false\n",
            "inline",
        )
        .unwrap();
        assert_eq!(file.objects[0].key, "a/b c.qcow2");
        assert_eq!(file.objects[0].virtual_gib(), 20);
        assert!(!file.accounts["no-role"].import_role);
        assert!(WorldFile::parse("objects: [{bucket: b}]", "inline").is_err());
    }

    #[test]
    fn a_keys_file_reads_permanent_and_temporary_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(
            &path,
            "# test keys\nAK1:secret1\nsts STS.1:secret2:CAIStoken:team\n",
        )
        .unwrap();
        let keys = read_keys_file(&path).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1].account, "team");
        std::fs::write(&path, "broken\n").unwrap();
        let error = read_keys_file(&path).unwrap_err().to_string();
        assert!(
            error.contains("line 1") && !error.contains("broken"),
            "{error}"
        );
    }
}
