//! `CopyImage` and `CancelCopyImage`: a custom image copied into another region (the copy is a
//! new image there, `Creating` until done), and a running copy cancelled (the copy is deleted).

use serde::{Deserialize, Serialize};

use super::{Acknowledged, Action, Tag, check_client_token, region_and, set_tags};
use crate::ecs::error::EcsError;
use crate::ecs::params::Params;

/// `CopyImage`: copy image `image_id` of `region_id` into `destination_region_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyImageRequest {
    /// Region of the source image.
    pub region_id: String,
    /// The source image (`m-…`); it must be `Available`.
    pub image_id: String,
    /// Region of the copy; another than `region_id`.
    pub destination_region_id: String,
    /// Name of the copy, 2–128 characters, unique in the destination region.
    pub destination_image_name: Option<String>,
    /// Description of the copy, 2–256 characters.
    pub destination_description: Option<String>,
    /// Encrypt the copy (with `kms_key_id`, or the default key when absent).
    pub encrypted: bool,
    /// KMS key of an encrypted copy; ECS refuses it without `encrypted`.
    pub kms_key_id: Option<String>,
    /// Resource group of the copy (the default group when absent).
    pub resource_group_id: Option<String>,
    /// Tags of the copy, up to 20.
    pub tags: Vec<Tag>,
    /// Idempotency token: the same token returns the same copy instead of a second one.
    pub client_token: Option<String>,
}

impl Action for CopyImageRequest {
    const NAME: &'static str = "CopyImage";
    type Response = CopyImageResponse;

    fn region_id(&self) -> &str {
        &self.region_id
    }

    fn params(&self) -> Result<Params, EcsError> {
        check_client_token(self.client_token.as_ref())?;
        if self.destination_region_id.is_empty() || self.destination_region_id == self.region_id {
            return Err(EcsError::InvalidRequest(
                "CopyImage needs a destination region other than the source's".into(),
            ));
        }
        if self.kms_key_id.is_some() && !self.encrypted {
            return Err(EcsError::InvalidRequest(
                "a KMS key is given for a copy that is not encrypted".into(),
            ));
        }
        let mut params = region_and(&self.region_id, "ImageId", &self.image_id);
        params.set("DestinationRegionId", &self.destination_region_id);
        params.set_opt("DestinationImageName", self.destination_image_name.as_ref());
        params.set_opt(
            "DestinationDescription",
            self.destination_description.as_ref(),
        );
        if self.encrypted {
            params.set_bool("Encrypted", true);
        }
        params.set_opt("KMSKeyId", self.kms_key_id.as_ref());
        params.set_opt("ResourceGroupId", self.resource_group_id.as_ref());
        params.set_opt("ClientToken", self.client_token.as_ref());
        set_tags(&mut params, &self.tags)?;
        Ok(params)
    }
}

/// What `CopyImage` returns: the copy, in the destination region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CopyImageResponse {
    /// ECS request ID.
    #[serde(default)]
    pub request_id: String,
    /// The copy (`m-…`).
    pub image_id: String,
}

/// `CancelCopyImage`: stop a running copy; ECS deletes the copy and leaves the source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CancelCopyImageRequest {
    /// Region of the copy (the destination of `CopyImage`).
    pub region_id: String,
    /// The copy (`m-…`), not its source.
    pub image_id: String,
}

impl Action for CancelCopyImageRequest {
    const NAME: &'static str = "CancelCopyImage";
    type Response = Acknowledged;

    fn region_id(&self) -> &str {
        &self.region_id
    }

    fn params(&self) -> Result<Params, EcsError> {
        Ok(region_and(&self.region_id, "ImageId", &self.image_id))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly by design
mod tests {
    use super::*;

    fn full_copy() -> CopyImageRequest {
        CopyImageRequest {
            region_id: "cn-hangzhou".into(),
            image_id: "m-1".into(),
            destination_region_id: "cn-shanghai".into(),
            destination_image_name: Some("ubuntu-copy".into()),
            destination_description: Some("a copy".into()),
            encrypted: true,
            kms_key_id: Some("key-1".into()),
            resource_group_id: Some("rg-1".into()),
            tags: vec![Tag::new("ecs-image-operator/uid", "u-1")],
            client_token: Some("u-1-cn-shanghai".into()),
        }
    }

    #[test]
    fn copy_image_flattens_every_parameter() {
        let params = full_copy().params().unwrap();
        let expected = [
            ("ClientToken", "u-1-cn-shanghai"),
            ("DestinationDescription", "a copy"),
            ("DestinationImageName", "ubuntu-copy"),
            ("DestinationRegionId", "cn-shanghai"),
            ("Encrypted", "true"),
            ("ImageId", "m-1"),
            ("KMSKeyId", "key-1"),
            ("RegionId", "cn-hangzhou"),
            ("ResourceGroupId", "rg-1"),
            ("Tag.1.Key", "ecs-image-operator/uid"),
            ("Tag.1.Value", "u-1"),
        ];
        assert_eq!(params.iter().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn copy_image_refuses_what_ecs_would_refuse() {
        let mut request = full_copy();
        request.destination_region_id = "cn-hangzhou".into();
        assert!(matches!(request.params(), Err(EcsError::InvalidRequest(_))));
        let mut request = full_copy();
        request.encrypted = false;
        assert!(matches!(request.params(), Err(EcsError::InvalidRequest(_))));
        let mut request = full_copy();
        request.client_token = Some("x".repeat(65));
        assert!(matches!(request.params(), Err(EcsError::InvalidRequest(_))));
    }
}
