//! What the edge learns about a request from its headers: the request id (echoed or
//! made), the trace id of the caller's tracing system, and the client's address behind
//! trusted proxies.

use std::net::{IpAddr, SocketAddr};

use hyper::header::{HeaderMap, HeaderValue};

use crate::config::TrustedProxies;

/// The request id header, echoed on every response.
pub const REQUEST_ID: &str = "x-request-id";

/// The longest client-supplied request id that is echoed rather than replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The request's id: the client's `X-Request-Id` when it is a reasonable token, else a
/// fresh UUID v4.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= MAX_REQUEST_ID_LEN && b.iter().all(|c| c.is_ascii_graphic())
        {
            return v.clone();
        }
    }
    let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let s = id.hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(s).expect("a hyphenated UUID is a valid header value")
}

/// The trace id to log: W3C `traceparent`'s trace id, else the `Root` of AWS's
/// `X-Amzn-Trace-Id` (which an ALB adds to every request).
pub fn trace_id(headers: &HeaderMap) -> Option<&str> {
    if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        // version "-" trace-id(32 hex) "-" parent-id(16 hex) "-" flags
        let mut parts = tp.split('-');
        if let (Some(_version), Some(id)) = (parts.next(), parts.next()) {
            if id.len() == 32
                && id.bytes().all(|c| c.is_ascii_hexdigit())
                && id.bytes().any(|c| c != b'0')
            {
                return Some(id);
            }
        }
    }
    let amzn = headers.get("x-amzn-trace-id")?.to_str().ok()?;
    amzn.split(';')
        .find_map(|field| field.trim().strip_prefix("Root="))
        .filter(|root| !root.is_empty() && root.len() <= 64)
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the
/// right-most `X-Forwarded-For` hop that is not a trusted proxy (each proxy appends the
/// address it saw, so hops left of the first untrusted one could be forged by the
/// client). When every hop is trusted, the left-most one.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer_ip = peer.ip().to_canonical();
    if trusted.is_empty() || !trusted.contains(peer_ip) {
        return peer_ip;
    }
    // Several X-Forwarded-For headers form one list, in order.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer_ip;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                let ip = ip.to_canonical();
                client = ip;
                if !trusted.contains(ip) {
                    break;
                }
            }
            // A hop we cannot read ends what we can believe.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn trusted(cidrs: &str) -> TrustedProxies {
        // Parse through the real config path so tests cover what operators type.
        let cli =
            crate::config::Cli::try_parse_from(["streamhub", "--trusted-proxies", cidrs]).unwrap();
        match cli.into_command() {
            crate::config::Command::Serve(c) => c.trusted_proxies.clone(),
            _ => unreachable!("no subcommand was given"),
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn request_id_is_echoed_when_sane_and_made_otherwise() {
        let h = headers(&[(REQUEST_ID, "abc-123")]);
        assert_eq!(request_id(&h), "abc-123");
        let made = request_id(&headers(&[(REQUEST_ID, "has space")]));
        assert_eq!(made.len(), 36);
        let made2 = request_id(&HeaderMap::new());
        assert_ne!(made, made2);
        assert_eq!(made2.as_bytes()[14], b'4', "UUID version 4");
        let long: &'static str = Box::leak("x".repeat(200).into_boxed_str());
        assert_eq!(request_id(&headers(&[(REQUEST_ID, long)])).len(), 36);
    }

    #[test]
    fn trace_id_prefers_traceparent_then_amzn_root() {
        let h = headers(&[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "x-amzn-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            ),
        ]);
        assert_eq!(trace_id(&h), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        let h = headers(&[(
            "x-amzn-trace-id",
            "Self=1-67891234-12456789abcdef012345678;Root=1-5759e988-bd862e3fe1be46a994272793",
        )]);
        assert_eq!(trace_id(&h), Some("1-5759e988-bd862e3fe1be46a994272793"));
        let h = headers(&[(
            "traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        )]);
        assert_eq!(trace_id(&h), None);
        assert_eq!(trace_id(&HeaderMap::new()), None);
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let peer: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(client_ip(peer, &h, &trusted("")), peer.ip());
        assert_eq!(client_ip(peer, &h, &trusted("10.0.0.0/8")), peer.ip());
    }

    #[test]
    fn right_most_untrusted_hop_wins_behind_trusted_proxies() {
        let peer: SocketAddr = "10.0.1.5:5000".parse().unwrap();
        let t = trusted("10.0.0.0/8");
        // The client forged "6.6.6.6"; the ALB appended the address it saw.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7")]);
        assert_eq!(
            client_ip(peer, &h, &t),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // A chain of trusted proxies is skipped.
        let h = headers(&[("x-forwarded-for", "198.51.100.7, 10.0.2.2")]);
        assert_eq!(
            client_ip(peer, &h, &t),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // Several headers are one list.
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-for", "10.0.2.2"),
        ]);
        assert_eq!(
            client_ip(peer, &h, &t),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // Garbage stops the walk at the last address we could believe.
        let h = headers(&[("x-forwarded-for", "198.51.100.7, garbage, 10.0.2.2")]);
        assert_eq!(
            client_ip(peer, &h, &t),
            "10.0.2.2".parse::<IpAddr>().unwrap()
        );
        // No header: the peer itself.
        assert_eq!(client_ip(peer, &HeaderMap::new(), &t), peer.ip());
    }
}
