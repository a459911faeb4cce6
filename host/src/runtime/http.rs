//! Outbound HTTP as a granted capability.
//!
//! Every plugin links `wasi:http/outgoing-handler` (components made by componentize-js
//! import it whether or not they fetch), but a request only leaves the node when its host is
//! in the plugin's `allowed_hosts`. Any other request fails inside the guest with the
//! standard `HTTP-request-denied` error code, and the node logs which plugin, task and host.
//!
//! The wildcards `*` and `*.domain` reach public addresses only (`addresses.rs`): the
//! node resolves the host once, keeps the addresses that are public, and connects to one of
//! those (`send.rs`), so a name that resolves to loopback or a private network — the node's
//! admin listener, its database, a cloud metadata service — is refused with
//! `destination-IP-prohibited`, however its DNS answers change. An entry that names the
//! host (`localhost:8080`, `db.internal`) or the address (`127.0.0.1:8080`) reaches it
//! wherever it is.

mod addresses;
mod send;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::uri::Scheme;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

/// One `allowed_hosts` entry: `host`, `host:port`, `*.domain` (any subdomain), any of these
/// after `http://` or `https://` to allow only that scheme, or `*` for every host. The
/// wildcards (`*`, `*.domain`) reach only public addresses; an entry that names a host or an
/// address reaches it, public or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// `http` or `https`; any when absent.
    scheme: Option<String>,
    /// Lower-case host name or IP address (IPv6 without brackets); empty for `*`.
    host: String,
    /// True for `*.domain`: `host` is the domain, and any name below it matches.
    subdomains: bool,
    /// Any port when absent.
    port: Option<u16>,
    /// The entry as written, for messages.
    written: String,
}

impl HostPattern {
    /// Parses one entry, saying what is wrong with it.
    pub fn parse(written: &str) -> Result<Self, String> {
        let trimmed = written.trim();
        if trimmed == "*" {
            return Ok(HostPattern {
                scheme: None,
                host: String::new(),
                subdomains: true,
                port: None,
                written: written.to_owned(),
            });
        }
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((scheme, rest)) => {
                let scheme = scheme.to_ascii_lowercase();
                if scheme != "http" && scheme != "https" {
                    return Err(format!(
                        "host {written:?}: scheme {scheme:?} is not http or https"
                    ));
                }
                (Some(scheme), rest)
            }
            None => (None, trimmed),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "host {written:?}: write a host, optionally with a port (\"api.example.com\", \
                 \"127.0.0.1:8080\"), not a URL with a path or user"
            ));
        }
        let (subdomains, rest) = match rest.strip_prefix("*.") {
            Some(domain) => (true, domain),
            None => (false, rest),
        };
        // Parse as an authority so IPv6 literals and ports follow the URL rules.
        let authority: http::uri::Authority = rest
            .parse()
            .map_err(|_| format!("host {written:?}: not a host name or address"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if host.is_empty() || host.contains('*') {
            return Err(format!(
                "host {written:?}: a wildcard may only stand for the subdomains of a domain, \
                 as in \"*.example.com\""
            ));
        }
        // Read the port ourselves: `Authority::port` is `None` for one out of range, which
        // would silently allow every port.
        let port_text = match rest.strip_prefix('[') {
            Some(bracketed) => bracketed
                .split_once(']')
                .and_then(|(_, tail)| tail.strip_prefix(':')),
            None => rest.rsplit_once(':').map(|(_, port)| port),
        };
        let port = match port_text {
            Some(text) => Some(
                text.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("host {written:?}: invalid port"))?,
            ),
            None => None,
        };
        Ok(HostPattern {
            scheme,
            host,
            subdomains,
            port,
            written: written.to_owned(),
        })
    }

    /// True if the entry names a host or an address (not `*` or `*.domain`).
    fn is_explicit(&self) -> bool {
        !self.subdomains
    }

    /// True if the entry names `ip` itself (as `127.0.0.1:8080` or `[::1]` do), for
    /// `scheme` and `port`.
    fn names_address(&self, scheme: &str, ip: IpAddr, port: u16) -> bool {
        self.is_explicit()
            && self.host.parse::<IpAddr>().is_ok_and(|named| named == ip)
            && self.scheme.as_deref().is_none_or(|s| s == scheme)
            && self.port.is_none_or(|p| p == port)
    }

    /// True if a request to `scheme://host:port` may go out under this entry.
    fn permits(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host_matches = if self.subdomains {
            self.host.is_empty()
                || host
                    .strip_suffix(self.host.as_str())
                    .is_some_and(|head| head.ends_with('.') && head.len() > 1)
        } else {
            host == self.host
        };
        host_matches
            && self.scheme.as_deref().is_none_or(|s| s == scheme)
            && self.port.is_none_or(|p| p == port)
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.written)
    }
}

/// The `wasi:http` hooks of one instance: requests go out only to its plugin's allowed
/// hosts.
pub(super) struct HttpGate {
    pub allowed: Arc<[HostPattern]>,
    pub plugin: Arc<str>,
    /// The task being performed, for the log line; empty while listing actions.
    pub task: String,
}

/// Where a request the gate lets out may connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// An entry names the host: any address it resolves to.
    Any,
    /// Only wildcard entries match: public addresses, and those an entry names.
    PublicOnly,
}

/// A request's target, as the gate reads it from the URL.
struct Target {
    scheme: &'static str,
    /// Lower case, IPv6 without brackets.
    host: String,
    port: u16,
}

impl Target {
    fn of(uri: &http::Uri) -> Option<Target> {
        let scheme = if uri.scheme() == Some(&Scheme::HTTP) {
            "http"
        } else {
            "https"
        };
        let host = uri
            .host()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        Some(Target { scheme, host, port })
    }

    /// `host:port`, as a resolver takes it.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl HttpGate {
    /// Whether a request to `uri` may go out, and where to.
    fn reach(&self, uri: &http::Uri) -> Option<Reach> {
        let target = Target::of(uri)?;
        let mut matching = self
            .allowed
            .iter()
            .filter(|pattern| pattern.permits(target.scheme, &target.host, target.port))
            .peekable();
        matching.peek()?;
        if matching.any(HostPattern::is_explicit) {
            Some(Reach::Any)
        } else {
            Some(Reach::PublicOnly)
        }
    }

    #[cfg(test)]
    fn permits(&self, uri: &http::Uri) -> bool {
        self.reach(uri).is_some()
    }

    /// The resolved `addresses` a request to `target` may connect to under `reach`.
    fn reachable(
        &self,
        reach: Reach,
        target: &Target,
        addresses: &[SocketAddr],
    ) -> Vec<SocketAddr> {
        addresses
            .iter()
            .copied()
            .filter(|address| {
                reach == Reach::Any
                    || addresses::is_public(address.ip())
                    || self.allowed.iter().any(|pattern| {
                        pattern.names_address(target.scheme, address.ip(), target.port)
                    })
            })
            .collect()
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for HttpGate {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> ResponseFuture {
        let (Some(reach), Some(target)) = (self.reach(request.uri()), Target::of(request.uri()))
        else {
            tracing::warn!(
                plugin = %self.plugin,
                task = %self.task,
                method = %request.method(),
                url = %request.uri(),
                "outbound HTTP refused: the host is not in the plugin's allowed_hosts"
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        };
        // The check runs after the lookup, in the future: a copy of the gate goes with it.
        let gate = HttpGate {
            allowed: self.allowed.clone(),
            plugin: self.plugin.clone(),
            task: self.task.clone(),
        };
        Box::new(async move {
            use http_body_util::BodyExt;
            // Resolved once: the addresses checked are the addresses connected to.
            let resolved = send::resolve(&target.authority(), options.as_ref()).await?;
            let reachable = gate.reachable(reach, &target, &resolved);
            if reachable.is_empty() && !resolved.is_empty() {
                tracing::warn!(
                    plugin = %gate.plugin,
                    task = %gate.task,
                    method = %request.method(),
                    url = %request.uri(),
                    addresses = ?resolved.iter().map(SocketAddr::ip).collect::<Vec<_>>(),
                    "outbound HTTP refused: the host's address is not a public address, and \
                     `*` or `*.domain` in allowed_hosts reach only public ones (name the host \
                     or the address in allowed_hosts to reach it)"
                );
                return Err(wasmtime_wasi_http::Error::DestinationIpProhibited);
            }
            let (response, io) = send::send_to(request, options, &target.host, &reachable).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(entries: &[&str]) -> HttpGate {
        HttpGate {
            allowed: entries
                .iter()
                .map(|e| HostPattern::parse(e).unwrap())
                .collect(),
            plugin: "p".into(),
            task: String::new(),
        }
    }

    fn permits(gate: &HttpGate, url: &str) -> bool {
        gate.permits(&url.parse().unwrap())
    }

    #[test]
    fn nothing_is_allowed_unless_listed() {
        let none = gate(&[]);
        assert!(!permits(&none, "http://127.0.0.1:8080/"));
        assert!(!permits(&none, "https://example.com/"));
    }

    #[test]
    fn hosts_ports_schemes_and_subdomains() {
        let g = gate(&[
            "127.0.0.1:8080",
            "API.example.com",
            "https://secure.example.org",
            "*.hooks.example.net",
            "[::1]:9000",
        ]);
        assert!(permits(&g, "http://127.0.0.1:8080/x?y=1"));
        assert!(!permits(&g, "http://127.0.0.1:8081/"));
        assert!(!permits(&g, "http://127.0.0.2:8080/"));
        assert!(permits(&g, "http://api.example.com:1234/"));
        assert!(permits(&g, "https://API.EXAMPLE.COM/"));
        assert!(!permits(&g, "https://evil-api.example.com/"));
        assert!(!permits(&g, "https://api.example.com.evil.net/"));
        assert!(permits(&g, "https://secure.example.org/"));
        assert!(!permits(&g, "http://secure.example.org/"));
        assert!(permits(&g, "https://a.b.hooks.example.net/"));
        assert!(!permits(&g, "https://hooks.example.net/"));
        assert!(!permits(&g, "https://xhooks.example.net/"));
        assert!(permits(&g, "http://[::1]:9000/"));
        assert!(!permits(&g, "http://[::1]:9001/"));
    }

    #[test]
    fn star_allows_every_host() {
        // Every host name passes; which of its addresses are reached is the next check.
        let g = gate(&["*"]);
        assert!(permits(&g, "https://example.com/"));
        assert!(permits(&g, "http://10.0.0.1:81/"));
    }

    #[test]
    fn wildcards_reach_public_addresses_and_named_ones_only() {
        let target = |url: &str| Target::of(&url.parse().unwrap()).unwrap();
        let at = |addresses: &[&str]| -> Vec<SocketAddr> {
            addresses.iter().map(|a| a.parse().unwrap()).collect()
        };
        let g = gate(&["*", "10.0.0.7:8080", "*.example.net", "localhost:9000"]);
        let uri = |url: &str| url.parse::<http::Uri>().unwrap();
        assert_eq!(
            g.reach(&uri("http://evil.example.com/")),
            Some(Reach::PublicOnly)
        );
        assert_eq!(
            g.reach(&uri("http://a.example.net/")),
            Some(Reach::PublicOnly)
        );
        assert_eq!(g.reach(&uri("http://10.0.0.7:8080/")), Some(Reach::Any));
        assert_eq!(g.reach(&uri("http://localhost:9000/")), Some(Reach::Any));
        // `localhost` on another port only matches `*`.
        assert_eq!(
            g.reach(&uri("http://localhost:9001/")),
            Some(Reach::PublicOnly)
        );

        // A name that resolves to a mix keeps the public addresses and the named one.
        let mixed = at(&[
            "127.0.0.1:8080",
            "8.8.8.8:8080",
            "10.0.0.7:8080",
            "[::1]:8080",
        ]);
        let rebound = target("http://rebind.example.com:8080/");
        assert_eq!(
            g.reachable(Reach::PublicOnly, &rebound, &mixed),
            at(&["8.8.8.8:8080", "10.0.0.7:8080"])
        );
        assert!(
            g.reachable(
                Reach::PublicOnly,
                &target("http://x.example.com:8081/"),
                &at(&["10.0.0.7:8081"])
            )
            .is_empty(),
            "named for another port"
        );
        assert_eq!(g.reachable(Reach::Any, &rebound, &mixed), mixed);
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        for (entry, problem) in [
            ("ftp://example.com", "is not http or https"),
            ("example.com/path", "not a URL with a path"),
            ("user@example.com", "not a URL with a path or user"),
            ("exa mple.com", "not a host name"),
            ("*example.com", "wildcard"),
            ("example.com:0", "invalid port"),
            ("example.com:99999", "invalid port"),
            ("[::1]:70000", "invalid port"),
            ("", "not a host name"),
        ] {
            let error = HostPattern::parse(entry).unwrap_err();
            assert!(error.contains(problem), "{entry:?}: {error}");
            assert!(error.contains(&format!("{entry:?}")), "{error}");
        }
    }

    /// A server on 127.0.0.1 answering every request with 200, counting them.
    async fn loopback_server() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buffer = [0; 4096];
                let _ = stream.read(&mut buffer).await;
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            }
        });
        (port, hits)
    }

    /// What `gate` makes of a GET of `url`: the response status, or the error.
    async fn get(gate: &mut HttpGate, url: &str) -> Result<u16, wasmtime_wasi_http::Error> {
        use http_body_util::BodyExt;
        let request = http::Request::get(url)
            .body(
                http_body_util::Empty::new()
                    .map_err(|never: std::convert::Infallible| match never {})
                    .boxed_unsync(),
            )
            .unwrap();
        let sent = Box::into_pin(gate.send_request(request, None, Box::new(async { Ok(()) })));
        let (response, io) = sent.await?;
        tokio::spawn(Box::into_pin(io));
        Ok(response.status().as_u16())
    }

    #[tokio::test]
    async fn a_wildcard_does_not_reach_loopback_but_a_named_entry_does() {
        let (port, hits) = loopback_server().await;
        let url = format!("http://127.0.0.1:{port}/");
        let refused = get(&mut gate(&["*"]), &url).await;
        assert!(
            matches!(
                refused,
                Err(wasmtime_wasi_http::Error::DestinationIpProhibited)
            ),
            "{refused:?}"
        );
        let refused = get(&mut gate(&["*"]), &format!("http://localhost:{port}/")).await;
        assert!(
            matches!(
                refused,
                Err(wasmtime_wasi_http::Error::DestinationIpProhibited)
            ),
            "{refused:?}"
        );
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);

        let named = format!("127.0.0.1:{port}");
        assert_eq!(
            get(&mut gate(&["*", named.as_str()]), &url).await.unwrap(),
            200
        );
        let by_name = format!("localhost:{port}");
        assert_eq!(
            get(
                &mut gate(&[by_name.as_str()]),
                &format!("http://localhost:{port}/")
            )
            .await
            .unwrap(),
            200
        );
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);

        // https goes through TLS, verified against the URL's host name: this server speaks
        // plain HTTP, so the handshake fails (and does not panic for want of a provider).
        let tls = get(
            &mut gate(&[by_name.as_str()]),
            &format!("https://localhost:{port}/"),
        )
        .await;
        assert!(
            matches!(tls, Err(wasmtime_wasi_http::Error::Tls(_))),
            "{tls:?}"
        );
    }
}
