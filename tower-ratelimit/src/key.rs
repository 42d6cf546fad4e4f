//! Keys that limits are counted per: a user id, a client address, any string or number.

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

/// What a limit is counted per. Different kinds never share a count (`Key::Id(1)` is not `Key::Str("1")`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// A string, such as a user id or an account name.
    Str(&'a str),
    /// Raw bytes.
    Bytes(&'a [u8]),
    /// A client address (already reduced to its prefix, for IPv6, by the key extractor).
    Ip(IpAddr),
    /// A number.
    Id(u64),
}

impl Hash for Key<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Key::Str(s) => {
                state.write_u8(0);
                state.write(s.as_bytes());
                state.write_u8(0xff);
            }
            Key::Bytes(b) => {
                state.write_u8(1);
                state.write_usize(b.len());
                state.write(b);
            }
            Key::Ip(IpAddr::V4(v4)) => {
                state.write_u8(2);
                state.write_u32(u32::from(*v4));
            }
            Key::Ip(IpAddr::V6(v6)) => {
                state.write_u8(3);
                state.write_u128(u128::from(*v6));
            }
            Key::Id(n) => {
                state.write_u8(4);
                state.write_u64(*n);
            }
        }
    }
}

impl Key<'_> {
    /// Appends this key's text form, unique per kind, to `out` (used for Redis keys).
    pub fn write_to(&self, out: &mut String) {
        match self {
            Key::Str(s) => {
                out.push_str("s:");
                out.push_str(s);
            }
            Key::Bytes(b) => {
                out.push_str("b:");
                for byte in *b {
                    let _ = write!(out, "{byte:02x}");
                }
            }
            Key::Ip(ip) => {
                let _ = write!(out, "ip:{ip}");
            }
            Key::Id(n) => {
                let _ = write!(out, "n:{n}");
            }
        }
    }

    /// Whether this is an address (so an allow-list of addresses applies to it).
    #[must_use]
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Key::Ip(ip) => Some(*ip),
            _ => None,
        }
    }
}

impl<'a> From<&'a str> for Key<'a> {
    fn from(s: &'a str) -> Self {
        Key::Str(s)
    }
}

impl<'a> From<&'a String> for Key<'a> {
    fn from(s: &'a String) -> Self {
        Key::Str(s)
    }
}

impl From<IpAddr> for Key<'_> {
    fn from(ip: IpAddr) -> Self {
        Key::Ip(ip)
    }
}

impl From<u64> for Key<'_> {
    fn from(n: u64) -> Self {
        Key::Id(n)
    }
}
