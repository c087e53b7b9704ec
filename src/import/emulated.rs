//! `import -f --emulator`: one in-process emulator for every import of the file, whose world
//! holds the OSS objects, buckets and resource groups the specs name and the accounts they share
//! with, and which knows the AccessKeys of the file's Secret documents (so they are really used).

use crate::api::image_import::ImageImport;
use crate::ecs::Credentials;
use crate::ecs::client::random_hex;
use crate::emulator::world::{AccountPatch, OssObject};
use crate::emulator::{AccessKey, BucketDef, Emulator, EmulatorConfig, EmulatorHandle};

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
#[error("failed to start the emulator: {0}")]
pub struct EmulatorError(String);

/// Starts the emulator for `imports`, knowing `keys` besides a key of its own, which it returns
/// for the imports that bring none.
pub async fn start(
    imports: &[&ImageImport],
    keys: &[Credentials],
    time_scale: f64,
) -> Result<(EmulatorHandle, Credentials), EmulatorError> {
    let own = Credentials::new(format!("LTAI{}", random_hex(20)), random_hex(30));
    let mut known: Vec<AccessKey> = Vec::new();
    for key in std::iter::once(&own).chain(keys) {
        if known.iter().all(|k| k.access_key_id != key.access_key_id()) {
            let mut access_key = AccessKey::new(key.access_key_id(), key.access_key_secret());
            if let Some(token) = key.security_token() {
                access_key = access_key.with_security_token(token);
            }
            known.push(access_key);
        }
    }
    let mut objects = Vec::new();
    for object in imports {
        // A mapping with a source gets its object from the upload.
        for disk in object
            .spec
            .disk_device_mappings
            .iter()
            .filter(|d| d.source.is_none())
        {
            let emulated = serde_json::from_value::<OssObject>(serde_json::json!({
                "bucket": disk.oss_bucket,
                "key": disk.oss_object,
                "region": object.spec.region_id,
                // A 2 GiB file: a 2-minute import for the emulated clock.
                "size": 2u64 << 30,
                "virtual_size_gib": disk.disk_image_size.unwrap_or(20),
                "format": disk.format.map_or("RAW", |f| f.as_str()),
            }))
            .map_err(|error| EmulatorError(error.to_string()))?;
            objects.push(emulated);
        }
    }
    // The resource groups the specs name exist in the emulated account.
    let mut resource_groups: Vec<String> = imports
        .iter()
        .filter_map(|object| object.spec.resource_group_id.clone())
        .collect();
    resource_groups.sort();
    resource_groups.dedup();
    let config = EmulatorConfig {
        keys: known,
        objects,
        resource_groups,
        time_scale,
        ..EmulatorConfig::default()
    };
    let handle = Emulator::start(config)
        .await
        .map_err(|error| EmulatorError(error.to_string()))?;
    for object in imports {
        // The buckets sources are uploaded into exist in the emulated cloud.
        for disk in object
            .spec
            .disk_device_mappings
            .iter()
            .filter(|d| d.source.is_some())
        {
            handle.add_bucket(BucketDef {
                name: disk.oss_bucket.clone(),
                region: object.spec.region_id.clone(),
                account: None,
            });
        }
        // The accounts the spec shares with exist in the emulated cloud.
        for account in object.spec.distribution.iter().flat_map(|d| d.accounts()) {
            handle.patch_account(&account, AccountPatch::default());
        }
    }
    Ok((handle, own))
}
