//! The ECS HTTP client: signs each attempt (V1), sends it as a form-encoded POST, reads the answer,
//! and retries what is retryable with jittered exponential backoff under a per-account rate limit.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;
use tracing::Instrument;

use super::api::{
    API_VERSION, Action, CancelTaskRequest, DeleteImageRequest, ImportImageRequest,
    ImportImageResponse,
};
use super::credentials::{CredentialProvider, Credentials};
use super::endpoint::EcsEndpoint;
use super::error::{ApiError, EcsError, ErrorClass, parse_retry_after};
use super::params::Params;
use super::redact::{self, Secrets};
use super::retry::Backoff;
use super::sign;
use super::sts::{CallerIdentity, DEFAULT_STS_ENDPOINT, STS_API_VERSION};

/// How the client talks to ECS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Where requests go.
    pub endpoint: EcsEndpoint,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one attempt, from sending to the last byte of the answer.
    pub request_timeout: Duration,
    /// Attempts per call, the first included; 1 disables retries.
    pub max_attempts: u32,
    /// Waits between attempts.
    pub backoff: Backoff,
    /// Requests per second per (endpoint, AccessKey); `None` is unlimited.
    pub rate_limit: Option<NonZeroU32>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Told about every attempt (metrics); none by default.
    pub observer: super::observe::Observer,
    /// Where STS `GetCallerIdentity` goes; when unset, the ECS endpoint if that is a loopback
    /// override (the emulator serves both, and a test must never reach the real STS), else
    /// [`DEFAULT_STS_ENDPOINT`].
    pub sts_endpoint: Option<String>,
    /// Largest answer read, in bytes; a larger one is [`EcsError::ResponseTooLarge`].
    pub max_response_bytes: usize,
}

/// Default [`ClientConfig::max_response_bytes`]: 4 MiB.
///
/// The largest legitimate answers are full pages: `DescribeImages` with `PageSize=100` is about
/// 3 KB per image (disk mappings, 20 tags, features), so about 300 KB, and `DescribeTasks` for 100
/// tasks is under 100 KB. 4 MiB leaves more than ten times that, while a hostile or broken server
/// streaming gigabytes costs each call at most 4 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Default requests per second per account: well under what ECS throttles at for describe calls,
/// and far more than a batched poller needs (one call covers 100 imports).
pub const DEFAULT_RATE_LIMIT: u32 = 10;

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            endpoint: EcsEndpoint::Regional,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_attempts: 4,
            backoff: Backoff::default(),
            rate_limit: NonZeroU32::new(DEFAULT_RATE_LIMIT),
            user_agent: format!("ecs-image-operator/{}", env!("CARGO_PKG_VERSION")),
            observer: super::observe::Observer::none(),
            sts_endpoint: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// What `CancelTask` achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// ECS accepted the cancellation.
    Cancelled,
    /// The task had already stopped (`InvalidTaskId.IncorrectTaskStatus`): re-read it to see how.
    AlreadyStopped,
    /// ECS does not know the task (`InvalidTaskId.NotFound`).
    NotFound,
}

/// What `DeleteImage` achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// ECS deleted the image.
    Deleted,
    /// The image did not exist (`InvalidImageId.NotFound`), which is as good as deleted.
    NotFound,
}

/// A cheap-to-clone ECS client; credentials are passed per call, so one client serves every account.
#[derive(Debug, Clone)]
pub struct EcsClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    limits: super::ratelimit::RateLimits,
}

impl EcsClient {
    /// A client with its own connection pool.
    pub fn new(config: ClientConfig) -> Result<Self, EcsError> {
        super::ensure_tls_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(config.user_agent.clone())
            // Redirects would carry a signed request somewhere it was not signed for.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| EcsError::Transport {
                action: "client set-up",
                source,
            })?;
        let limits = super::ratelimit::RateLimits::new(config.rate_limit);
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                limits,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Calls one action and reads its successful answer.
    pub async fn call<A: Action>(
        &self,
        credentials: &CredentialProvider,
        request: &A,
    ) -> Result<A::Response, EcsError> {
        let body = self
            .execute(A::NAME, request.region_id(), request.params()?, credentials)
            .await?;
        // The body is already free of the request's secrets (`send`); serde quotes values of it.
        serde_json::from_str(&body).map_err(|error| EcsError::Decode {
            action: A::NAME,
            status: 200,
            detail: redact::shown_text(
                &error.to_string(),
                &Secrets::none(),
                redact::MAX_MESSAGE_CHARS,
            ),
        })
    }

    /// `ImportImage`, made safe to retry: without a `ClientToken` one is generated, and every attempt
    /// of this call carries the same one, so a lost answer can never produce a second image.
    pub async fn import_image(
        &self,
        credentials: &CredentialProvider,
        request: &ImportImageRequest,
    ) -> Result<ImportImageResponse, EcsError> {
        if request.client_token.is_some() {
            return self.call(credentials, request).await;
        }
        let mut request = request.clone();
        request.client_token = Some(random_hex(32));
        self.call(credentials, &request).await
    }

    /// STS `GetCallerIdentity`: the account these credentials belong to.
    pub async fn caller_identity(
        &self,
        credentials: &CredentialProvider,
    ) -> Result<CallerIdentity, EcsError> {
        const ACTION: &str = "GetCallerIdentity";
        let url = self.sts_url()?;
        let mut params = Params::new();
        params.set("Version", STS_API_VERSION);
        let body = self.execute_at(ACTION, &url, params, credentials).await?;
        let identity: CallerIdentity =
            serde_json::from_str(&body).map_err(|error| EcsError::Decode {
                action: ACTION,
                status: 200,
                detail: error.to_string(),
            })?;
        if identity.account_id.is_empty() {
            return Err(EcsError::Decode {
                action: ACTION,
                status: 200,
                detail: "no AccountId in the answer".into(),
            });
        }
        Ok(identity)
    }

    fn sts_url(&self) -> Result<String, EcsError> {
        let config = &self.inner.config;
        let base = match (&config.sts_endpoint, &config.endpoint) {
            (Some(url), _) => url.clone(),
            (None, EcsEndpoint::Override(base))
                if reqwest::Url::parse(base)
                    .ok()
                    .and_then(|url| url.host_str().map(super::endpoint::is_loopback_host))
                    .unwrap_or(false) =>
            {
                base.clone()
            }
            (None, _) => DEFAULT_STS_ENDPOINT.to_string(),
        };
        let base =
            super::endpoint::validate_base_url(&base, super::endpoint::Scheme::HttpsUnlessLoopback)
                .map_err(EcsError::Endpoint)?;
        Ok(format!("{base}/"))
    }

    /// `CancelTask`, where "already stopped" and "no such task" are outcomes, not failures.
    pub async fn cancel_task(
        &self,
        credentials: &CredentialProvider,
        request: &CancelTaskRequest,
    ) -> Result<CancelOutcome, EcsError> {
        match self.call(credentials, request).await {
            Ok(_) => Ok(CancelOutcome::Cancelled),
            Err(EcsError::Api(error)) if error.code == "InvalidTaskId.IncorrectTaskStatus" => {
                Ok(CancelOutcome::AlreadyStopped)
            }
            Err(EcsError::Api(error)) if error.code == "InvalidTaskId.NotFound" => {
                Ok(CancelOutcome::NotFound)
            }
            Err(error) => Err(error),
        }
    }

    /// `DeleteImage`, where a missing image counts as deleted.
    pub async fn delete_image(
        &self,
        credentials: &CredentialProvider,
        request: &DeleteImageRequest,
    ) -> Result<DeleteOutcome, EcsError> {
        match self.call(credentials, request).await {
            Ok(_) => Ok(DeleteOutcome::Deleted),
            Err(EcsError::Api(error)) if error.code == "InvalidImageId.NotFound" => {
                Ok(DeleteOutcome::NotFound)
            }
            Err(error) => Err(error),
        }
    }

    /// Sends one call, with retries; returns the body of the successful answer.
    async fn execute(
        &self,
        action: &'static str,
        region: &str,
        params: Params,
        credentials: &CredentialProvider,
    ) -> Result<String, EcsError> {
        let url = self
            .inner
            .config
            .endpoint
            .url_for(region)
            .map_err(EcsError::Endpoint)?;
        tracing::trace!(action, region, "calling ECS");
        self.execute_at(action, &url, params, credentials).await
    }

    /// Sends one call to `url`, with retries; returns the body of the successful answer.
    async fn execute_at(
        &self,
        action: &'static str,
        url: &str,
        params: Params,
        credentials: &CredentialProvider,
    ) -> Result<String, EcsError> {
        let max_attempts = self.inner.config.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let result = self
                .attempt(action, attempt, url, &params, credentials)
                .await;
            let error = match result {
                Ok(body) => return Ok(body),
                Err(error) => error,
            };
            let class = error.class();
            if !class.is_retryable() || attempt >= max_attempts {
                return Err(error);
            }
            if class == ErrorClass::RefreshCredentials {
                credentials.invalidate().await;
            }
            let wait = error.api().and_then(|api| api.retry_after).map_or_else(
                || self.inner.config.backoff.delay(attempt),
                |after| after.min(self.inner.config.backoff.cap),
            );
            tracing::info!(
                action,
                attempt,
                code = error.code(),
                wait_ms = wait.as_millis() as u64,
                "retrying ECS call"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// One signed attempt, as a span (`ecs_call`) with the action, the attempt and, once ECS has
    /// answered, its request id: the child of whatever span the caller runs in (a reconcile).
    async fn attempt(
        &self,
        action: &'static str,
        attempt: u32,
        url: &str,
        params: &Params,
        credentials: &CredentialProvider,
    ) -> Result<String, EcsError> {
        let span = tracing::debug_span!(
            "ecs_call",
            action,
            attempt,
            request_id = tracing::field::Empty
        );
        async {
            let credentials = credentials.credentials().await?;
            self.inner
                .limits
                .acquire(url, credentials.access_key_id())
                .await;
            // Timed after the rate limiter: the histogram shows ECS's latency, not our own budget.
            let started = std::time::Instant::now();
            let result = self.send(action, url, params, &credentials).await;
            self.inner
                .config
                .observer
                .observe(action, &result, started.elapsed());
            let request_id = match &result {
                Ok(body) => request_id_of(body),
                Err(error) => error.api().and_then(|api| api.request_id.as_deref()),
            };
            if let Some(request_id) = request_id {
                tracing::Span::current().record("request_id", request_id);
            }
            result
        }
        .instrument(span)
        .await
    }

    /// Signs and sends one attempt, and reads its answer.
    async fn send(
        &self,
        action: &'static str,
        url: &str,
        params: &Params,
        credentials: &Credentials,
    ) -> Result<String, EcsError> {
        // Nonce and timestamp are fresh per attempt, so a retry is never mistaken for a replay.
        let mut signed = params.clone();
        signed.set("Action", action);
        // STS calls bring their own version.
        if signed.get("Version").is_none() {
            signed.set("Version", API_VERSION);
        }
        signed.set("Format", "JSON");
        signed.set("AccessKeyId", credentials.access_key_id());
        signed.set("SignatureMethod", sign::V1_SIGNATURE_METHOD);
        signed.set("SignatureVersion", sign::V1_SIGNATURE_VERSION);
        signed.set("SignatureNonce", random_hex(32));
        signed.set("Timestamp", ecs_timestamp(Timestamp::now()));
        if let Some(token) = credentials.security_token() {
            signed.set("SecurityToken", token);
        }
        let string_to_sign = sign::v1_string_to_sign("POST", &signed);
        let signature = sign::v1_signature(credentials.access_key_secret(), &string_to_sign);
        // What this request carried that no error, log or label may show, in any encoding.
        let secrets = Secrets::of(credentials).with(&signature);
        signed.set("Signature", signature);

        // A form body keeps the signature and any security token out of URLs and proxy logs.
        let response = self
            .inner
            .http
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(signed.to_form())
            .send()
            .await
            .map_err(|source| self.transport_error(action, source))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("x-acs-retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        let body = match read_body(response, self.inner.config.max_response_bytes).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                return Err(EcsError::ResponseTooLarge {
                    action,
                    limit: self.inner.config.max_response_bytes,
                });
            }
            Err(BodyError::Transport(source)) => return Err(self.transport_error(action, source)),
        };
        if (200..300).contains(&status) {
            tracing::debug!(action, status, "ECS call succeeded");
            // A task's error message or any other field quoting a secret is decoded from this.
            return Ok(redact::remove_secrets(&body, &secrets).into_owned());
        }
        match ApiError::parse_redacted(action, status, &body, &secrets) {
            Some(mut error) => {
                error.retry_after = retry_after;
                tracing::debug!(action, status, code = %error.code, request_id = error.request_id.as_deref().unwrap_or(""), "ECS call failed");
                Err(EcsError::Api(Box::new(error)))
            }
            None => Err(EcsError::Decode {
                action,
                status,
                detail: format!(
                    "an error answer without a code: {}",
                    redact::shown_text(&body, &secrets, EXCERPT_CHARS)
                ),
            }),
        }
    }

    fn transport_error(&self, action: &'static str, source: reqwest::Error) -> EcsError {
        if source.is_timeout() {
            EcsError::Timeout {
                action,
                timeout: self.inner.config.request_timeout,
            }
        } else {
            EcsError::Transport {
                action,
                source: redact::scrub_transport(source),
            }
        }
    }
}

/// Why an answer's body was not read whole.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Over the limit: refused from `Content-Length`, or stopped reading once past it.
    TooLarge,
    /// The connection failed while reading.
    Transport(reqwest::Error),
}

/// Reads a body of at most `limit` bytes, streaming, so a huge or endless answer costs at most
/// `limit` bytes of memory; invalid UTF-8 is replaced, as `Response::text` does.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<String, BodyError> {
    const INITIAL_CAPACITY: usize = 64 * 1024;
    let announced = response.content_length();
    if announced.is_some_and(|length| length > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    // Trust the announced length only up to a small first allocation: it may be a lie.
    let capacity = announced.map_or(INITIAL_CAPACITY, |length| {
        usize::try_from(length)
            .unwrap_or(limit)
            .min(INITIAL_CAPACITY)
    });
    let mut body = Vec::with_capacity(capacity);
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(match String::from_utf8(body) {
        Ok(text) => text,
        Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
    })
}

/// ECS's timestamp format: UTC, whole seconds, `Z` (`2024-05-01T12:34:56Z`).
pub fn ecs_timestamp(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random lowercase hex string, for nonces and generated client tokens.
pub fn random_hex(length: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rng = rand::rng();
    (0..length)
        .map(|_| char::from(HEX[rng.random_range(0..16)]))
        .collect()
}

/// How much of a body without an error code an error quotes, in characters.
const EXCERPT_CHARS: usize = 200;

/// The `RequestId` of a successful answer, found without decoding the whole body (which may be
/// megabytes): ECS puts it at the top level as `"RequestId":"…"`.
fn request_id_of(body: &str) -> Option<&str> {
    let after = body.split_once("\"RequestId\"")?.1.trim_start();
    let value = after.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let id = value.split_once('"')?.0;
    // Request ids are UUID-like; anything else is not shown.
    (id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_whole_seconds_and_a_z() {
        let at: Timestamp = "2024-05-01T12:34:56.789Z".parse().unwrap_or_default();
        assert_eq!(ecs_timestamp(at), "2024-05-01T12:34:56Z");
    }

    #[test]
    fn nonces_are_hex_of_the_asked_length_and_differ() {
        let a = random_hex(32);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, random_hex(32));
    }

    #[test]
    fn the_request_id_is_read_off_an_answer_and_nothing_else_passes_for_one() {
        let body = r#"{"Images":{"Image":[]},"RequestId": "86CC7763-2227-24A3","TotalCount":0}"#;
        assert_eq!(super::request_id_of(body), Some("86CC7763-2227-24A3"));
        assert_eq!(super::request_id_of(r#"{"TotalCount":0}"#), None);
        assert_eq!(super::request_id_of(r#"{"RequestId":"a b"}"#), None);
        assert_eq!(super::request_id_of(r#"{"RequestId":17}"#), None);
    }
}
