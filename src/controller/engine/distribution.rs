//! The distribution's parts of the engine: what ECS reports about the copies in other regions
//! and the share permissions of each image (`observe`), and carrying out their steps (`act`:
//! copy, update, cancel, delete, share).

use super::Identity;
use super::source::{describe_image, failure_from, update_image};
use crate::api::image_import::{ImageImport, Phase, UID_TAG};
use crate::controller::decision::{
    self, CopyObserved, EcsAction, Failure, Lookup, Resource, ShareObserved, SourceObserved,
};
use crate::controller::poller::image_view;
use crate::controller::port::EcsPort;
use crate::ecs::api::{CopyImageRequest, Tag};
use crate::ecs::{CredentialProvider, EcsError};

/// The copies and the share permissions of the source and every copy, as far as the decision
/// needs them:
/// - nothing when the resource has no distribution, or its source is not available yet;
/// - only `latest` (the poller's view of the recorded copies) when everything is settled;
/// - else each wanted or recorded region's copy: a running one as the poller last saw it, others
///   by recorded ID, else by the UID tag (a crash before the ID was recorded; a region whose
///   record has no token has no copy yet); while deleting, every recorded copy directly;
/// - the permissions of the source and each copy when sharing is involved and no copy is running
///   (or while deleting).
pub(crate) async fn observe<P: EcsPort>(
    ecs: &P,
    object: &ImageImport,
    resource: &Resource<'_>,
    identity: &Identity,
    source: &SourceObserved,
    latest: Vec<CopyObserved>,
) -> (Vec<CopyObserved>, Vec<ShareObserved>) {
    let status = resource.status;
    let credentials = identity.credentials.as_ref();
    let distributing = resource.deleting || status.phase == Some(Phase::Available);
    if !decision::distribution_involved(resource) || !distributing || status.image_id.is_none() {
        return (Vec::new(), Vec::new());
    }
    let settled =
        decision::settled(resource, &source.image) && decision::copies_settled(resource, &latest);
    if settled && !resource.deleting {
        return (latest, Vec::new());
    }
    let mut regions: Vec<String> = resource
        .spec
        .distribution
        .iter()
        .flat_map(|d| d.regions.iter().map(|r| r.region_id.clone()))
        .collect();
    if resource.deleting {
        regions.clear();
    }
    for copy in &status.copies {
        if !regions.contains(&copy.region_id) {
            regions.push(copy.region_id.clone());
        }
    }
    let uid = object.metadata.uid.as_deref().unwrap_or_default();
    let mut copies = Vec::new();
    for region in regions {
        let recorded = status.copies.iter().find(|c| c.region_id == region);
        let followed = latest
            .iter()
            .find(|c| c.region_id == region)
            .map(|c| c.image.clone())
            .filter(|seen| {
                let running = recorded.is_some_and(|c| c.phase == Some(Phase::Importing));
                !resource.deleting && (running || *seen != Lookup::NotAsked)
            });
        let image = match (followed, recorded.and_then(|c| c.image_id.clone())) {
            (Some(seen), _) => seen,
            (None, Some(id)) => describe_image(ecs, credentials, &region, &id)
                .await
                .unwrap_or_else(|e| Lookup::Failed(failure_from(&e))),
            // A copy is always recorded with its token before `CopyImage`: without one, nothing
            // can exist.
            (None, None)
                if recorded.is_none_or(|c| c.client_token.is_none() && c.start_time.is_none()) =>
            {
                Lookup::Missing
            }
            (None, None) => match ecs.image_tagged(credentials, &region, UID_TAG, uid).await {
                Ok(found) => found.map_or(Lookup::Missing, |i| Lookup::Found(image_view(&i))),
                Err(error) => Lookup::Failed(failure_from(&error)),
            },
        };
        copies.push(CopyObserved {
            region_id: region,
            image,
        });
    }
    let running = copies.iter().any(|copy| match &copy.image {
        Lookup::Found(image) => !image.status.is_usable() && !image.status.is_failed(),
        Lookup::NotAsked => true,
        Lookup::Missing | Lookup::Failed(_) => false,
    });
    if !decision::sharing(resource) || (running && !resource.deleting) {
        return (copies, Vec::new());
    }
    let mut images: Vec<(String, String)> = Vec::new();
    if let Some(source) = &status.image_id {
        images.push((resource.spec.region_id.clone(), source.clone()));
    }
    for copy in &copies {
        if let Lookup::Found(image) = &copy.image {
            images.push((copy.region_id.clone(), image.id.clone()));
        }
    }
    let mut shares = Vec::new();
    for (region_id, image_id) in images {
        let accounts = match ecs.shared_with(credentials, &region_id, &image_id).await {
            Ok(Some(mut accounts)) => {
                accounts.sort();
                Lookup::Found(accounts)
            }
            Ok(None) => Lookup::Missing,
            Err(error) => Lookup::Failed(failure_from(&error)),
        };
        shares.push(ShareObserved {
            region_id,
            image_id,
            accounts,
        });
    }
    (copies, shares)
}

/// What one distribution step brought back: the copy's ID for an accepted `CopyImage`.
pub(crate) enum Done {
    /// A copy ECS accepted: (region, ID).
    Copied(String, String),
    /// A step without an answer worth keeping.
    Nothing,
}

/// Carries out one distribution step. A refused copy is its region's failure (returned as
/// `Ok(Err(..))`), so that the other regions carry on; other failures stop the plan.
pub(crate) async fn act<P: EcsPort>(
    ecs: &P,
    resource: &Resource<'_>,
    step: &EcsAction,
    credentials: &CredentialProvider,
) -> Result<Result<Done, (String, Failure)>, EcsError> {
    match step {
        EcsAction::Copy { region_id } => {
            let request = copy_request(resource, region_id);
            Ok(match ecs.copy_image(credentials, &request).await {
                Ok(image_id) => {
                    tracing::info!(name = %resource.name, region = %region_id, copy = %image_id, "ECS accepted the copy");
                    Ok(Done::Copied(region_id.clone(), image_id))
                }
                Err(error) => Err((region_id.clone(), failure_from(&error))),
            })
        }
        EcsAction::UpdateCopy { region_id, update } => {
            update_image(region_id, update, credentials, ecs).await?;
            Ok(Ok(Done::Nothing))
        }
        EcsAction::CancelCopy {
            region_id,
            image_id,
        } => {
            ecs.cancel_copy(credentials, region_id, image_id).await?;
            Ok(Ok(Done::Nothing))
        }
        EcsAction::DeleteCopy {
            region_id,
            image_id,
        } => {
            ecs.delete(credentials, region_id, image_id).await?;
            Ok(Ok(Done::Nothing))
        }
        EcsAction::Share {
            region_id,
            image_id,
            add,
            remove,
        } => {
            ecs.share(credentials, region_id, image_id, add, remove)
                .await?;
            Ok(Ok(Done::Nothing))
        }
        EcsAction::Import
        | EcsAction::UpdateImage(_)
        | EcsAction::CancelTask { .. }
        | EcsAction::DeleteImage { .. }
        | EcsAction::Upload { .. }
        | EcsAction::AbortUpload { .. }
        | EcsAction::DeleteObject { .. } => Ok(Ok(Done::Nothing)),
    }
}

/// The `CopyImage` request of the copy in `region_id`: the source, the copy's name and
/// description (the region's, else the source's), encryption, the resource's tags, and the
/// copy's `ClientToken`.
pub fn copy_request(resource: &Resource<'_>, region_id: &str) -> CopyImageRequest {
    let spec = resource.spec;
    let region = spec
        .distribution
        .iter()
        .flat_map(|d| d.regions.iter())
        .find(|r| r.region_id == region_id);
    let recorded = resource
        .status
        .copies
        .iter()
        .find(|c| c.region_id == region_id)
        .and_then(|c| c.client_token.clone());
    CopyImageRequest {
        region_id: spec.region_id.clone(),
        image_id: resource.status.image_id.clone().unwrap_or_default(),
        destination_region_id: region_id.to_string(),
        destination_image_name: region
            .and_then(|r| r.image_name.clone())
            .or_else(|| spec.image_name.clone()),
        destination_description: region
            .and_then(|r| r.description.clone())
            .or_else(|| spec.description.clone()),
        encrypted: region.and_then(|r| r.encrypted).unwrap_or(false),
        kms_key_id: region.and_then(|r| r.kms_key_id.clone()),
        resource_group_id: spec.resource_group_id.clone(),
        tags: decision::desired_tags(resource)
            .into_iter()
            .map(|(key, value)| Tag::new(key, value))
            .collect(),
        client_token: Some(
            recorded.unwrap_or_else(|| {
                decision::copy_token(resource.uid, region_id, resource.generation)
            }),
        ),
    }
}
