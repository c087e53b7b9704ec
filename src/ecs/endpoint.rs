//! Where requests go: ECS regional endpoints, overrides for emulators and proxies, and the rule that
//! credentials and signed requests only travel over https unless the host is this machine.

use std::net::IpAddr;

use reqwest::Url;

/// Which schemes a base URL may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// https, or http to a loopback host (emulators, local test servers).
    HttpsUnlessLoopback,
    /// http or https: the ECS metadata service is plain http by design and never leaves the host.
    HttpAllowed,
}

/// Parses and checks a base URL; returns it without a trailing slash. User info (a proxy's
/// `user:password@`) is kept in the URL and never shown in an error.
pub fn validate_base_url(raw: &str, scheme: Scheme) -> Result<String, String> {
    // Errors show the URL without its password (a proxy's user info may be in it).
    let shown = without_user_info(raw);
    let url = Url::parse(raw).map_err(|error| format!("{shown:?} is not a URL: {error}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| format!("{shown:?} has no host"))?;
    match (url.scheme(), scheme) {
        ("https", _) | ("http", Scheme::HttpAllowed) => {}
        ("http", Scheme::HttpsUnlessLoopback) if is_loopback_host(host) => {}
        ("http", Scheme::HttpsUnlessLoopback) => {
            return Err(format!(
                "{shown:?} uses plain http to a host that is not loopback; use https"
            ));
        }
        (other, _) => return Err(format!("{shown:?} has unsupported scheme {other:?}")),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{shown:?} must not carry a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// `raw` with any `user:password@` of its authority replaced by `***@`, whether or not it
/// parses as a URL.
fn without_user_info(raw: &str) -> String {
    let Some(start) = raw.find("://").map(|at| at + 3) else {
        return raw.to_string();
    };
    let end = raw[start..]
        .find(['/', '?', '#'])
        .map_or(raw.len(), |at| start + at);
    match raw[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &raw[..start], &raw[start + at..]),
        None => raw.to_string(),
    }
}

/// Whether a URL host names this machine: `localhost`, 127.0.0.0/8 or ::1.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a string can be an Alibaba Cloud region ID (and so safely part of a host name).
pub fn is_valid_region_id(region: &str) -> bool {
    (2..=64).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-')
}

/// How the client picks the URL for a region.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EcsEndpoint {
    /// `https://ecs.<region>.aliyuncs.com`, the documented public endpoint of each region.
    #[default]
    Regional,
    /// One base URL for every region (an emulator, a proxy, a VPC endpoint); checked at construction.
    Override(String),
}

impl EcsEndpoint {
    /// An override, checked: https unless the host is loopback.
    pub fn override_url(raw: &str) -> Result<Self, String> {
        validate_base_url(raw, Scheme::HttpsUnlessLoopback).map(Self::Override)
    }

    /// The URL requests for `region` go to (path `/`).
    pub fn url_for(&self, region: &str) -> Result<String, String> {
        match self {
            Self::Override(base) => Ok(format!("{base}/")),
            Self::Regional if is_valid_region_id(region) => {
                Ok(format!("https://ecs.{region}.aliyuncs.com/"))
            }
            Self::Regional => Err(format!("{region:?} is not a valid region ID")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_only_for_loopback() {
        assert!(EcsEndpoint::override_url("http://127.0.0.1:8080").is_ok());
        assert!(EcsEndpoint::override_url("http://[::1]:8080/").is_ok());
        assert!(EcsEndpoint::override_url("http://localhost:1").is_ok());
        assert!(EcsEndpoint::override_url("https://ecs-vpc.cn-hangzhou.aliyuncs.com").is_ok());
        assert!(EcsEndpoint::override_url("http://ecs.cn-hangzhou.aliyuncs.com").is_err());
        assert!(EcsEndpoint::override_url("http://10.0.0.1").is_err());
        assert!(EcsEndpoint::override_url("ftp://127.0.0.1").is_err());
        assert!(EcsEndpoint::override_url("https://h/?a=b").is_err());
        assert_eq!(
            validate_base_url("http://100.100.100.200", Scheme::HttpAllowed).as_deref(),
            Ok("http://100.100.100.200")
        );
    }

    #[test]
    fn a_refused_url_is_shown_without_its_password() {
        for raw in [
            "http://proxy:hunter2@ecs.example.com",
            "ftp://proxy:hunter2@127.0.0.1",
            "https://proxy:hunter2@h/?a=b",
            "https://proxy:hunter2@[not-an-ip/",
            "https://proxy:hunter2@",
        ] {
            let error = validate_base_url(raw, Scheme::HttpsUnlessLoopback)
                .err()
                .unwrap_or_default();
            assert!(!error.contains("hunter2"), "{error}");
            assert!(error.contains("***@"), "{error}");
        }
        assert_eq!(
            without_user_info("http://a@b:c@host:1/p@q"),
            "http://***@host:1/p@q"
        );
        assert_eq!(without_user_info("not a url"), "not a url");
    }

    #[test]
    fn regional_urls_refuse_region_ids_that_could_change_the_host() {
        assert_eq!(
            EcsEndpoint::Regional.url_for("cn-hangzhou").as_deref(),
            Ok("https://ecs.cn-hangzhou.aliyuncs.com/")
        );
        assert!(EcsEndpoint::Regional.url_for("evil.com/x").is_err());
        assert!(EcsEndpoint::Regional.url_for("").is_err());
        assert_eq!(
            EcsEndpoint::override_url("http://127.0.0.1:9/")
                .and_then(|e| e.url_for("cn-hangzhou"))
                .as_deref(),
            Ok("http://127.0.0.1:9/")
        );
    }
}
