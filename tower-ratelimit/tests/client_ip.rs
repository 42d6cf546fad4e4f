//! Client addresses from arbitrary forwarding headers: never a panic, never a key the sender could choose freely.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use tower_ratelimit::ClientIpConfig;

fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        "[0-9a-f:.\\[\\], ;=\"forFOR_-]{0,200}".prop_map(String::into_bytes),
        prop::collection::vec(
            prop_oneof![
                Just("10.0.0.7".to_owned()),
                Just("198.51.100.4".to_owned()),
                Just("2001:db8::1".to_owned()),
                Just("garbage".to_owned()),
                Just("for=10.1.1.1".to_owned()),
                Just("for=\"[2001:db8::9]:80\"".to_owned()),
            ],
            0..40
        )
        .prop_map(|hops| hops.join(", ").into_bytes()),
    ]
}

fn headers(xff: &[u8], forwarded: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(xff) {
        map.append("x-forwarded-for", v);
    }
    if let Ok(v) = HeaderValue::from_bytes(forwarded) {
        map.append("forwarded", v);
    }
    map
}

proptest! {
    #[test]
    fn untrusted_peers_are_keyed_by_their_own_address(xff in header_bytes(), fwd in header_bytes()) {
        let config = ClientIpConfig::new().trust(["10.0.0.0/8"]).unwrap();
        let peer: IpAddr = "203.0.113.5".parse().unwrap();
        prop_assert_eq!(config.client_ip(peer, &headers(&xff, &fwd)), peer);
    }

    #[test]
    fn trusted_peers_yield_the_peer_a_trusted_hop_or_an_address_written_in_the_headers(
        xff in header_bytes(),
        fwd in header_bytes(),
    ) {
        let config = ClientIpConfig::new().trust(["10.0.0.0/8"]).unwrap().ipv6_prefix(128);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let map = headers(&xff, &fwd);
        let ip = config.client_ip(peer, &map);
        let text: String = map.iter().filter_map(|(_, v)| v.to_str().ok()).collect::<Vec<_>>().join(" ");
        let written: Vec<IpAddr> = text
            .split(|c: char| ", ;=\"[]".contains(c))
            .filter_map(|token| {
                token
                    .parse::<IpAddr>()
                    .ok()
                    .or_else(|| token.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
                    .map(|ip| ip.to_canonical())
            })
            .collect();
        prop_assert!(ip == peer || written.contains(&ip), "{ip} from headers {text:?}");
    }
}
