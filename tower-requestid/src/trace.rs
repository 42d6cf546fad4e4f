//! W3C Trace Context: `traceparent` and `tracestate`, parsed exactly as Level 1 (REC, 23 Nov 2021) says.
//!
//! Plain types with no tower in their signatures; the layers in this crate use them, and so can anyone.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::rng;

/// The `traceparent` header name (lowercase, as the spec asks senders to write it).
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The `tracestate` header name.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// A 16-byte trace id, never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

impl TraceId {
    /// The id from its bytes, or `None` for the all-zero id (invalid per W3C Trace Context 3.2.2.3).
    #[must_use]
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        (bytes != [0; 16]).then_some(Self(bytes))
    }

    /// The raw bytes.
    #[must_use]
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// A fresh random id from the thread-local generator.
    #[must_use]
    pub fn random() -> Self {
        loop {
            let bytes = rng::next_u128().to_be_bytes();
            if let Some(id) = Self::from_bytes(bytes) {
                return id;
            }
        }
    }
}

/// An 8-byte span id (the `parent-id` of a `traceparent`), never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId([u8; 8]);

impl SpanId {
    /// The id from its bytes, or `None` for the all-zero id (invalid per W3C Trace Context 3.2.2.4).
    #[must_use]
    pub fn from_bytes(bytes: [u8; 8]) -> Option<Self> {
        (bytes != [0; 8]).then_some(Self(bytes))
    }

    /// The raw bytes.
    #[must_use]
    pub fn to_bytes(self) -> [u8; 8] {
        self.0
    }

    /// A fresh random id from the thread-local generator.
    #[must_use]
    pub fn random() -> Self {
        loop {
            if let Some(id) = Self::from_bytes(rng::next_u64().to_be_bytes()) {
                return id;
            }
        }
    }
}

macro_rules! lower_hex_display {
    ($ty:ty) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut buf = [0u8; 32];
                let hex = encode_hex(&self.0, &mut buf);
                f.write_str(hex)
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}
lower_hex_display!(TraceId);
lower_hex_display!(SpanId);

/// The `trace-flags` byte, with only the bits this crate knows kept.
///
/// Known bits: `0x01` sampled (Level 1) and `0x02` random trace id (Level 2). Every other bit is cleared when
/// parsed, so it is never passed on (Level 1 3.2.2.5: "vendors MUST set those to zero").
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceFlags(u8);

impl TraceFlags {
    /// `0x01`: the caller may have recorded its span.
    pub const SAMPLED: Self = Self(0x01);
    /// `0x02` (Level 2): the right-most 7 bytes of the trace id are random.
    pub const RANDOM: Self = Self(0x02);
    const KNOWN: u8 = 0x03;

    /// Flags from a byte, unknown bits cleared.
    #[must_use]
    pub const fn new(bits: u8) -> Self {
        Self(bits & Self::KNOWN)
    }

    /// The byte.
    #[must_use]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether the sampled bit is set (tested with a mask, as the spec asks).
    #[must_use]
    pub const fn is_sampled(self) -> bool {
        self.0 & Self::SAMPLED.0 != 0
    }

    /// These flags with `other`'s bits set too.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl fmt::Debug for TraceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}", self.0)
    }
}

/// Why a `traceparent` value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidTraceParent {
    /// Shorter than 55 bytes, or a version `00` header longer than 55.
    #[error("traceparent has the wrong length")]
    Length,
    /// The version is not two lowercase hex digits, or is `ff`.
    #[error("traceparent version is invalid")]
    Version,
    /// A `-` is missing where the grammar puts one (or, for a higher version, after the flags).
    #[error("traceparent is missing a separator")]
    Separator,
    /// The trace id is not 32 lowercase hex digits, or is all zeros.
    #[error("traceparent trace-id is invalid")]
    TraceId,
    /// The parent id is not 16 lowercase hex digits, or is all zeros.
    #[error("traceparent parent-id is invalid")]
    ParentId,
    /// The flags are not two lowercase hex digits.
    #[error("traceparent trace-flags are invalid")]
    Flags,
}

/// A parsed `traceparent`: `00-<trace-id>-<parent-id>-<trace-flags>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace this request belongs to.
    pub trace_id: TraceId,
    /// The caller's span.
    pub parent_id: SpanId,
    /// Flags, unknown bits cleared.
    pub flags: TraceFlags,
}

impl TraceParent {
    /// The length of a version `00` header.
    pub const LEN: usize = 55;

    /// Parses a header value.
    ///
    /// Version `00` must be exactly 55 bytes. A higher version (not `ff`) is read by its first 55 bytes, which
    /// must be followed by the end or a `-` (W3C Trace Context Level 1, "Versioning of traceparent"); its extra
    /// fields are never interpreted, and the result is written back as version `00`. Hex must be lowercase.
    ///
    /// # Errors
    ///
    /// [`InvalidTraceParent`] names the first rule the value breaks.
    pub fn parse(value: &[u8]) -> Result<Self, InvalidTraceParent> {
        if value.len() < Self::LEN {
            return Err(InvalidTraceParent::Length);
        }
        let version = hex_byte(value[0], value[1]).ok_or(InvalidTraceParent::Version)?;
        if version == 0xff {
            return Err(InvalidTraceParent::Version);
        }
        if version == 0 && value.len() != Self::LEN {
            return Err(InvalidTraceParent::Length);
        }
        if version != 0 && value.len() > Self::LEN && value[Self::LEN] != b'-' {
            return Err(InvalidTraceParent::Separator);
        }
        if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
            return Err(InvalidTraceParent::Separator);
        }
        let mut trace = [0u8; 16];
        decode_hex(&value[3..35], &mut trace).ok_or(InvalidTraceParent::TraceId)?;
        let trace_id = TraceId::from_bytes(trace).ok_or(InvalidTraceParent::TraceId)?;
        let mut parent = [0u8; 8];
        decode_hex(&value[36..52], &mut parent).ok_or(InvalidTraceParent::ParentId)?;
        let parent_id = SpanId::from_bytes(parent).ok_or(InvalidTraceParent::ParentId)?;
        let flags = hex_byte(value[53], value[54]).ok_or(InvalidTraceParent::Flags)?;
        Ok(Self {
            trace_id,
            parent_id,
            flags: TraceFlags::new(flags),
        })
    }

    /// The version `00` header text (55 bytes).
    #[must_use]
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[0] = b'0';
        out[1] = b'0';
        out[2] = b'-';
        encode_hex_into(&self.trace_id.0, &mut out[3..35]);
        out[35] = b'-';
        encode_hex_into(&self.parent_id.0, &mut out[36..52]);
        out[52] = b'-';
        encode_hex_into(&[self.flags.0], &mut out[53..55]);
        out
    }

    /// The version `00` header value.
    #[must_use]
    pub fn to_header_value(&self) -> HeaderValue {
        // The encoding is lowercase hex and dashes only, always a valid header value.
        HeaderValue::from_bytes(&self.encode()).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.encode();
        // ASCII by construction.
        f.write_str(std::str::from_utf8(&bytes).map_err(|_| fmt::Error)?)
    }
}

/// Checks a combined `tracestate` value against the Level 1 grammar: at most 32 list members, each
/// `key=value` (or empty), keys valid and not repeated, values of 1 to 256 printable characters without `,`
/// or `=` that do not end in a space.
#[must_use]
pub fn is_valid_tracestate(value: &[u8]) -> bool {
    let mut keys: [&[u8]; 32] = [&[]; 32];
    let mut count = 0usize;
    for member in value.split(|&b| b == b',') {
        let member = trim_ows(member);
        if member.is_empty() {
            continue;
        }
        let Some(eq) = member.iter().position(|&b| b == b'=') else {
            return false;
        };
        let (key, val) = (&member[..eq], &member[eq + 1..]);
        if !is_valid_tracestate_key(key) || !is_valid_tracestate_value(val) {
            return false;
        }
        if count == keys.len() || keys[..count].contains(&key) {
            return false;
        }
        keys[count] = key;
        count += 1;
    }
    true
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
}

fn is_valid_tracestate_key(key: &[u8]) -> bool {
    match key.iter().position(|&b| b == b'@') {
        None => {
            // simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
            matches!(key.first(), Some(b) if b.is_ascii_lowercase())
                && key.len() <= 256
                && key.iter().all(|&b| is_key_char(b))
        }
        Some(at) => {
            // multi-tenant-key = tenant-id "@" system-id
            let (tenant, system) = (&key[..at], &key[at + 1..]);
            matches!(tenant.first(), Some(b) if b.is_ascii_lowercase() || b.is_ascii_digit())
                && tenant.len() <= 241
                && tenant.iter().all(|&b| is_key_char(b))
                && matches!(system.first(), Some(b) if b.is_ascii_lowercase())
                && system.len() <= 14
                && system.iter().all(|&b| is_key_char(b))
        }
    }
}

fn is_valid_tracestate_value(value: &[u8]) -> bool {
    // value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
    let nblk = |b: u8| (0x21..=0x7e).contains(&b) && b != b',' && b != b'=';
    !value.is_empty()
        && value.len() <= 256
        && value.iter().all(|&b| b == b' ' || nblk(b))
        && value.last().is_some_and(|&b| nblk(b))
}

/// The trace context of one request: the caller's (when it sent a valid `traceparent`) or a new trace, and
/// the id of this service's span, which becomes the `parent-id` of every outbound call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: TraceId,
    span_id: SpanId,
    parent_id: Option<SpanId>,
    flags: TraceFlags,
    // Boxed: most requests have none, and it keeps the context small where it is copied (the extension, each
    // `RequestContext::current`).
    tracestate: Option<Box<HeaderValue>>,
}

impl TraceContext {
    /// A new trace started here: random trace and span ids, flags `sampled | random`.
    #[must_use]
    pub fn new_root() -> Self {
        Self {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            parent_id: None,
            flags: TraceFlags::SAMPLED.union(TraceFlags::RANDOM),
            tracestate: None,
        }
    }

    /// The context continuing the caller's trace, with a fresh span id for this hop.
    #[must_use]
    pub fn child_of(parent: TraceParent, tracestate: Option<HeaderValue>) -> Self {
        Self {
            trace_id: parent.trace_id,
            span_id: SpanId::random(),
            parent_id: Some(parent.parent_id),
            flags: parent.flags,
            tracestate: tracestate.map(Box::new),
        }
    }

    /// Reads `traceparent` and `tracestate` from request headers.
    ///
    /// Returns `None` when there is no `traceparent`, more than one, or an invalid one (the Processing Model
    /// then starts a new trace and drops `tracestate`). `tracestate` lines are combined and kept only when
    /// they follow the grammar; an invalid `tracestate` never affects `traceparent`.
    #[must_use]
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(&TRACEPARENT).iter();
        let first = values.next()?;
        if values.next().is_some() {
            return None;
        }
        let parent = TraceParent::parse(first.as_bytes()).ok()?;
        Some(Self::child_of(parent, combined_tracestate(headers)))
    }

    /// The trace id.
    #[must_use]
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// This service's span id for the request (the `parent-id` sent upstream).
    #[must_use]
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The caller's span id, when the trace came from the caller.
    #[must_use]
    pub fn parent_id(&self) -> Option<SpanId> {
        self.parent_id
    }

    /// The flags (unknown bits cleared).
    #[must_use]
    pub fn flags(&self) -> TraceFlags {
        self.flags
    }

    /// The caller's `tracestate`, when valid.
    #[must_use]
    pub fn tracestate(&self) -> Option<&HeaderValue> {
        self.tracestate.as_deref()
    }

    /// The `traceparent` to send on an outbound call: this trace, this service's span as the parent.
    #[must_use]
    pub fn outbound_traceparent(&self) -> TraceParent {
        TraceParent {
            trace_id: self.trace_id,
            parent_id: self.span_id,
            flags: self.flags,
        }
    }

    #[cfg_attr(not(feature = "opentelemetry"), allow(dead_code))]
    pub(crate) fn set_ids(&mut self, trace_id: TraceId, span_id: SpanId, flags: TraceFlags) {
        self.trace_id = trace_id;
        self.span_id = span_id;
        self.flags = flags;
    }
}

fn combined_tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all(&TRACESTATE).iter();
    let first = values.next()?;
    let value = match values.next() {
        None => first.clone(),
        Some(second) => {
            // HTTP field-order combination (RFC 9110 5.3): join the lines with commas.
            let mut joined = Vec::with_capacity(first.len() + second.len() + 1);
            joined.extend_from_slice(first.as_bytes());
            for line in std::iter::once(second).chain(values) {
                joined.push(b',');
                joined.extend_from_slice(line.as_bytes());
            }
            HeaderValue::from_bytes(&joined).ok()?
        }
    };
    is_valid_tracestate(value.as_bytes()).then_some(value)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_nibble(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    Some((hex_nibble(hi)? << 4) | hex_nibble(lo)?)
}

fn decode_hex(src: &[u8], out: &mut [u8]) -> Option<()> {
    for (pair, byte) in src.chunks_exact(2).zip(out.iter_mut()) {
        *byte = hex_byte(pair[0], pair[1])?;
    }
    Some(())
}

pub(crate) fn encode_hex_into(src: &[u8], out: &mut [u8]) {
    for (byte, pair) in src.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
}

fn encode_hex<'a>(src: &[u8], buf: &'a mut [u8; 32]) -> &'a str {
    let len = src.len() * 2;
    encode_hex_into(src, &mut buf[..len]);
    std::str::from_utf8(&buf[..len]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn spec_example_round_trips() {
        let parsed = TraceParent::parse(VALID.as_bytes()).unwrap();
        assert_eq!(parsed.to_string(), VALID);
        assert!(parsed.flags.is_sampled());
        assert_eq!(
            parsed.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(parsed.parent_id.to_string(), "00f067aa0ba902b7");
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what-the-future-will-be-like",
        ] {
            assert!(
                TraceParent::parse(bad.as_bytes()).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn higher_version_is_read_by_its_first_55_bytes_and_written_as_00() {
        for ok in [
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
        ] {
            let parsed = TraceParent::parse(ok.as_bytes()).unwrap();
            assert_eq!(parsed.to_string(), VALID);
        }
    }

    #[test]
    fn unknown_flag_bits_are_cleared() {
        let parsed =
            TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff").unwrap();
        assert_eq!(parsed.flags.bits(), 0x03);
        let parsed =
            TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-08").unwrap();
        assert!(!parsed.flags.is_sampled());
        assert!(parsed.to_string().ends_with("-00"));
    }

    #[test]
    fn tracestate_grammar() {
        assert!(is_valid_tracestate(
            b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
        ));
        assert!(is_valid_tracestate(
            b"rojo=00f067aa0ba902b7 , ,congo=t61rcWkgMzE"
        ));
        assert!(is_valid_tracestate(b"tenant1@vendor=x"));
        assert!(!is_valid_tracestate(b"rojo=1,rojo=2"), "duplicated key");
        assert!(!is_valid_tracestate(b"Rojo=1"), "uppercase key");
        assert!(!is_valid_tracestate(b"rojo="), "empty value");
        assert!(!is_valid_tracestate(b"rojo"), "no equals sign");
        assert!(!is_valid_tracestate(b"rojo=a=b"), "equals in value");
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert!(
            !is_valid_tracestate(many.join(",").as_bytes()),
            "33 members"
        );
        assert!(
            is_valid_tracestate(many[..32].join(",").as_bytes()),
            "32 members"
        );
    }

    #[test]
    fn tracestate_length_limits() {
        let a = |n: usize| "a".repeat(n);
        let ok = |s: String| is_valid_tracestate(s.as_bytes());
        // simple-key: 1 to 256 characters; value: 1 to 256 characters, the last not a space.
        assert!(ok(format!("{}=v", a(256))));
        assert!(!ok(format!("{}=v", a(257))));
        assert!(ok(format!("k={}", a(256))));
        assert!(!ok(format!("k={}", a(257))));
        assert!(ok("k= v".to_owned()), "a value may start with a space");
        assert!(
            ok("k=v ,j=w".to_owned()),
            "spaces around a member are list whitespace"
        );
        assert!(
            !ok(format!("k=v{}", '\u{7f}')),
            "DEL is not a value character"
        );
        // multi-tenant-key: tenant 1 to 241 characters (may start with a digit), system 1 to 14.
        assert!(ok(format!("{}@{}=v", a(241), a(14))));
        assert!(!ok(format!("{}@{}=v", a(242), a(14))));
        assert!(!ok(format!("{}@{}=v", a(241), a(15))));
        assert!(ok("1tenant@vendor=v".to_owned()));
        assert!(
            !ok("tenant@1vendor=v".to_owned()),
            "the system id starts with a letter"
        );
        assert!(!ok("@vendor=v".to_owned()) && !ok("tenant@=v".to_owned()));
    }

    #[test]
    fn context_from_headers_follows_the_processing_model() {
        let mut headers = HeaderMap::new();
        assert!(TraceContext::from_headers(&headers).is_none());
        headers.insert(TRACEPARENT, HeaderValue::from_static(VALID));
        headers.append(TRACESTATE, HeaderValue::from_static("rojo=1"));
        headers.append(TRACESTATE, HeaderValue::from_static("congo=2"));
        let ctx = TraceContext::from_headers(&headers).unwrap();
        assert_eq!(ctx.tracestate().unwrap(), "rojo=1,congo=2");
        assert_eq!(ctx.parent_id().unwrap().to_string(), "00f067aa0ba902b7");
        assert_ne!(ctx.span_id(), ctx.parent_id().unwrap());
        let out = ctx.outbound_traceparent().to_string();
        assert!(out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(
            !out.contains("00f067aa0ba902b7"),
            "the parent id changes on every hop"
        );

        headers.append(TRACEPARENT, HeaderValue::from_static(VALID));
        assert!(
            TraceContext::from_headers(&headers).is_none(),
            "two traceparent lines are invalid"
        );

        headers.insert(TRACEPARENT, HeaderValue::from_static(VALID));
        headers.insert(TRACESTATE, HeaderValue::from_static("rojo=1,rojo=2"));
        let ctx = TraceContext::from_headers(&headers).unwrap();
        assert!(
            ctx.tracestate().is_none(),
            "an invalid tracestate is dropped, traceparent kept"
        );
    }
}
