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

/// Parses and checks a base URL; returns it without a trailing slash.
pub fn validate_base_url(raw: &str, scheme: Scheme) -> Result<String, String> {
    let url = Url::parse(raw).map_err(|error| format!("{raw:?} is not a URL: {error}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| format!("{raw:?} has no host"))?;
    match (url.scheme(), scheme) {
        ("https", _) | ("http", Scheme::HttpAllowed) => {}
        ("http", Scheme::HttpsUnlessLoopback) if is_loopback_host(host) => {}
        ("http", Scheme::HttpsUnlessLoopback) => {
            return Err(format!(
                "{raw:?} uses plain http to a host that is not loopback; use https"
            ));
        }
        (other, _) => return Err(format!("{raw:?} has unsupported scheme {other:?}")),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{raw:?} must not carry a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
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
