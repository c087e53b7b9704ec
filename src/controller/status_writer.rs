//! Writes an `ImageImport`'s status with server-side apply, and never lets a rejected write freeze
//! the resource on an old message: a write the API server refuses for its size or its content is
//! tried once more with every message cut short ([`compact`]); what still fails is reported by the
//! caller as a Warning Event and a metric.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};

use crate::api::conditions;
use crate::api::image_import::{ImageImport, ImageImportStatus};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "ecs-image-operator";

/// Characters a message keeps in the compact status: enough for the code, the start of ECS's
/// words and the image or task id, a small fraction of any API server's object limit.
pub const COMPACT_MESSAGE_CHARS: usize = 256;

/// What ends a message that was cut.
pub const CUT_MARKER: &str = "… [cut]";

/// How a status reached the API server.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The decided status was refused; the compact one was stored.
    pub compacted: bool,
    /// The status as the API server stored it (its answer to the write).
    pub stored: Option<ImageImportStatus>,
}

/// Applies `status` to the resource `name`; if the API server refuses it as too large or invalid,
/// applies [`compact`]`(status)` instead. The error returned is the compact write's.
pub async fn apply(
    api: &Api<ImageImport>,
    name: &str,
    status: &ImageImportStatus,
) -> Result<Written, kube::Error> {
    match apply_once(api, name, status).await {
        Ok(stored) => Ok(Written {
            compacted: false,
            stored,
        }),
        Err(error) if refused_for_content(&error) => {
            tracing::warn!(
                name,
                "status write refused ({error}); writing a compact status"
            );
            let stored = apply_once(api, name, &compact(status)).await?;
            Ok(Written {
                compacted: true,
                stored,
            })
        }
        Err(error) => Err(error),
    }
}

async fn apply_once(
    api: &Api<ImageImport>,
    name: &str,
    status: &ImageImportStatus,
) -> Result<Option<ImageImportStatus>, kube::Error> {
    // The decisions conform their reasons already; this is the one door every write goes through,
    // and a reason the schema refuses would have every write refused, the compact one too.
    let mut status = status.clone();
    conditions::conform(&mut status.conditions);
    let patch = serde_json::json!({
        "apiVersion": ImageImport::api_version(&()),
        "kind": ImageImport::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|object| object.status)
}

/// Whether the API server refused the write for what it holds (size, a schema limit), which a
/// smaller status may fix, rather than for a reason that a retry of the same write may fix.
pub fn refused_for_content(error: &kube::Error) -> bool {
    match error {
        // 413: over the API server's body limit; 422: a schema limit (a message's maxLength);
        // 500 with etcd's words: over etcd's object limit.
        kube::Error::Api(status) => {
            status.code == 413
                || status.code == 422
                || status.message.to_ascii_lowercase().contains("too large")
        }
        _ => false,
    }
}

/// The status with every free-text field cut to [`COMPACT_MESSAGE_CHARS`].
pub fn compact(status: &ImageImportStatus) -> ImageImportStatus {
    let mut compact = status.clone();
    if let Some(message) = compact.message.as_mut() {
        cut(message, COMPACT_MESSAGE_CHARS);
    }
    // Codes are bounded where they are made (the ECS layer) and reasons by `conditions::reason_of`;
    // cutting them here could break the reason pattern.
    if let Some(error) = compact.last_error.as_mut() {
        cut(&mut error.message, COMPACT_MESSAGE_CHARS);
    }
    for Condition { message, .. } in &mut compact.conditions {
        cut(message, COMPACT_MESSAGE_CHARS);
    }
    compact
}

/// Cuts `text` to at most `limit` characters, the marker included, on a character boundary.
pub fn cut(text: &mut String, limit: usize) {
    if text.chars().count() <= limit {
        return;
    }
    let keep = limit.saturating_sub(CUT_MARKER.chars().count());
    let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
    text.truncate(end);
    text.push_str(CUT_MARKER);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_import::LastError;

    #[test]
    fn compact_cuts_every_message_on_a_character_boundary() {
        let huge = "テ".repeat(400_000);
        let status = ImageImportStatus {
            message: Some(huge.clone()),
            last_error: Some(LastError {
                code: "Huge".into(),
                message: huge.clone(),
                ..LastError::default()
            }),
            conditions: vec![Condition {
                type_: "Stalled".into(),
                status: "True".into(),
                reason: "Huge".into(),
                message: huge,
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    jiff::Timestamp::UNIX_EPOCH,
                ),
                observed_generation: Some(1),
            }],
            ..ImageImportStatus::default()
        };
        let compact = compact(&status);
        let size = serde_json::to_vec(&compact).map_or(usize::MAX, |bytes| bytes.len());
        assert!(size < 4096, "{size} bytes");
        let message = compact.message.unwrap_or_default();
        assert_eq!(message.chars().count(), COMPACT_MESSAGE_CHARS);
        assert!(message.ends_with(CUT_MARKER));
        assert_eq!(compact.conditions[0].reason, "Huge", "short text is kept");
    }

    #[test]
    fn short_text_is_left_alone() {
        let mut text = "importing t-1: 45%".to_string();
        cut(&mut text, COMPACT_MESSAGE_CHARS);
        assert_eq!(text, "importing t-1: 45%");
    }
}
