//! The request id type, the rule for incoming ids, and the generators (UUIDv7, UUIDv4, ULID).

use std::fmt;
use std::str::FromStr;

use http::HeaderValue;

use crate::rng;

/// The longest incoming id the default rule keeps.
pub const MAX_LEN: usize = 128;

/// One byte of `[A-Za-z0-9._:-]`, without branches.
const fn is_id_byte(b: u8) -> bool {
    ((b | 0x20).wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'.')
        | (b == b'_')
        | (b == b':')
        | (b == b'-')
}

/// [`is_id_byte`] for every byte value: one load per byte of an incoming id.
static ID_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        #[allow(clippy::cast_possible_truncation)] // b < 256
        let byte = b as u8;
        table[b] = is_id_byte(byte);
        b += 1;
    }
    table
};

/// A request id: printable ASCII, cheap to clone (it shares the header's bytes).
///
/// The layer puts one into every request's extensions; `Display` writes the id as sent on the wire.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(HeaderValue);

/// An id that the rule refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid request id: expected 1 to 128 characters of A-Z a-z 0-9 . _ : -")]
#[non_exhaustive]
pub struct InvalidRequestId;

impl RequestId {
    /// The default rule for incoming ids: 1 to 128 characters of `[A-Za-z0-9._:-]`.
    ///
    /// Everything else (empty, too long, spaces, control characters, CR/LF, non-ASCII bytes, `/`, quotes) is
    /// refused, so an id is always safe to put in a log line, a file name, a URL or a SQL comment.
    #[must_use]
    pub fn is_valid(bytes: &[u8]) -> bool {
        !bytes.is_empty()
            && bytes.len() <= MAX_LEN
            && bytes
                .iter()
                .fold(true, |ok, &b| ok & ID_BYTES[usize::from(b)])
    }

    /// An id from a header value, checked with [`RequestId::is_valid`].
    ///
    /// # Errors
    ///
    /// [`InvalidRequestId`] when the value breaks the rule.
    pub fn from_header_value(value: HeaderValue) -> Result<Self, InvalidRequestId> {
        if Self::is_valid(value.as_bytes()) {
            Ok(Self(value))
        } else {
            Err(InvalidRequestId)
        }
    }

    /// An id from a header value that passed [`RequestId::is_valid`].
    pub(crate) fn from_valid(value: &HeaderValue) -> Self {
        Self(value.clone())
    }

    /// An id from a header value checked by a custom rule; the value must also be printable ASCII.
    pub(crate) fn from_header_value_with(
        value: &HeaderValue,
        rule: fn(&[u8]) -> bool,
    ) -> Option<Self> {
        let bytes = value.as_bytes();
        (bytes.iter().all(|&b| (0x20..0x7f).contains(&b)) && rule(bytes))
            .then(|| Self(value.clone()))
    }

    /// An id from the text one of this crate's generators made (an `IdText`: only `[0-9a-f-]` for UUIDs or
    /// Crockford base32 for ULIDs), so it is a valid header value by construction.
    ///
    /// `Bytes::from_owner` makes one allocation that every clone shares (the request header, the extension,
    /// the echo); `HeaderValue::from_bytes` would copy into a vector that its first clone copies again.
    /// Checking the bytes again would cost 14 ns per id here (`HeaderValue::from_maybe_shared`);
    /// `tests::generated_ids_are_valid_header_values` checks every generator's alphabet instead, and http
    /// re-checks in debug builds.
    #[allow(unsafe_code)]
    fn from_generated<const N: usize>(text: IdText<N>) -> Self {
        // SAFETY: http's only requirement is that the bytes are valid in a header value (no control
        // character but tab, no DEL). An `IdText` is made only in `mod text`, by `hyphenated` and
        // `crockford`, whose alphabets are within `[0-9A-Za-z-]`.
        Self(unsafe {
            HeaderValue::from_maybe_shared_unchecked(bytes::Bytes::from_owner(text.bytes()))
        })
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only printable ASCII ever gets in (see the constructors).
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value (to send it on).
    #[must_use]
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }

    /// The header value, by value.
    #[must_use]
    pub fn into_header_value(self) -> HeaderValue {
        self.0
    }
}

impl FromStr for RequestId {
    type Err = InvalidRequestId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value = HeaderValue::from_str(s).map_err(|_| InvalidRequestId)?;
        Self::from_header_value(value)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

/// Makes a new request id when the request has no valid one.
///
/// Implemented by [`UuidV7`] (the default), [`UuidV4`], [`Ulid`], and by any `FnMut() -> RequestId + Clone`.
pub trait MakeRequestId: Clone {
    /// A fresh id.
    fn make_request_id(&mut self) -> RequestId;
}

impl<F> MakeRequestId for F
where
    F: FnMut() -> RequestId + Clone,
{
    fn make_request_id(&mut self) -> RequestId {
        self()
    }
}

/// Unix milliseconds for a time-ordered id, from the kernel's coarse real-time clock where there is one.
///
/// On Linux that is `CLOCK_REALTIME_COARSE`: a vDSO read of the time at the last scheduler tick, 7 ns here
/// against 23 ns for `SystemTime::now`, which reads the TSC and scales it. It lags the precise clock by
/// less than one tick (1 to 10 ms with the kernel's HZ; 4 ms on most distributions), which RFC 9562 section 6.1 allows ("Implementations MAY alter the actual
/// timestamp", for performance among other reasons): ids still sort by time to the tick, and ids made
/// within one tick are told apart by their random bits, as within one millisecond before.
fn unix_millis() -> u64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        // A clock before 1970 gives 0 rather than a panic; ids stay unique through their random bits.
        let secs = u64::try_from(now.tv_sec).unwrap_or(0);
        let millis = u64::try_from(now.tv_nsec).unwrap_or(0) / 1_000_000;
        secs.saturating_mul(1000).saturating_add(millis)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// UUIDv7 (RFC 9562 5.7): 48 bits of Unix milliseconds, then 74 random bits; canonical lowercase hyphenated.
///
/// Ids sort by creation time to the kernel's clock tick (1 to 10 ms; see `unix_millis`), which keeps
/// database indexes on them compact. The random
/// bits come from a thread-local generator: no lock and no syscall per id.
#[derive(Clone, Copy, Debug, Default)]
pub struct UuidV7;

impl UuidV7 {
    /// The 36 bytes of the UUIDv7 for this time and these random bits (only 74 of them are used).
    #[must_use]
    pub fn encode(unix_ms: u64, random: u128) -> [u8; 36] {
        Self::text(unix_ms, random).bytes()
    }

    fn text(unix_ms: u64, random: u128) -> IdText<36> {
        let mut bytes = random.to_be_bytes();
        bytes[..6].copy_from_slice(&unix_ms.to_be_bytes()[2..]);
        bytes[6] = 0x70 | (bytes[6] & 0x0f);
        bytes[8] = 0x80 | (bytes[8] & 0x3f);
        hyphenated(bytes)
    }
}

impl MakeRequestId for UuidV7 {
    fn make_request_id(&mut self) -> RequestId {
        RequestId::from_generated(Self::text(unix_millis(), rng::next_u128()))
    }
}

/// UUIDv4 (RFC 9562 5.4): 122 random bits; canonical lowercase hyphenated.
#[derive(Clone, Copy, Debug, Default)]
pub struct UuidV4;

impl MakeRequestId for UuidV4 {
    fn make_request_id(&mut self) -> RequestId {
        let mut bytes = rng::next_u128().to_be_bytes();
        bytes[6] = 0x40 | (bytes[6] & 0x0f);
        bytes[8] = 0x80 | (bytes[8] & 0x3f);
        RequestId::from_generated(hyphenated(bytes))
    }
}

/// ULID: 48 bits of Unix milliseconds and 80 random bits, 26 characters of Crockford base32.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ulid;

impl Ulid {
    /// The 26 bytes of the ULID for this time and these random bits (only 80 of them are used).
    #[must_use]
    pub fn encode(unix_ms: u64, random: u128) -> [u8; 26] {
        Self::text(unix_ms, random).bytes()
    }

    fn text(unix_ms: u64, random: u128) -> IdText<26> {
        let value = (u128::from(unix_ms & 0xffff_ffff_ffff) << 80) | (random & ((1u128 << 80) - 1));
        text::crockford(value)
    }
}

impl MakeRequestId for Ulid {
    fn make_request_id(&mut self) -> RequestId {
        RequestId::from_generated(Self::text(unix_millis(), rng::next_u128()))
    }
}

use text::{IdText, hyphenated};

/// The only code that makes an [`IdText`], whose bytes `RequestId::from_generated` trusts: two encoders
/// with fixed alphabets. Its field is private to this module.
mod text {
    /// The text of an id this crate generated: `[0-9a-f-]` or Crockford base32, valid header bytes.
    #[derive(Clone, Copy)]
    pub(super) struct IdText<const N: usize>([u8; N]);

    impl<const N: usize> IdText<N> {
        /// The bytes.
        pub(super) fn bytes(self) -> [u8; N] {
            self.0
        }
    }

    /// The canonical lowercase hyphenated form of a UUID.
    pub(super) fn hyphenated(bytes: [u8; 16]) -> IdText<36> {
        let value = u128::from_be_bytes(bytes);
        #[allow(clippy::cast_possible_truncation)] // the two halves of the 128 bits
        let (hi, lo) = (hex16((value >> 64) as u64), hex16(value as u64));
        let mut out = [b'-'; 36];
        out[0..8].copy_from_slice(&hi[0..8]);
        out[9..13].copy_from_slice(&hi[8..12]);
        out[14..18].copy_from_slice(&hi[12..16]);
        out[19..23].copy_from_slice(&lo[0..4]);
        out[24..36].copy_from_slice(&lo[4..16]);
        IdText(out)
    }

    /// The 128 bits of `value` as 26 characters of Crockford base32, most significant first (the first
    /// character carries 3 bits).
    pub(super) fn crockford(value: u128) -> IdText<26> {
        const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let mut out = [0u8; 26];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 5 * (25 - i);
            let index = usize::try_from((value >> shift) & 0x1f).unwrap_or(0);
            *slot = CROCKFORD[index];
        }
        IdText(out)
    }

    /// The 16 lowercase hex digits of `x`, most significant first, with a few shifts and adds on one `u128`
    /// (SWAR) instead of a table look-up per digit.
    fn hex16(x: u64) -> [u8; 16] {
        // One nibble per byte, the most significant in the highest byte.
        let x = u128::from(x);
        let x = (x | (x << 32)) & 0x0000_0000_ffff_ffff_0000_0000_ffff_ffff;
        let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff_0000_ffff_0000_ffff;
        let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff;
        let x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f_0f0f_0f0f_0f0f_0f0f;
        // Per byte: '0' + n, plus 39 more ('a' - '0' - 10) when n > 9; no byte overflows into the next.
        let above_nine = ((x + 0x0606_0606_0606_0606_0606_0606_0606_0606) >> 4)
            & 0x0101_0101_0101_0101_0101_0101_0101_0101;
        (x + 0x3030_3030_3030_3030_3030_3030_3030_3030 + above_nine * 39).to_be_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v7_is_a_valid_time_ordered_uuid() {
        let mut make = UuidV7;
        let id = make.make_request_id();
        let parsed = uuid::Uuid::parse_str(id.as_str()).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(
            parsed.hyphenated().to_string(),
            id.as_str(),
            "canonical lowercase form"
        );

        let early = UuidV7::encode(1_700_000_000_000, u128::MAX);
        let late = UuidV7::encode(1_700_000_000_001, 0);
        assert!(
            early < late,
            "a later millisecond sorts later whatever the random bits"
        );
        let (secs, _) = uuid::Uuid::parse_str(std::str::from_utf8(&late).unwrap())
            .unwrap()
            .get_timestamp()
            .unwrap()
            .to_unix();
        assert_eq!(secs, 1_700_000_000);
    }

    #[test]
    fn v4_is_a_valid_uuid() {
        let id = UuidV4.make_request_id();
        let parsed = uuid::Uuid::parse_str(id.as_str()).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_ne!(id, UuidV4.make_request_id());
    }

    #[test]
    fn ulid_encodes_time_first() {
        assert_eq!(&Ulid::encode(0, 0), b"00000000000000000000000000");
        // The ULID spec's maximum: 7ZZZZZZZZZZZZZZZZZZZZZZZZZ.
        assert_eq!(
            &Ulid::encode(0xffff_ffff_ffff, u128::MAX),
            b"7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
        );
        let id = Ulid.make_request_id();
        assert_eq!(id.as_str().len(), 26);
        assert!(RequestId::is_valid(id.as_str().as_bytes()));
    }

    #[test]
    fn hyphenated_matches_uuid_formatting() {
        for bytes in [[0u8; 16], [0xff; 16], *b"0123456789abcdef", [0x9a; 16]]
            .into_iter()
            .chain((0..1000).map(|_| rng::next_u128().to_be_bytes()))
        {
            assert_eq!(
                std::str::from_utf8(&hyphenated(bytes).bytes()).unwrap(),
                uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
            );
        }
    }

    #[test]
    fn generated_ids_are_valid_header_values() {
        // `from_generated` skips http's check; this is the check, over each generator's whole alphabet.
        for bytes in [[0u8; 16], [0xff; 16], *b"0123456789abcdef"]
            .into_iter()
            .chain((0..10_000).map(|_| rng::next_u128().to_be_bytes()))
        {
            let random = u128::from_be_bytes(bytes);
            for text in [
                hyphenated(bytes).bytes().to_vec(),
                UuidV7::encode(u64::from_be_bytes(bytes[..8].try_into().unwrap()), random).to_vec(),
                Ulid::encode(u64::from_be_bytes(bytes[8..].try_into().unwrap()), random).to_vec(),
            ] {
                assert!(HeaderValue::from_bytes(&text).is_ok(), "{text:?}");
                assert!(RequestId::is_valid(&text), "{text:?}");
            }
        }
        for id in [
            UuidV7.make_request_id(),
            UuidV4.make_request_id(),
            Ulid.make_request_id(),
        ] {
            assert_eq!(id.header_value().to_str().ok(), Some(id.as_str()));
        }
    }

    #[test]
    fn coarse_clock_is_close_to_the_system_clock() {
        let system = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        };
        let before = system();
        let ours = u128::from(unix_millis());
        let after = system();
        // One scheduler tick behind at most (10 ms at HZ=100, the coarsest Linux setting), never ahead; the
        // bound leaves as much again for a tick that a loaded machine runs late.
        assert!(ours <= after, "{ours} after {after}");
        assert!(
            ours + 25 >= before,
            "{ours} lags {before} by more than two ticks"
        );
    }

    #[test]
    fn byte_table_matches_the_charset() {
        for b in 0..=u8::MAX {
            let expected = b.is_ascii_alphanumeric() || b".-_:".contains(&b);
            assert_eq!(ID_BYTES[usize::from(b)], expected, "byte {b}");
        }
    }

    #[test]
    fn default_rule() {
        assert!(RequestId::is_valid(b"abc-123_X.y:z"));
        assert!(RequestId::is_valid(&[b'a'; 128]));
        assert!(!RequestId::is_valid(&[b'a'; 129]));
        assert!(!RequestId::is_valid(b""));
        assert!(!RequestId::is_valid(b"a b"));
        assert!(!RequestId::is_valid(b"a\r\nSet-Cookie: x"));
        assert!(!RequestId::is_valid("é".as_bytes()));
        assert!("ok".parse::<RequestId>().is_ok());
        assert!("not ok".parse::<RequestId>().is_err());
    }
}
