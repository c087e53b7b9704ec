//! Reading the source: a URL (checked, pinned to the checked address, redirects followed by hand)
//! or a local file, from a given offset.
//!
//! The safety rules: `https`, or plain `http` only to loopback; every address a host resolves to
//! is checked, and loopback, private (RFC 1918, 100.64/10 where Alibaba's metadata service
//! 100.100.100.200 lives, fc00::/7) and link-local (169.254/16, fe80::/10) addresses are refused
//! unless the settings allow them; the connection then goes to that checked address only, so a
//! second DNS answer cannot point it elsewhere. Each redirect hop is checked the same way, at most
//! `max_redirects` of them. The job's request headers go only to the first URL's origin (a redirect
//! elsewhere, a CDN say, does not get the credentials), and appear in no log or error.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

use super::{Settings, Source, UploadError};

/// How long connecting to a source may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a source may send nothing before the read fails.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes read from a file at a time.
const FILE_CHUNK: usize = 256 * 1024;

/// A URL as errors and logs show it: no user info, no query (presigned URLs carry their signature
/// there), no fragment.
pub fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// The same for a URL not parsed yet.
pub fn display_str(url: &str) -> String {
    match Url::parse(url) {
        Ok(url) => display_url(&url),
        Err(_) => "(an unparsable URL)".to_string(),
    }
}

/// Why an address may not be fetched from, if it may not: pure, for every resolved address.
pub fn check_address(ip: IpAddr, settings: &Settings) -> Result<(), String> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let (class, allowed) = match ip {
        IpAddr::V4(v4) => {
            let [a, b, _, _] = v4.octets();
            if v4.is_loopback() {
                ("a loopback", settings.allow_loopback_sources)
            } else if v4.is_unspecified() || a == 0 || v4.is_broadcast() || v4.is_multicast() {
                ("an unroutable", false)
            } else if v4.is_link_local() {
                (
                    "a link-local (instance metadata)",
                    settings.allow_private_sources,
                )
            } else if v4 == std::net::Ipv4Addr::new(100, 100, 100, 200) {
                (
                    "Alibaba Cloud's metadata service",
                    settings.allow_private_sources,
                )
            } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
                ("a private", settings.allow_private_sources)
            } else {
                return Ok(());
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                ("a loopback", settings.allow_loopback_sources)
            } else if v6.is_unspecified() || v6.is_multicast() {
                ("an unroutable", false)
            } else if first & 0xffc0 == 0xfe80 {
                ("a link-local", settings.allow_private_sources)
            } else if first & 0xfe00 == 0xfc00 {
                ("a private", settings.allow_private_sources)
            } else {
                return Ok(());
            }
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(format!("{ip} is {class} address"))
    }
}

/// Checks a URL and resolves its host; returns the one address to connect to.
pub async fn resolve_checked(url: &Url, settings: &Settings) -> Result<SocketAddr, UploadError> {
    let refused = |reason: String| UploadError::SourceRefused {
        url: display_url(url),
        reason,
    };
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        other => return Err(refused(format!("the scheme {other} is not http(s)"))),
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(url::Host::Domain(name)) => {
            if !https && !name.eq_ignore_ascii_case("localhost") {
                return Err(refused(
                    "plain http is allowed only to loopback; use https".to_string(),
                ));
            }
            tokio::net::lookup_host((name, port))
                .await
                .map_err(|error| UploadError::SourceTransport {
                    url: display_url(url),
                    detail: format!("cannot resolve {name}: {error}"),
                })?
                .collect()
        }
        None => return Err(refused("the URL has no host".to_string())),
    };
    let Some(first) = addresses.first().copied() else {
        return Err(refused("the host resolves to no address".to_string()));
    };
    for address in &addresses {
        check_address(address.ip(), settings).map_err(refused)?;
        let loopback = match address.ip() {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
            IpAddr::V4(v4) => v4.is_loopback(),
        };
        if !https && !loopback {
            return Err(refused(
                "plain http is allowed only to loopback; use https".to_string(),
            ));
        }
    }
    Ok(first)
}

/// An open source, positioned at `start`.
pub struct Opened {
    /// The offset its first byte has: the one asked for, or 0 when the source ignored the range.
    pub start: u64,
    /// The whole source's size, when it says (`Content-Length` of a 200, the total of a
    /// `Content-Range`, a file's length).
    pub total: Option<u64>,
    /// What identifies this version of the source for `If-Range` (a strong ETag, else
    /// `Last-Modified`; for a file its size and modification time).
    pub validator: Option<String>,
    /// The source as errors show it.
    pub shown: String,
    body: Body,
}

enum Body {
    Http(reqwest::Response),
    File(tokio::fs::File),
}

impl Opened {
    /// The next bytes, or `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, UploadError> {
        let failed = |detail: String| UploadError::SourceTransport {
            url: self.shown.clone(),
            detail,
        };
        match &mut self.body {
            Body::Http(response) => response
                .chunk()
                .await
                .map_err(|error| failed(transport_detail(&error))),
            Body::File(file) => {
                let mut buffer = vec![0u8; FILE_CHUNK];
                let read = file
                    .read(&mut buffer)
                    .await
                    .map_err(|error| failed(error.to_string()))?;
                buffer.truncate(read);
                Ok((read > 0).then(|| Bytes::from(buffer)))
            }
        }
    }
}

/// A reqwest error without the URL it carries (which could hold a presigned query).
fn transport_detail(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "the body was cut short"
    } else {
        "transport error"
    };
    let mut detail = kind.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        detail.push_str(": ");
        detail.push_str(&inner.to_string());
        cause = inner.source();
    }
    detail
}

/// Opens the source at `offset` (with `If-Range: validator` when one is known).
pub async fn open(
    source: &Source,
    headers: &[(String, SecretString)],
    settings: &Settings,
    offset: u64,
    validator: Option<&str>,
) -> Result<Opened, UploadError> {
    match source {
        Source::File(path) => open_file(path, offset, validator).await,
        Source::Url(url) => {
            let opened = open_url(url, headers, settings, offset, None, validator).await?;
            if let Some(total) = opened.total.filter(|total| *total > settings.max_size) {
                return Err(UploadError::SourceTooLarge {
                    url: opened.shown,
                    limit: settings.max_size,
                    declared: Some(total),
                });
            }
            Ok(opened)
        }
    }
}

/// Opens the first `len` bytes of the source (a source ignoring the range sends more: read only
/// what is needed).
pub async fn open_range(
    source: &Source,
    headers: &[(String, SecretString)],
    settings: &Settings,
    len: u64,
    validator: Option<&str>,
) -> Result<Opened, UploadError> {
    match source {
        Source::File(path) => open_file(path, 0, None).await,
        Source::Url(url) => {
            let last = Some(len.saturating_sub(1));
            open_url(url, headers, settings, 0, last, validator).await
        }
    }
}

async fn open_file(
    path: &Path,
    offset: u64,
    validator: Option<&str>,
) -> Result<Opened, UploadError> {
    let shown = path.display().to_string();
    let failed = |error: std::io::Error| UploadError::SourceTransport {
        url: shown.clone(),
        detail: error.to_string(),
    };
    let mut file = tokio::fs::File::open(path).await.map_err(failed)?;
    let meta = file.metadata().await.map_err(failed)?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_nanos());
    let current = format!("file:{}:{modified}", meta.len());
    let start = if validator.is_none_or(|v| v == current) && offset <= meta.len() {
        offset
    } else {
        0
    };
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(failed)?;
    Ok(Opened {
        start,
        total: Some(meta.len()),
        validator: Some(current),
        shown,
        body: Body::File(file),
    })
}

/// The request headers, marked sensitive so no `Debug` shows them.
fn header_map(headers: &[(String, SecretString)], shown: &str) -> Result<HeaderMap, UploadError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let invalid = || {
            UploadError::InvalidJob(format!(
                "request header {name} for {shown} is not a valid header"
            ))
        };
        let name = HeaderName::try_from(name.as_str()).map_err(|_| invalid())?;
        let mut value = HeaderValue::from_str(value.expose_secret()).map_err(|_| invalid())?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

async fn open_url(
    start_url: &str,
    headers: &[(String, SecretString)],
    settings: &Settings,
    offset: u64,
    last: Option<u64>,
    validator: Option<&str>,
) -> Result<Opened, UploadError> {
    crate::ecs::ensure_tls_provider();
    let first = Url::parse(start_url).map_err(|error| UploadError::SourceRefused {
        url: display_str(start_url),
        reason: format!("not a URL: {error}"),
    })?;
    let secrets = header_map(headers, &display_url(&first))?;
    let mut url = first.clone();
    let mut hops = 0usize;
    loop {
        let shown = display_url(&url);
        let address = resolve_checked(&url, settings).await?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT);
        if let Some(url::Host::Domain(name)) = url.host() {
            builder = builder.resolve(name, address);
        }
        let client = builder
            .build()
            .map_err(|error| UploadError::SourceTransport {
                url: shown.clone(),
                detail: transport_detail(&error),
            })?;
        let mut request = client.get(url.clone());
        if url.origin() == first.origin() {
            request = request.headers(secrets.clone());
        }
        if offset > 0 || last.is_some() {
            let last = last.map(|last| last.to_string()).unwrap_or_default();
            request = request.header(header::RANGE, format!("bytes={offset}-{last}"));
            if let Some(validator) = validator {
                request = request.header(header::IF_RANGE, validator);
            }
        }
        let response = request
            .send()
            .await
            .map_err(|error| UploadError::SourceTransport {
                url: shown.clone(),
                detail: transport_detail(&error),
            })?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|location| url.join(location).ok());
            let Some(next) = location else {
                return Err(UploadError::SourceStatus {
                    url: shown,
                    status: status.as_u16(),
                });
            };
            hops += 1;
            if hops > settings.max_redirects {
                return Err(UploadError::SourceRefused {
                    url: display_url(&first),
                    reason: format!("more than {} redirects", settings.max_redirects),
                });
            }
            url = next;
            continue;
        }
        if status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE && offset > 0 {
            // The source shrank or changed: read it again from the start.
            return Box::pin(open_url(start_url, headers, settings, 0, None, None)).await;
        }
        if !status.is_success() {
            return Err(UploadError::SourceStatus {
                url: shown,
                status: status.as_u16(),
            });
        }
        let header_str = |name| {
            response
                .headers()
                .get(name)
                .and_then(|value: &HeaderValue| value.to_str().ok())
                .map(str::to_string)
        };
        let length = header_str(header::CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok());
        let (start, total) = if status == reqwest::StatusCode::PARTIAL_CONTENT {
            match header_str(header::CONTENT_RANGE)
                .as_deref()
                .and_then(parse_content_range)
            {
                Some((first_byte, total)) if first_byte == offset => (offset, total),
                // A range other than the one asked for: treat it as no Range support.
                _ => return Box::pin(open_url(start_url, headers, settings, 0, None, None)).await,
            }
        } else {
            (0, length)
        };
        let validator = header_str(header::ETAG)
            .filter(|etag| !etag.starts_with("W/"))
            .or_else(|| header_str(header::LAST_MODIFIED));
        return Ok(Opened {
            start,
            total,
            validator,
            shown,
            body: Body::Http(response),
        });
    }
}

/// `bytes FIRST-LAST/TOTAL` → (FIRST, TOTAL when not `*`).
pub fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let spec = value.trim().strip_prefix("bytes ")?;
    let (range, total) = spec.split_once('/')?;
    let (first, _) = range.split_once('-')?;
    let first = first.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        total => Some(total.parse().ok()?),
    };
    Some((first, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(private: bool, loopback: bool) -> Settings {
        Settings {
            allow_private_sources: private,
            allow_loopback_sources: loopback,
            ..Settings::default()
        }
    }

    #[test]
    fn address_classes() {
        let strict = settings(false, false);
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "100.100.100.200",
            "169.254.169.254",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:169.254.169.254",
            "0.0.0.0",
        ] {
            let ip: IpAddr = refused.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
            assert!(check_address(ip, &strict).is_err(), "{refused}");
        }
        assert!(check_address([8, 8, 8, 8].into(), &strict).is_ok());
        assert!(check_address([172, 32, 0, 1].into(), &strict).is_ok());
        assert!(check_address([127, 0, 0, 1].into(), &settings(false, true)).is_ok());
        assert!(check_address([169, 254, 169, 254].into(), &settings(true, false)).is_ok());
        assert!(check_address([0, 0, 0, 0].into(), &settings(true, true)).is_err());
    }

    #[test]
    fn urls_are_shown_without_secrets() {
        assert_eq!(
            display_str("https://user:pw@example.com/a/b.qcow2?Signature=s3cr3t#x"),
            "https://example.com/a/b.qcow2"
        );
        assert_eq!(parse_content_range("bytes 10-19/20"), Some((10, Some(20))));
        assert_eq!(parse_content_range("bytes 10-19/*"), Some((10, None)));
        assert_eq!(parse_content_range("bytes */20"), None);
    }
}
