//! The client's address and API key, as read from a request.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// The API key of a request: `Authorization: Bearer <key>` or `x-api-key: <key>`.
pub fn api_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let token = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if token.is_some() {
            return token;
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The client address: the peer, or, when the peer is a trusted proxy, the
/// right-most address of `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer_ip = canonical(peer.ip());
    if trusted.is_empty() || !trusted.iter().any(|n| n.contains(&peer_ip)) {
        return peer_ip;
    }
    let mut chosen = peer_ip;
    for value in headers.get_all("x-forwarded-for") {
        let Ok(s) = value.to_str() else {
            return peer_ip;
        };
        for part in s.split(',').rev() {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    let ip = canonical(ip);
                    chosen = ip;
                    if !trusted.iter().any(|n| n.contains(&ip)) {
                        return ip;
                    }
                }
                Err(_) => return chosen,
            }
        }
    }
    chosen
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn key_from_either_header() {
        assert_eq!(
            api_key(&headers(&[("authorization", "Bearer abc")])),
            Some("abc")
        );
        assert_eq!(api_key(&headers(&[("x-api-key", "xyz")])), Some("xyz"));
        assert_eq!(
            api_key(&headers(&[
                ("authorization", "Basic abc"),
                ("x-api-key", "k")
            ])),
            Some("k")
        );
        assert_eq!(api_key(&headers(&[("authorization", "Bearer ")])), None);
        assert_eq!(api_key(&HeaderMap::new()), None);
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let peer: SocketAddr = "10.0.0.5:1234".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 10.0.0.7")]);
        assert_eq!(
            client_ip(peer, &h, &[]),
            "10.0.0.5".parse::<IpAddr>().unwrap()
        );
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(peer, &h, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:1".parse().unwrap();
        assert_eq!(
            client_ip(mapped, &h, &[]),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }
}
