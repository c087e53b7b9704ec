//! The operator's finalizer on ImageImports ([`FINALIZER`]): added before anything happens in ECS,
//! removed only when the cleanup decision says nothing is left there. kube-runtime's finalizer
//! helper treats a cleanup still in progress as a failed reconcile; here it is a requeue like any
//! other, so a long deletion is neither logged nor counted as a failure.
//!
//! Both patches are JSON patches that `test` first, as kube-runtime's helper does: a finalizer
//! another manager adds or removes meanwhile makes the patch fail (and the resource is looked at
//! again) instead of being lost.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::api::image_import::{FINALIZER, ImageImport};

/// Where a resource stands with respect to the finalizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Not being deleted, and the finalizer is there: import and follow.
    Apply,
    /// Not being deleted, and the finalizer is missing: add it first, nothing else.
    AddFinalizer,
    /// Being deleted with the finalizer at this index: clean up in ECS.
    Cleanup(usize),
    /// Being deleted and the finalizer is gone: nothing is left to do.
    Gone,
}

/// The stage of `object`.
pub fn stage(object: &ImageImport) -> Stage {
    let index = object.finalizers().iter().position(|f| f == FINALIZER);
    match (object.meta().deletion_timestamp.is_some(), index) {
        (false, Some(_)) => Stage::Apply,
        (false, None) => Stage::AddFinalizer,
        (true, Some(index)) => Stage::Cleanup(index),
        (true, None) => Stage::Gone,
    }
}

/// The JSON patch that adds the finalizer to `finalizers` (as they are on the object).
pub fn add_patch(finalizers: &[String]) -> serde_json::Value {
    if finalizers.is_empty() {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ])
    } else {
        // The API server does not deduplicate finalizers: fail if anyone changed them meanwhile.
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ])
    }
}

/// The JSON patch that removes the finalizer at `index`.
pub fn remove_patch(index: usize) -> serde_json::Value {
    let path = format!("/metadata/finalizers/{index}");
    json!([
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ])
}

async fn send(
    api: &Api<ImageImport>,
    object: &ImageImport,
    patch: serde_json::Value,
) -> Result<(), kube::Error> {
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(kube::Error::SerdeError)?;
    api.patch(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::Json::<()>(patch),
    )
    .await
    .map(|_| ())
}

/// Adds the finalizer; the change itself wakes the resource again.
pub async fn add(api: &Api<ImageImport>, object: &ImageImport) -> Result<(), kube::Error> {
    send(api, object, add_patch(object.finalizers())).await
}

/// Removes the finalizer at `index`, letting the deletion finish.
pub async fn remove(
    api: &Api<ImageImport>,
    object: &ImageImport,
    index: usize,
) -> Result<(), kube::Error> {
    send(api, object, remove_patch(index)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patches_test_before_they_change_anything() {
        assert_eq!(
            add_patch(&[]),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
            ])
        );
        let other = vec!["someone.else/keep".to_string()];
        assert_eq!(
            add_patch(&other),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": ["someone.else/keep"]},
                {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
            ])
        );
        assert_eq!(
            remove_patch(1),
            json!([
                {"op": "test", "path": "/metadata/finalizers/1", "value": FINALIZER},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ])
        );
        for patch in [add_patch(&[]), add_patch(&other), remove_patch(0)] {
            assert!(serde_json::from_value::<json_patch::Patch>(patch).is_ok());
        }
    }
}
