//! Custom images: their records, look-ups, the state computed from their import task or their
//! copy, and `DeleteImage`.

use jiff::Timestamp;
use serde::Serialize;

use super::{CopyRec, ShareRec, World, among};
use crate::emulator::actions::EcsFault;

/// One disk of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskRec {
    /// Source bucket.
    pub bucket: String,
    /// Source object.
    pub object: String,
    /// Format (as detected or declared).
    pub format: String,
    /// Disk size in GiB.
    pub size_gib: u64,
    /// Device name, e.g. `/dev/xvda`.
    pub device: String,
}

/// A custom image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRec {
    /// `m-…`.
    pub id: String,
    /// Owning account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Name (may be empty).
    pub name: String,
    /// Description.
    pub description: String,
    /// `x86_64`, `i386`, `arm64`.
    pub architecture: String,
    /// `linux` or `windows`.
    pub os_type: String,
    /// Platform.
    pub platform: String,
    /// `BIOS` or `UEFI`.
    pub boot_mode: String,
    /// License type.
    pub license_type: String,
    /// Resource group.
    pub resource_group_id: String,
    /// `Features.NvmeSupport`.
    pub nvme_support: String,
    /// `Features.ImdsSupport`.
    pub imds_support: String,
    /// Tags in insertion order; keys are unique.
    pub tags: Vec<(String, String)>,
    /// Disks; the first is the system disk.
    pub disks: Vec<DiskRec>,
    /// Creation time (emulated).
    pub created: Timestamp,
    /// The import task filling it (empty for a copy).
    pub task_id: String,
    /// Set on an image made by `CopyImage`: what it copies, and when the copy is done.
    pub copy: Option<CopyRec>,
    /// The accounts it is shared with, in the order they were added.
    pub shared_with: Vec<ShareRec>,
}

impl World {
    /// One image, if the account owns it in that region.
    pub fn image(&self, account: &str, region: &str, id: &str) -> Option<&ImageRec> {
        self.images
            .get(id)
            .filter(|image| image.account == account && image.region == region)
    }

    /// One image for changing.
    pub fn image_mut(&mut self, account: &str, region: &str, id: &str) -> Option<&mut ImageRec> {
        self.images
            .get_mut(id)
            .filter(|image| image.account == account && image.region == region)
    }

    /// Images of an account in a region, oldest first.
    pub fn images_of<'a>(
        &'a self,
        account: &'a str,
        region: &'a str,
    ) -> impl Iterator<Item = &'a ImageRec> + 'a {
        self.images
            .values()
            .filter(move |image| image.account == account && image.region == region)
    }

    /// Images of an account in a region, oldest first: those named in `ids` (each looked up, so a
    /// batched poll of 100 ids costs 100 look-ups however many images exist), or all of them when
    /// `ids` is empty.
    pub fn images_among<'a>(
        &'a self,
        account: &str,
        region: &str,
        ids: &[&str],
    ) -> Vec<&'a ImageRec> {
        among(&self.images, ids, |image| {
            image.account == account && image.region == region
        })
    }

    /// Every image of every account (admin view).
    pub fn all_images(&self) -> impl Iterator<Item = &ImageRec> {
        self.images.values()
    }

    /// The status and progress of an image at `now`.
    pub fn image_state(&self, image: &ImageRec, now: Timestamp) -> (&'static str, u8) {
        if let Some(copy) = &image.copy {
            return copy.state(now);
        }
        match self.tasks.get(&image.task_id) {
            Some(task) => {
                let state = task.state(now);
                (state.image_status(), state.progress())
            }
            None => ("Available", 100),
        }
    }

    /// Seconds until an image being imported or copied is done (0 when it is not running).
    pub fn image_remain_seconds(&self, image: &ImageRec, now: Timestamp) -> i64 {
        let end = match &image.copy {
            Some(copy) => Some(copy.done_at()),
            None => self
                .tasks
                .get(&image.task_id)
                .filter(|task| task.state(now).is_running())
                .map(|task| task.created + task.duration),
        };
        end.map_or(0, |end| end.duration_since(now).as_secs().max(0))
    }

    /// `DeleteImage`: refused while the import or a copy from or of the image runs, and while the
    /// image is shared.
    pub fn delete_image(
        &mut self,
        account: &str,
        region: &str,
        image_id: &str,
        now: Timestamp,
        dry_run: bool,
    ) -> Result<(), EcsFault> {
        let image = self
            .image(account, region, image_id)
            .ok_or_else(EcsFault::image_not_found)?;
        let (status, _) = self.image_state(image, now);
        if status == "Creating" && image.copy.is_none() {
            return Err(EcsFault::new(
                "ImageIsImporting",
                "The specified Image is importing.",
            ));
        }
        if status == "Creating" || self.is_being_copied(image_id, now) {
            return Err(EcsFault::new(
                "OperationDenied.ImageCopying",
                "The Image is coping.",
            ));
        }
        if !image.shared_with.is_empty() {
            return Err(EcsFault::new(
                "ImageUseShared",
                "The specified image has been shared to others.",
            ));
        }
        if dry_run {
            return Err(EcsFault::dry_run());
        }
        self.images.remove(image_id);
        Ok(())
    }
}
