//! The checks of a transfer, pure: the job and settings before anything is sent, the part count,
//! and the whole source at its end (size, digest, format) before the upload is completed.

use super::{Job, Settings, UploadError, format, source};

/// OSS's smallest part (every part but the last).
pub const MIN_PART_SIZE: u64 = 100 * 1024;
/// The most parts a multipart upload may have.
pub const MAX_PARTS: u32 = 10_000;

/// The job's expected SHA-256 in lowercase, once the job and settings are known to be usable.
pub fn check_job(job: &Job, settings: &Settings) -> Result<Option<String>, UploadError> {
    if settings.part_size < MIN_PART_SIZE {
        return Err(UploadError::InvalidJob(format!(
            "the part size {} is below OSS's minimum of {MIN_PART_SIZE} bytes",
            settings.part_size
        )));
    }
    if let Some(size) = job.expected_size.filter(|size| *size > settings.max_size) {
        return Err(UploadError::SourceTooLarge {
            url: shown(job),
            limit: settings.max_size,
            declared: Some(size),
        });
    }
    match &job.expected_sha256 {
        Some(hex) if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) => Err(
            UploadError::InvalidJob("the expected SHA-256 is not 64 hex digits".into()),
        ),
        other => Ok(other.as_ref().map(|hex| hex.to_ascii_lowercase())),
    }
}

fn shown(job: &Job) -> String {
    match &job.source {
        super::Source::Url(url) => source::display_str(url),
        super::Source::File(path) => path.display().to_string(),
    }
}

/// OSS takes at most 10,000 parts.
pub fn check_parts_count(parts: u64, part_size: u64) -> Result<(), UploadError> {
    if parts > u64::from(MAX_PARTS) {
        return Err(UploadError::InvalidJob(format!(
            "the source needs more than {MAX_PARTS} parts of {part_size} bytes; raise the part size"
        )));
    }
    Ok(())
}

/// The first check the whole source fails, if any: size (declared, expected), digest, format.
pub fn check_end(
    job: &Job,
    declared: Option<u64>,
    size: u64,
    sha256: &str,
    expected_sha256: Option<&str>,
    detected: &str,
) -> Option<UploadError> {
    for expected in [declared, job.expected_size].into_iter().flatten() {
        if expected != size {
            return Some(UploadError::SizeMismatch {
                expected,
                actual: size,
            });
        }
    }
    if let Some(expected) = expected_sha256.filter(|expected| *expected != sha256) {
        return Some(UploadError::ChecksumMismatch {
            expected: expected.to_string(),
            actual: sha256.to_string(),
        });
    }
    match &job.declared_format {
        Some(declared) if !format::matches(declared, detected) => {
            Some(UploadError::FormatMismatch {
                declared: declared.clone(),
                detected: detected.to_string(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_ten_thousand_parts() {
        assert!(check_parts_count(10_000, 1).is_ok());
        let error = check_parts_count(10_001, 1 << 20).err();
        assert_eq!(
            error.map(|e| e.code().to_string()).as_deref(),
            Some("SourceRefused")
        );
    }
}
