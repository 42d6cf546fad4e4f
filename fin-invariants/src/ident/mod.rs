//! Identifiers: Australian Business Number (mod 89), Australian Company Number, IBAN (ISO 13616 mod 97
//! with the registry's country lengths and BBAN structures) and EU VAT number formats.
//!
//! Each parser returns the identifier in its compact form, or an [`IdError`] saying why not; the
//! reasons are the ones published test lists use (bad characters, bad length, bad country, bad format,
//! bad check digit). [`IdError::violation`] turns one into a [`Violation`].

mod iban_registry;

use std::fmt;

#[cfg(feature = "serde")]
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::violation::{Violation, codes};

/// Why an identifier is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// A character the identifier cannot contain.
    #[error("bad characters")]
    BadCharacters,
    /// The wrong number of characters.
    #[error("bad length")]
    BadLength,
    /// An unknown country prefix.
    #[error("bad country")]
    BadCountry,
    /// The right length but not the country's structure.
    #[error("bad format")]
    BadFormat,
    /// The check digits do not match.
    #[error("bad check digit")]
    BadCheckDigit,
}

impl IdError {
    /// The reason as published test lists write it (`"bad check digit"`).
    #[must_use]
    pub const fn reason(self) -> &'static str {
        match self {
            Self::BadCharacters => "bad characters",
            Self::BadLength => "bad length",
            Self::BadCountry => "bad country",
            Self::BadFormat => "bad format",
            Self::BadCheckDigit => "bad check digit",
        }
    }

    /// A violation with `code` ([`codes::ABN`], [`codes::IBAN`], ...) at `path`, the rejected value as
    /// `actual`.
    #[must_use]
    pub fn violation(self, code: &'static str, path: impl Into<String>, value: &str) -> Violation {
        let mut v = Violation::new(code, path, self.reason());
        v.actual = Some(value.to_owned());
        v
    }
}

/// Digits of `s` with spaces removed; anything else is [`IdError::BadCharacters`].
fn digits<const N: usize>(s: &str) -> Result<[u8; N], IdError> {
    let mut out = [0u8; N];
    let mut count = 0usize;
    for b in s.bytes() {
        match b {
            b' ' => {}
            b'0'..=b'9' => {
                if let Some(slot) = out.get_mut(count) {
                    *slot = b.wrapping_sub(b'0');
                }
                count = count.saturating_add(1);
            }
            _ => return Err(IdError::BadCharacters),
        }
    }
    if count == N {
        Ok(out)
    } else {
        Err(IdError::BadLength)
    }
}

fn weighted_sum(digits: &[u8], weights: &[u32]) -> u32 {
    digits.iter().zip(weights).fold(0u32, |acc, (&d, &w)| {
        acc.saturating_add(u32::from(d).saturating_mul(w))
    })
}

macro_rules! string_serde {
    ($name:ident) => {
        #[cfg(feature = "serde")]
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        #[cfg(feature = "serde")]
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
    };
}

/// An Australian Business Number: 11 digits, valid under the ABR's mod-89 check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Abn([u8; 11]);

impl Abn {
    /// Parses an ABN; spaces are ignored (`51 824 753 556`).
    ///
    /// The ABR's check: subtract 1 from the first digit, weight the digits 10, 1, 3, 5, ..., 19, and the sum
    /// must be divisible by 89.
    ///
    /// # Errors
    ///
    /// [`IdError::BadCharacters`], [`IdError::BadLength`], [`IdError::BadCheckDigit`].
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let mut d = digits::<11>(s)?;
        let first = d[0];
        // The two check digits lie in 10..=99, so the first digit is never 0.
        let Some(reduced) = first.checked_sub(1) else {
            return Err(IdError::BadCheckDigit);
        };
        let mut weighted = d;
        weighted[0] = reduced;
        if !weighted_sum(&weighted, &[10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19]).is_multiple_of(89) {
            return Err(IdError::BadCheckDigit);
        }
        for digit in &mut d {
            *digit = digit.saturating_add(b'0');
        }
        Ok(Self(d))
    }

    /// The 11 digits.
    #[must_use]
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Abn {
    /// Grouped as the ABR prints it: `51 824 753 556`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.as_str();
        let part = |r: std::ops::Range<usize>| s.get(r).unwrap_or_default();
        write!(
            f,
            "{} {} {} {}",
            part(0..2),
            part(2..5),
            part(5..8),
            part(8..11)
        )
    }
}

string_serde!(Abn);

/// An Australian Company Number: 9 digits with ASIC's check digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acn([u8; 9]);

impl Acn {
    /// Parses an ACN; spaces are ignored (`004 085 616`).
    ///
    /// ASIC's check: weight the first 8 digits 8, 7, ..., 1; the check digit is (10 - sum mod 10) mod 10.
    ///
    /// # Errors
    ///
    /// [`IdError::BadCharacters`], [`IdError::BadLength`], [`IdError::BadCheckDigit`].
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let mut d = digits::<9>(s)?;
        let sum = weighted_sum(&d[..8], &[8, 7, 6, 5, 4, 3, 2, 1]);
        let check = (10u32.saturating_sub(sum % 10)) % 10;
        if check != u32::from(d[8]) {
            return Err(IdError::BadCheckDigit);
        }
        for digit in &mut d {
            *digit = digit.saturating_add(b'0');
        }
        Ok(Self(d))
    }

    /// The 9 digits.
    #[must_use]
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Whether `abn` is this company's ABN (an ACN prefixed with two check digits).
    #[must_use]
    pub fn matches_abn(&self, abn: &Abn) -> bool {
        abn.as_str().get(2..) == Some(self.as_str())
    }
}

impl fmt::Display for Acn {
    /// Grouped as ASIC prints it: `004 085 616`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.as_str();
        let part = |r: std::ops::Range<usize>| s.get(r).unwrap_or_default();
        write!(f, "{} {} {}", part(0..3), part(3..6), part(6..9))
    }
}

string_serde!(Acn);

/// Does `s` match a SWIFT BBAN structure such as `4!a6!n8!n`?
fn matches_bban(s: &[u8], structure: &str) -> bool {
    let mut pos = 0usize;
    let mut count = 0usize;
    for b in structure.bytes() {
        match b {
            b'0'..=b'9' => {
                count = count
                    .saturating_mul(10)
                    .saturating_add(usize::from(b.wrapping_sub(b'0')))
            }
            b'!' => {}
            class @ (b'n' | b'a' | b'c') => {
                let end = pos.saturating_add(count);
                let Some(chunk) = s.get(pos..end) else {
                    return false;
                };
                let ok = chunk.iter().all(|c| match class {
                    b'n' => c.is_ascii_digit(),
                    b'a' => c.is_ascii_uppercase(),
                    _ => c.is_ascii_uppercase() || c.is_ascii_digit(),
                });
                if !ok {
                    return false;
                }
                pos = end;
                count = 0;
            }
            _ => return false,
        }
    }
    pos == s.len()
}

/// An International Bank Account Number, in electronic format (no spaces).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Iban(String);

impl Iban {
    /// Parses an IBAN per ISO 13616: spaces are ignored (print format); then only `A-Z` and `0-9`, a
    /// country in the SWIFT registry (release 102), that country's length and BBAN structure, and check
    /// digits in 02..98 with the MOD 97-10 remainder 1.
    ///
    /// ```
    /// use fin_invariants::ident::{Iban, IdError};
    /// assert_eq!(Iban::parse("DE89 3704 0044 0532 0130 00")?.to_string(), "DE89 3704 0044 0532 0130 00");
    /// // An IBAN printed in an official EN 16931 example, with wrong check digits:
    /// assert_eq!(Iban::parse("DK1212341234123412"), Err(IdError::BadCheckDigit));
    /// # Ok::<(), IdError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`IdError::BadCharacters`], [`IdError::BadCountry`], [`IdError::BadLength`], [`IdError::BadFormat`],
    /// [`IdError::BadCheckDigit`].
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let compact: Vec<u8> = s.bytes().filter(|&b| b != b' ').collect();
        if !compact
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(IdError::BadCharacters);
        }
        let country = compact.get(..2).ok_or(IdError::BadLength)?;
        let &(_, length, _, structure) = iban_registry::COUNTRIES
            .iter()
            .find(|(code, ..)| code.as_bytes() == country)
            .ok_or(IdError::BadCountry)?;
        if compact.len() != length {
            return Err(IdError::BadLength);
        }
        let check = compact.get(2..4).ok_or(IdError::BadLength)?;
        let bban = compact.get(4..).ok_or(IdError::BadLength)?;
        if !check.iter().all(u8::is_ascii_digit) || !matches_bban(bban, structure) {
            return Err(IdError::BadFormat);
        }
        // ISO 7064 MOD 97-10 over BBAN + country + check digits, letters as 10..35.
        let mut remainder = 0u32;
        for &b in bban.iter().chain(country).chain(check) {
            let value = if b.is_ascii_digit() {
                u32::from(b.wrapping_sub(b'0'))
            } else {
                u32::from(b.wrapping_sub(b'A')).saturating_add(10)
            };
            remainder = if value >= 10 {
                (remainder.saturating_mul(100).saturating_add(value)) % 97
            } else {
                (remainder.saturating_mul(10).saturating_add(value)) % 97
            };
        }
        let digits = check.iter().fold(0u32, |acc, &b| {
            acc.saturating_mul(10)
                .saturating_add(u32::from(b.wrapping_sub(b'0')))
        });
        if remainder != 1 || !(2..=98).contains(&digits) {
            return Err(IdError::BadCheckDigit);
        }
        String::from_utf8(compact)
            .map(Self)
            .map_err(|_| IdError::BadCharacters)
    }

    /// The electronic format: `DE89370400440532013000`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The two-letter country code.
    #[must_use]
    pub fn country(&self) -> &str {
        self.0.get(..2).unwrap_or_default()
    }

    /// The basic bank account number (everything after the check digits).
    #[must_use]
    pub fn bban(&self) -> &str {
        self.0.get(4..).unwrap_or_default()
    }

    /// Whether the country is in the SEPA scheme (the registry's SEPA flag).
    #[must_use]
    pub fn is_sepa(&self) -> bool {
        iban_registry::COUNTRIES
            .iter()
            .any(|&(code, _, sepa, _)| sepa && code == self.country())
    }
}

impl fmt::Display for Iban {
    /// The print format: groups of four separated by spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, chunk) in self.0.as_bytes().chunks(4).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(std::str::from_utf8(chunk).unwrap_or_default())?;
        }
        Ok(())
    }
}

string_serde!(Iban);

/// One element of a VAT number pattern: a character class repeated `min..=max` times.
#[derive(Clone, Copy)]
enum Class {
    Digit,
    Upper,
    UpperOrDigit,
    Literal(u8),
    /// Digit, upper-case letter, `+` or `*` (Irish second character).
    IrishSecond,
    /// `0` or `1` (Belgian first digit).
    ZeroOrOne,
}

impl Class {
    fn matches(self, b: u8) -> bool {
        match self {
            Self::Digit => b.is_ascii_digit(),
            Self::Upper => b.is_ascii_uppercase(),
            Self::UpperOrDigit => b.is_ascii_uppercase() || b.is_ascii_digit(),
            Self::Literal(l) => b == l,
            Self::IrishSecond => {
                b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'+' || b == b'*'
            }
            Self::ZeroOrOne => b == b'0' || b == b'1',
        }
    }
}

type Pattern = &'static [(Class, u8, u8)];

use Class::{Digit as N, IrishSecond, Literal as L, Upper as A, UpperOrDigit as C, ZeroOrOne};

/// The EU VAT number formats per member state (VIES), without the two-letter prefix.
const VAT_FORMATS: &[(&str, &[Pattern])] = &[
    ("AT", &[&[(L(b'U'), 1, 1), (N, 8, 8)]]),
    ("BE", &[&[(ZeroOrOne, 1, 1), (N, 9, 9)]]),
    ("BG", &[&[(N, 9, 10)]]),
    ("CY", &[&[(N, 8, 8), (A, 1, 1)]]),
    ("CZ", &[&[(N, 8, 10)]]),
    ("DE", &[&[(N, 9, 9)]]),
    ("DK", &[&[(N, 8, 8)]]),
    ("EE", &[&[(N, 9, 9)]]),
    ("EL", &[&[(N, 9, 9)]]),
    (
        "ES",
        &[&[(A, 1, 1), (N, 7, 7), (C, 1, 1)], &[(N, 8, 8), (A, 1, 1)]],
    ),
    ("FI", &[&[(N, 8, 8)]]),
    ("FR", &[&[(C, 2, 2), (N, 9, 9)]]),
    ("HR", &[&[(N, 11, 11)]]),
    ("HU", &[&[(N, 8, 8)]]),
    (
        "IE",
        &[
            &[(N, 1, 1), (IrishSecond, 1, 1), (N, 5, 5), (A, 1, 1)],
            &[(N, 7, 7), (A, 2, 2)],
        ],
    ),
    ("IT", &[&[(N, 11, 11)]]),
    ("LT", &[&[(N, 9, 9)], &[(N, 12, 12)]]),
    ("LU", &[&[(N, 8, 8)]]),
    ("LV", &[&[(N, 11, 11)]]),
    ("MT", &[&[(N, 8, 8)]]),
    ("NL", &[&[(N, 9, 9), (L(b'B'), 1, 1), (N, 2, 2)]]),
    ("PL", &[&[(N, 10, 10)]]),
    ("PT", &[&[(N, 9, 9)]]),
    ("RO", &[&[(N, 2, 10)]]),
    ("SE", &[&[(N, 10, 10), (L(b'0'), 1, 1), (L(b'1'), 1, 1)]]),
    ("SI", &[&[(N, 8, 8)]]),
    ("SK", &[&[(N, 10, 10)]]),
    (
        "XI",
        &[
            &[(N, 9, 9)],
            &[(N, 12, 12)],
            &[(L(b'G'), 1, 1), (L(b'D'), 1, 1), (N, 3, 3)],
            &[(L(b'H'), 1, 1), (L(b'A'), 1, 1), (N, 3, 3)],
        ],
    ),
];

/// Whether `s` matches `pattern` (segments with repetition ranges; backtracking over the ranges).
fn matches_pattern(s: &[u8], pattern: &[(Class, u8, u8)]) -> bool {
    let Some((&(class, min, max), rest)) = pattern.split_first() else {
        return s.is_empty();
    };
    let (min, max) = (usize::from(min), usize::from(max));
    let run = s
        .iter()
        .take(max)
        .take_while(|&&b| class.matches(b))
        .count();
    if run < min {
        return false;
    }
    (min..=run)
        .rev()
        .any(|n| s.get(n..).is_some_and(|tail| matches_pattern(tail, rest)))
}

fn pattern_lengths(pattern: &[(Class, u8, u8)]) -> (usize, usize) {
    pattern
        .iter()
        .fold((0usize, 0usize), |(lo, hi), &(_, min, max)| {
            (
                lo.saturating_add(usize::from(min)),
                hi.saturating_add(usize::from(max)),
            )
        })
}

/// An EU VAT identification number whose format matches its member state (format only: whether it is
/// issued is VIES's to say).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VatNumber(String);

impl VatNumber {
    /// Parses a VAT number exactly as written: the two-letter prefix (`EL` for Greece, `XI` for Northern
    /// Ireland) and the member state's format, no spaces, dots or lower case.
    ///
    /// # Errors
    ///
    /// [`IdError::BadCharacters`] (anything but `A-Z`, `0-9`, `+`, `*`), [`IdError::BadCountry`] (not an
    /// EU prefix: `GR`, `GB` and `NO` are not), [`IdError::BadLength`], [`IdError::BadFormat`].
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let bytes = s.as_bytes();
        if !bytes
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'+' || b == b'*')
        {
            return Err(IdError::BadCharacters);
        }
        let prefix = bytes.get(..2).ok_or(IdError::BadCountry)?;
        let &(_, patterns) = VAT_FORMATS
            .iter()
            .find(|(code, _)| code.as_bytes() == prefix)
            .ok_or(IdError::BadCountry)?;
        let body = bytes.get(2..).unwrap_or_default();
        if !patterns.iter().any(|p| {
            let (lo, hi) = pattern_lengths(p);
            (lo..=hi).contains(&body.len())
        }) {
            return Err(IdError::BadLength);
        }
        if !patterns.iter().any(|p| matches_pattern(body, p)) {
            return Err(IdError::BadFormat);
        }
        Ok(Self(s.to_owned()))
    }

    /// The number as written (`DE136695976`).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The member-state prefix (`DE`, `EL`, `XI`).
    #[must_use]
    pub fn prefix(&self) -> &str {
        self.0.get(..2).unwrap_or_default()
    }
}

impl fmt::Display for VatNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_serde!(VatNumber);

/// The ABN, or a [`codes::ABN`] violation at `path`.
///
/// # Errors
///
/// The violation, when `value` is not a valid ABN.
pub fn check_abn(value: &str, path: &str) -> Result<Abn, Violation> {
    Abn::parse(value).map_err(|e| e.violation(codes::ABN, path, value))
}

/// The ACN, or a [`codes::ACN`] violation at `path`.
///
/// # Errors
///
/// The violation, when `value` is not a valid ACN.
pub fn check_acn(value: &str, path: &str) -> Result<Acn, Violation> {
    Acn::parse(value).map_err(|e| e.violation(codes::ACN, path, value))
}

/// The VAT number, or a [`codes::VAT_NUMBER`] violation at `path`.
///
/// # Errors
///
/// The violation, when `value` is not in its member state's format.
pub fn check_vat_number(value: &str, path: &str) -> Result<VatNumber, Violation> {
    VatNumber::parse(value).map_err(|e| e.violation(codes::VAT_NUMBER, path, value))
}

/// The IBAN, or a [`codes::IBAN`] violation at `path`.
///
/// # Errors
///
/// The violation, when `value` is not a valid IBAN.
pub fn check_iban(value: &str, path: &str) -> Result<Iban, Violation> {
    Iban::parse(value).map_err(|e| e.violation(codes::IBAN, path, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abr_worked_example() {
        assert_eq!(
            Abn::parse("51 824 753 556").unwrap().to_string(),
            "51 824 753 556"
        );
        assert_eq!(Abn::parse("51824753557"), Err(IdError::BadCheckDigit));
        assert_eq!(Abn::parse("01824753556"), Err(IdError::BadCheckDigit));
    }

    #[test]
    fn asic_worked_example() {
        let acn = Acn::parse("004 085 616").unwrap();
        assert!(acn.matches_abn(&Abn::parse("53 004 085 616").unwrap()));
        assert_eq!(acn.to_string(), "004 085 616");
    }

    #[test]
    fn identifier_errors_become_violations_with_the_value() {
        let v = check_iban("DK1212341234123412", "/seller/iban").unwrap_err();
        assert_eq!(
            (v.code.as_ref(), v.path.as_str(), v.message.as_ref()),
            ("IBAN", "/seller/iban", "bad check digit")
        );
        assert_eq!(v.actual.as_deref(), Some("DK1212341234123412"));
        assert_eq!(
            check_abn("51 824 753 55", "/abn").unwrap_err().message,
            "bad length"
        );
        assert_eq!(
            check_acn("004 085 617", "/acn").unwrap_err().code,
            codes::ACN
        );
        assert_eq!(
            check_vat_number("GB980780684", "/vat").unwrap_err().message,
            "bad country"
        );
    }

    #[test]
    fn vat_patterns_backtrack_over_ranges() {
        assert!(VatNumber::parse("RO12").is_ok());
        assert!(VatNumber::parse("RO1234567890").is_ok());
        assert_eq!(VatNumber::parse("RO1"), Err(IdError::BadLength));
        assert!(VatNumber::parse("XIGD123").is_ok());
    }
}
