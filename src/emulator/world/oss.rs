//! OSS objects an import can read, and the checks `ImportImage` makes on each disk's object.

use serde::{Deserialize, Serialize};

use super::{DiskSpec, GIB, RegionDef, World, yes};
use crate::emulator::actions::EcsFault;

/// An object in OSS that an import can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OssObject {
    /// Bucket name.
    pub bucket: String,
    /// Object key, e.g. `images/ubuntu.qcow2`.
    pub key: String,
    /// Region of the bucket.
    pub region: String,
    /// Size of the file in bytes (0 makes `InvalidOSSObject.Size`).
    #[serde(default)]
    pub size: u64,
    /// Virtual disk size in GiB (what the guest sees); 0 means the file size rounded up.
    #[serde(default)]
    pub virtual_size_gib: u64,
    /// Real format of the file: `RAW`, `VHD`, `QCOW2` or `VMDK`. An import that declares another
    /// format fails with `InvalidImageFormat.Malformed`.
    #[serde(default = "default_format")]
    pub format: String,
    /// `Standard` (default), `IA`, or `Archive` (needs a restore: `InvalidOSSObject.NeedRestore`).
    #[serde(default = "default_storage_class")]
    pub storage_class: String,
    /// Whether the import role may read it (`InvalidOSS.NotAuthorized` otherwise).
    #[serde(default = "yes")]
    pub readable: bool,
    /// Whether the bucket is KMS-encrypted (`InvalidOSSBucket.EncryptUnsupported`).
    #[serde(default)]
    pub encrypted: bool,
}

fn default_format() -> String {
    "RAW".into()
}

fn default_storage_class() -> String {
    "Standard".into()
}

impl OssObject {
    /// The virtual size in GiB, at least 1.
    pub fn virtual_gib(&self) -> u64 {
        if self.virtual_size_gib > 0 {
            self.virtual_size_gib
        } else {
            self.size.div_ceil(GIB).max(1)
        }
    }
}

/// A bucket, for the OSS endpoint: buckets are also implied by the objects in them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketDef {
    /// Bucket name.
    pub name: String,
    /// Its region.
    pub region: String,
    /// The only account whose keys may use it over the OSS endpoint (`AccessDenied` for
    /// others); any account when unset.
    #[serde(default)]
    pub account: Option<String>,
}

impl World {
    /// Adds or replaces a bucket.
    pub fn add_bucket(&mut self, bucket: BucketDef) {
        self.buckets.insert(bucket.name.clone(), bucket);
    }

    /// A bucket, declared or implied by an object in it (then open to every account).
    pub fn bucket(&self, name: &str) -> Option<BucketDef> {
        self.buckets.get(name).cloned().or_else(|| {
            self.objects
                .values()
                .find(|object| object.bucket == name)
                .map(|object| BucketDef {
                    name: name.to_string(),
                    region: object.region.clone(),
                    account: None,
                })
        })
    }

    /// One object.
    pub fn object(&self, bucket: &str, key: &str) -> Option<&OssObject> {
        self.objects.get(&(bucket.to_string(), key.to_string()))
    }

    /// Removes an object (`true` if it was there).
    pub fn remove_object(&mut self, bucket: &str, key: &str) -> bool {
        self.objects
            .remove(&(bucket.to_string(), key.to_string()))
            .is_some()
    }

    /// Adds or replaces an object.
    pub fn add_object(&mut self, object: OssObject) {
        self.objects
            .insert((object.bucket.clone(), object.key.clone()), object);
    }

    /// All objects.
    pub fn objects(&self) -> impl Iterator<Item = &OssObject> {
        self.objects.values()
    }

    pub(super) fn check_object(
        &self,
        region: &RegionDef,
        disk: &DiskSpec,
    ) -> Result<OssObject, EcsFault> {
        if disk.format.as_deref() == Some("VMDK") && !region.vmdk_supported {
            return Err(EcsFault::new(
                "InvalidImageFormat.RegionNotSupported",
                format!(
                    "The image format VMDK is not supported in region {}.",
                    region.id
                ),
            ));
        }
        let bucket_region = self.bucket(&disk.bucket).map(|bucket| bucket.region);
        match bucket_region {
            None => {
                return Err(EcsFault::new(
                    "InvalidOSSBucket.NotFound",
                    format!("The specified OSS bucket {} does not exist.", disk.bucket),
                ));
            }
            Some(bucket_region) if bucket_region != region.id => {
                return Err(EcsFault::new(
                    "InvalidOSSBucket.NotMatched",
                    format!(
                        "The OSS bucket {} is in {bucket_region}, not in the image's region {}.",
                        disk.bucket, region.id
                    ),
                ));
            }
            Some(_) => {}
        }
        let object = self
            .objects
            .get(&(disk.bucket.clone(), disk.object.clone()))
            .ok_or_else(|| {
                EcsFault::new(
                    "InvalidOSSObject.NotFound",
                    format!(
                        "The specified OSS object {}/{} does not exist.",
                        disk.bucket, disk.object
                    ),
                )
            })?;
        if object.encrypted {
            return Err(EcsFault::new(
                "InvalidOSSBucket.EncryptUnsupported",
                "Importing from an encrypted OSS bucket is not supported.",
            ));
        }
        if !object.readable {
            return Err(EcsFault::new(
                "InvalidOSS.NotAuthorized",
                "The import role is not authorized to read the OSS object.",
            ));
        }
        if object.storage_class.eq_ignore_ascii_case("Archive") {
            return Err(EcsFault::new(
                "InvalidOSSObject.NeedRestore",
                "The Archive object must be restored before it can be imported.",
            ));
        }
        if object.size == 0 {
            return Err(EcsFault::new(
                "InvalidOSSObject.Size",
                "The size of the specified OSS object is 0.",
            ));
        }
        Ok(object.clone())
    }
}
