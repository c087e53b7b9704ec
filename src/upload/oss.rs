//! The OSS calls of a transfer through `ossify`: the client (path-style to a configured endpoint,
//! else `https://oss-{region}.aliyuncs.com`), its errors mapped to [`UploadError`] with OSS's code
//! kept, part uploads retried, and the two calls whose result `ossify` does not check
//! (`AbortMultipartUpload`, `DeleteObject`) confirmed by `ListParts` and `HeadObject`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ossify::ops::object::base::{DeleteObjectOperations, HeadObjectOperations, HeadObjectParams};
use ossify::ops::object::multipart_upload::{
    AbortMultipartUploadOperations, CompleteMultipartUploadOperations,
    InitiateMultipartUploadOperations, ListPartsOperations, ListPartsParams, Part, PartInfo,
    UploadPartOperations,
};
use ossify::{Client, UrlStyle};

use super::{Settings, UploadError};
use crate::ecs::CredentialProvider;

/// Attempts of one part before the transfer fails.
const PART_ATTEMPTS: u32 = 4;
/// The first retry's delay; doubled each time, at most [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Parts per `ListParts` page.
const PAGE: u32 = 1000;

/// Gives `ossify` the operator's credentials on every request, so STS keys refresh as the
/// provider refreshes them.
#[derive(Debug)]
struct Keys(Arc<CredentialProvider>);

impl ossify::credentials::CredentialsProvider for Keys {
    async fn get_credentials(&self) -> ossify::Result<ossify::credentials::Credentials> {
        let keys = self
            .0
            .credentials()
            .await
            .map_err(|_| ossify::Error::InvalidCredentials)?;
        Ok(ossify::credentials::Credentials {
            access_key_id: keys.access_key_id().to_string(),
            access_key_secret: keys.access_key_secret().to_string(),
            security_token: keys.security_token().map(str::to_string),
            expiration: None,
        })
    }
}

/// Checks that credentials can be had at all, with the credentials layer's own error.
pub async fn check_credentials(credentials: &CredentialProvider) -> Result<(), UploadError> {
    credentials
        .credentials()
        .await
        .map(|_| ())
        .map_err(|error| UploadError::Credentials {
            code: error.code().to_string(),
            detail: error.to_string(),
            transient: error.is_transient(),
        })
}

/// A client for one bucket. The request timeout leaves a part room at 1 MiB/s on top of 30 s.
pub fn client(
    settings: &Settings,
    credentials: &Arc<CredentialProvider>,
    region: &str,
    bucket: &str,
) -> Result<Client, UploadError> {
    crate::ecs::ensure_tls_provider();
    let (endpoint, style) = match &settings.oss_endpoint {
        Some(endpoint) => (endpoint.clone(), UrlStyle::Path),
        None => (
            format!("https://oss-{region}.aliyuncs.com"),
            UrlStyle::VirtualHosted,
        ),
    };
    let timeout = Duration::from_secs(30 + settings.part_size / (1 << 20));
    Client::builder()
        .endpoint(endpoint)
        .region(region)
        .bucket(bucket)
        .url_style(style)
        .http_timeout(timeout)
        .credentials_provider(Keys(credentials.clone()))
        .build()
        .map_err(|error| map("Client", error))
}

/// An `ossify` error as an [`UploadError`].
pub fn map(action: &'static str, error: ossify::Error) -> UploadError {
    match error {
        ossify::Error::ApiError {
            status_code,
            message: Some(body),
        } => UploadError::Oss {
            action,
            status: status_code.as_u16(),
            code: body.code,
            message: body.message,
            request_id: Some(body.request_id).filter(|id| !id.is_empty()),
        },
        ossify::Error::ApiError {
            status_code,
            message: None,
        } => UploadError::Oss {
            action,
            status: status_code.as_u16(),
            code: format!("OssHttp{}", status_code.as_u16()),
            message: format!("HTTP {status_code} without an error body"),
            request_id: None,
        },
        ossify::Error::OssService { code, message } => UploadError::Oss {
            action,
            status: 0,
            code,
            message,
            request_id: None,
        },
        ossify::Error::InvalidCredentials => UploadError::Credentials {
            code: "CredentialsUnavailable".to_string(),
            detail: "the credentials provider failed".to_string(),
            transient: true,
        },
        ossify::Error::HttpRequest(error) => UploadError::OssTransport {
            action,
            timeout: error.is_timeout(),
            detail: error.without_url().to_string(),
        },
        other => UploadError::OssTransport {
            action,
            timeout: false,
            detail: other.to_string(),
        },
    }
}

/// Whether OSS said the upload id does not exist.
pub fn is_no_such_upload(error: &UploadError) -> bool {
    matches!(error, UploadError::Oss { code, .. } if code == "NoSuchUpload")
}

/// Starts a multipart upload; returns its id.
pub async fn initiate(client: &Client, object: &str) -> Result<String, UploadError> {
    client
        .initiate_multipart_upload(object, None)
        .await
        .map(|answer| answer.upload_id)
        .map_err(|error| map("InitiateMultipartUpload", error))
}

/// Uploads one part, retrying transient failures with backoff; returns its ETag.
pub async fn upload_part(
    client: &Client,
    object: &str,
    upload_id: &str,
    number: u32,
    body: Bytes,
) -> Result<String, UploadError> {
    let mut delay = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        let answer = client
            .upload_part(object, upload_id, number, body.clone())
            .await
            .map_err(|error| map("UploadPart", error));
        match answer {
            Ok(part) => return Ok(part.etag),
            Err(error)
                if attempt < PART_ATTEMPTS
                    && error.class().is_retryable()
                    && !is_no_such_upload(&error) =>
            {
                tracing::debug!(part = number, attempt, %error, "part upload failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Every part of an upload, following `ListParts`' pages.
pub async fn list_parts(
    client: &Client,
    object: &str,
    upload_id: &str,
) -> Result<Vec<PartInfo>, UploadError> {
    let mut parts = Vec::new();
    let mut marker = None;
    loop {
        let params = ListPartsParams {
            upload_id: upload_id.to_string(),
            max_parts: Some(PAGE),
            part_number_marker: marker,
            encoding_type: None,
        };
        let page = client
            .list_parts(object, upload_id, Some(params))
            .await
            .map_err(|error| map("ListParts", error))?;
        let next = page.next_part_number_marker;
        parts.extend(page.parts);
        if !page.is_truncated || marker == Some(next) {
            return Ok(parts);
        }
        marker = Some(next);
    }
}

/// Completes the upload with its parts (1..=N, in order).
pub async fn complete(
    client: &Client,
    object: &str,
    upload_id: &str,
    etags: Vec<String>,
) -> Result<(), UploadError> {
    let parts = etags
        .into_iter()
        .zip(1u32..)
        .map(|(etag, number)| Part::new(number, etag))
        .collect();
    client
        .complete_multipart_upload(object, upload_id, parts, None)
        .await
        .map(|_| ())
        .map_err(|error| map("CompleteMultipartUpload", error))
}

/// An upload still there after its abort, or an object after its deletion.
fn not_confirmed(action: &'static str, what: &str) -> UploadError {
    UploadError::Oss {
        action,
        status: 0,
        code: format!("{action}NotConfirmed"),
        message: format!("{what} is still there after {action}"),
        request_id: None,
    }
}

/// Aborts with a client at hand, confirmed by `ListParts` answering `NoSuchUpload`.
pub async fn abort_with(client: &Client, object: &str, upload_id: &str) -> Result<(), UploadError> {
    // ossify reads no status here: what the call answered is learnt from ListParts below.
    let sent = client
        .abort_multipart_upload(object, upload_id)
        .await
        .map_err(|error| map("AbortMultipartUpload", error));
    let params = ListPartsParams {
        upload_id: upload_id.to_string(),
        max_parts: Some(1),
        part_number_marker: None,
        encoding_type: None,
    };
    match client.list_parts(object, upload_id, Some(params)).await {
        Err(error) => {
            let error = map("ListParts", error);
            if is_no_such_upload(&error) {
                Ok(())
            } else {
                Err(error)
            }
        }
        Ok(_) => Err(sent
            .err()
            .unwrap_or_else(|| not_confirmed("AbortMultipartUpload", "the multipart upload"))),
    }
}

/// Aborts a multipart upload (its parts removed), confirmed: `ListParts` must answer
/// `NoSuchUpload`. An upload that is already gone counts as aborted.
pub async fn abort(
    settings: &Settings,
    credentials: &Arc<CredentialProvider>,
    region: &str,
    bucket: &str,
    object: &str,
    upload_id: &str,
) -> Result<(), UploadError> {
    let client = client(settings, credentials, region, bucket)?;
    abort_with(&client, object, upload_id).await
}

/// Deletes an object, confirmed: `HeadObject` must answer 404. A missing object counts as
/// deleted.
pub async fn delete_object(
    settings: &Settings,
    credentials: &Arc<CredentialProvider>,
    region: &str,
    bucket: &str,
    object: &str,
) -> Result<(), UploadError> {
    let client = client(settings, credentials, region, bucket)?;
    let sent = client
        .delete_object(object, None)
        .await
        .map_err(|error| map("DeleteObject", error));
    match client
        .head_object(object, HeadObjectParams::default(), None)
        .await
    {
        Err(error) => match map("HeadObject", error) {
            UploadError::Oss { status: 404, .. } => Ok(()),
            other => Err(other),
        },
        Ok(_) => Err(sent
            .err()
            .unwrap_or_else(|| not_confirmed("DeleteObject", "the object"))),
    }
}
