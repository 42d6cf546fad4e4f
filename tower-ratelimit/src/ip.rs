//! The client address a request is counted against: the peer, or what trusted proxies say.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::{Extensions, HeaderMap};
use ipnet::IpNet;

use crate::error::ConfigError;

/// Hops of a forwarding header looked at, at most; beyond them the left-most one looked at is used.
const MAX_HOPS: usize = 32;

/// The peer address of a connection, as a server puts it into request extensions.
///
/// The layer looks for this, then for `std::net::SocketAddr`, then (feature `axum`) for axum's
/// `ConnectInfo<SocketAddr>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// How the client address is found: which proxies are believed and how IPv6 addresses are grouped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIpConfig {
    trusted: Vec<IpNet>,
    ipv6_prefix: u8,
}

impl Default for ClientIpConfig {
    fn default() -> Self {
        Self {
            trusted: Vec::new(),
            ipv6_prefix: 64,
        }
    }
}

impl ClientIpConfig {
    /// No trusted proxies; IPv6 clients keyed by their /64.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Proxies whose `Forwarded` / `X-Forwarded-For` are believed, as CIDRs or addresses (`10.0.0.0/8`,
    /// `192.0.2.7`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidNetwork`] for an entry that is neither.
    pub fn trust<I, S>(mut self, proxies: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for proxy in proxies {
            self.trusted.push(parse_net(proxy.as_ref())?);
        }
        Ok(self)
    }

    /// The prefix length IPv6 clients are keyed by (default 64; 128 keys each address).
    #[must_use]
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits.min(128);
        self
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The key address for a request from `peer`: the peer itself unless it is a trusted proxy, then the
    /// right-most hop of `Forwarded` (or, when absent, `X-Forwarded-For`) that is not a trusted proxy. A hop that
    /// does not parse stops the walk at the nearest trusted hop, so a malformed header groups its senders under
    /// that proxy rather than minting keys. IPv6 results are cut to the configured prefix.
    #[must_use]
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        let ip = if self.trusted.is_empty() || !self.is_trusted(peer) {
            peer
        } else {
            self.walk(peer, headers)
        };
        self.group(ip)
    }

    /// Cuts an IPv6 address to the configured prefix; IPv4 addresses are kept whole.
    #[must_use]
    pub fn group(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let bits = u32::from(self.ipv6_prefix);
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
            v4 => v4,
        }
    }

    fn walk(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let forwarded = headers.get_all(http::header::FORWARDED);
        let mut last_trusted = peer;
        let mut seen = 0;
        if forwarded.iter().next().is_some() {
            for value in forwarded.iter().rev() {
                let Ok(text) = value.to_str() else {
                    return last_trusted;
                };
                for element in text.rsplit(',') {
                    seen += 1;
                    if seen > MAX_HOPS {
                        return last_trusted;
                    }
                    let Some(ip) = forwarded_for(element) else {
                        return last_trusted;
                    };
                    if !self.is_trusted(ip) {
                        return ip;
                    }
                    last_trusted = ip;
                }
            }
            return last_trusted;
        }
        for value in headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(text) = value.to_str() else {
                return last_trusted;
            };
            for hop in text.rsplit(',') {
                seen += 1;
                if seen > MAX_HOPS {
                    return last_trusted;
                }
                let Some(ip) = parse_hop(hop.trim()) else {
                    return last_trusted;
                };
                if !self.is_trusted(ip) {
                    return ip;
                }
                last_trusted = ip;
            }
        }
        last_trusted
    }
}

/// The address of a `Forwarded` element's `for=` parameter (RFC 7239 section 5.2).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        parse_hop(value.trim().trim_matches('"'))
    })
}

/// An address, `v4:port`, `[v6]` or `[v6]:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if hop.len() > 64 {
        return None;
    }
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let end = rest.find(']')?;
        return rest[..end]
            .parse::<Ipv6Addr>()
            .ok()
            .map(|v6| IpAddr::V6(v6).to_canonical());
    }
    hop.parse::<SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

fn parse_net(text: &str) -> Result<IpNet, ConfigError> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| ConfigError::InvalidNetwork(text.into()))
}

/// Networks that skip the per-address limits, and keys (user ids) that skip the per-user ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    networks: Vec<IpNet>,
    keys: Vec<String>,
}

impl AllowList {
    /// An empty allow-list.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds networks (`10.0.0.0/8`) or single addresses.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidNetwork`] for an entry that is neither.
    pub fn networks<I, S>(mut self, networks: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for net in networks {
            self.networks.push(parse_net(net.as_ref())?);
        }
        Ok(self)
    }

    /// Adds keys (user ids).
    #[must_use]
    pub fn keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.keys.extend(keys.into_iter().map(Into::into));
        self
    }

    /// Whether `ip` is in an allow-listed network.
    #[must_use]
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// Whether `key` is allow-listed.
    #[must_use]
    pub fn contains_key(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }

    /// Whether nothing is allow-listed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.keys.is_empty()
    }
}

/// The peer address found in request extensions.
pub(crate) fn peer_addr(extensions: &Extensions) -> Option<IpAddr> {
    if let Some(PeerAddr(addr)) = extensions.get::<PeerAddr>() {
        return Some(addr.ip());
    }
    if let Some(addr) = extensions.get::<SocketAddr>() {
        return Some(addr.ip());
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) =
        extensions.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(addr.ip());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
        let config = ClientIpConfig::new().trust(["10.0.0.0/8"]).unwrap();
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(config.client_ip(peer, &h), peer);
    }

    #[test]
    fn right_most_untrusted_hop_is_the_client() {
        let config = ClientIpConfig::new().trust(["10.0.0.0/8"]).unwrap();
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")]);
        assert_eq!(
            config.client_ip(peer, &h),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::1]:4711\";proto=https, for=10.1.1.1",
        )]);
        assert_eq!(
            config.client_ip(peer, &h),
            "2001:db8::".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_malformed_hop_stops_at_the_nearest_trusted_proxy() {
        let config = ClientIpConfig::new().trust(["10.0.0.0/8"]).unwrap();
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "1.1.1.1, garbage, 10.0.0.2")]);
        assert_eq!(
            config.client_ip(peer, &h),
            "10.0.0.2".parse::<IpAddr>().unwrap()
        );
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        assert_eq!(config.client_ip(peer, &h), peer);
    }

    #[test]
    fn ipv6_clients_share_their_prefix() {
        let config = ClientIpConfig::new();
        let a = config.client_ip("2001:db8:1:2:aaaa::1".parse().unwrap(), &HeaderMap::new());
        let b = config.client_ip("2001:db8:1:2:bbbb::9".parse().unwrap(), &HeaderMap::new());
        assert_eq!(a, b);
        let mapped = config.client_ip("::ffff:192.0.2.1".parse().unwrap(), &HeaderMap::new());
        assert_eq!(mapped, "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
