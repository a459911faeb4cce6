//! Which `Host` the admin listener answers to. A web page can make the operator's browser
//! send requests to a loopback listener under the page's own name (DNS rebinding), and read
//! the answers as its own; refusing every `Host` but the listener's address and the names
//! the operator configured (`[admin] hosts`) leaves such a page nothing to read.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The `Host` values a listener bound to one address answers to.
#[derive(Debug, Clone)]
pub(super) struct AllowedHosts {
    bound: SocketAddr,
    /// `[admin] hosts`, lower case: `NAME` (any port) or `NAME:PORT`.
    names: Vec<String>,
}

impl AllowedHosts {
    pub(super) fn new(bound: SocketAddr, names: &[String]) -> Self {
        AllowedHosts {
            bound,
            names: names.iter().map(|n| n.to_ascii_lowercase()).collect(),
        }
    }

    /// True if `host` (a `Host` header, or a request target's authority) names this
    /// listener: its bound address; `localhost` on its port if it listens on loopback; any
    /// IP address on its port if it listens on every address (a browser sends an address
    /// only to that address, so no other site's page can); or a configured name.
    pub(super) fn allows(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let Some((name, port)) = split_port(&host) else {
            return false;
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if self
            .names
            .iter()
            .any(|n| *n == host || (!n.contains(':') && n == name))
        {
            return true;
        }
        if port.unwrap_or(80) != self.bound.port() {
            return false;
        }
        let bound = self.bound.ip();
        match name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => ip == bound || bound.is_unspecified(),
            Err(_) => name == "localhost" && (bound.is_loopback() || bound.is_unspecified()),
        }
    }

    /// What a refused request is told.
    fn refusal(&self, host: Option<&str>) -> String {
        let mut own = vec![self.bound.to_string()];
        if self.bound.ip().is_loopback() || self.bound.ip().is_unspecified() {
            own.push(format!("localhost:{}", self.bound.port()));
        }
        own.extend(self.names.iter().cloned());
        let asked = match host {
            Some(host) => format!("not {host:?}"),
            None => "and this request named none".to_owned(),
        };
        format!(
            "this admin listener answers to Host {} ({asked}); to reach it under another \
             name, add that name to [admin] hosts in parade.toml",
            own.join(", ")
        )
    }
}

/// `host` split into its name and port (`[v6]:port` included); `None` if the port is not
/// a number.
fn split_port(host: &str) -> Option<(&str, Option<u16>)> {
    let colon = match host.rfind(':') {
        // An IPv6 address's colons are inside its brackets.
        Some(i) if !host[i..].contains(']') => i,
        _ => return Some((host, None)),
    };
    if host[..colon].contains(':') && !host.starts_with('[') {
        // A bare IPv6 address, which a Host header cannot be.
        return None;
    }
    Some((&host[..colon], Some(host[colon + 1..].parse().ok()?)))
}

/// Answers 421 Misdirected Request unless the request names this listener, in its one
/// `Host` header and in its target's authority if it has one.
pub(super) async fn refuse_other_hosts(
    State(allowed): State<AllowedHosts>,
    request: Request,
    next: Next,
) -> Response {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(host), None) => host.to_str().ok(),
        _ => None,
    };
    let authority = request.uri().authority().map(|a| a.as_str());
    let named = host.or(authority);
    let allowed_here = named.is_some()
        && [host, authority]
            .into_iter()
            .flatten()
            .all(|h| allowed.allows(h));
    if !allowed_here {
        let message = allowed.refusal(named);
        return (
            StatusCode::MISDIRECTED_REQUEST,
            axum::Json(serde_json::json!({ "error": message })),
        )
            .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(bound: &str, names: &[&str]) -> AllowedHosts {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        AllowedHosts::new(bound.parse().unwrap(), &names)
    }

    #[test]
    fn a_loopback_listener_answers_to_its_address_and_localhost() {
        let hosts = allowed("127.0.0.1:9187", &[]);
        for host in ["127.0.0.1:9187", "localhost:9187", "LocalHost.:9187"] {
            assert!(hosts.allows(host), "{host}");
        }
        for host in [
            "evil.example:9187",
            "localhost:80",
            "localhost",
            "127.0.0.2:9187",
            "[::1]:9187",
            "127.0.0.1:x",
            "",
        ] {
            assert!(!hosts.allows(host), "{host}");
        }
    }

    #[test]
    fn a_listener_on_every_address_answers_to_any_address_on_its_port() {
        let hosts = allowed("0.0.0.0:9187", &[]);
        assert!(hosts.allows("10.1.2.3:9187"));
        assert!(hosts.allows("localhost:9187"));
        assert!(!hosts.allows("10.1.2.3:9188"));
        assert!(!hosts.allows("node-a.internal:9187"));
        let v6 = allowed("[::]:9187", &[]);
        assert!(v6.allows("[fd00::1]:9187"));
        assert!(!v6.allows("fd00::1"));
    }

    #[test]
    fn configured_names_match_on_any_port_unless_they_name_one() {
        let hosts = allowed("10.0.0.5:9187", &["dash.example.com", "proxy:8443"]);
        assert!(hosts.allows("dash.example.com"));
        assert!(hosts.allows("Dash.Example.com:443"));
        assert!(hosts.allows("proxy:8443"));
        assert!(!hosts.allows("proxy:9187"));
        assert!(!hosts.allows("localhost:9187"), "not a loopback listener");
        assert!(hosts.allows("10.0.0.5:9187"));
    }
}
