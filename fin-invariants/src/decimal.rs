//! Strict decimal strings, checked decimal arithmetic and the serde helpers for decimal strings.

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
#[cfg(feature = "serde")]
use serde::{Deserialize, Deserializer, Serializer};

/// The largest number of digits a decimal string may carry (the precision of [`Decimal`]).
const MAX_DIGITS: usize = 28;

/// Why a decimal string was refused by [`parse_decimal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecimalError {
    /// Not of the form `-?[0-9]+(\.[0-9]+)?`.
    #[error("not a decimal string of the form -?digits[.digits]")]
    Syntax,
    /// More than 28 significant digits, or more than 28 decimal places.
    #[error("decimal string has more than 28 digits")]
    TooLong,
}

/// Parses a plain decimal string: an optional `-`, digits, and optionally `.` and digits.
///
/// No `+`, no exponent, no underscores or group separators, no spaces, no leading or trailing `.`: money
/// on the wire is exactly this form (`"1210.00"`, `"-0.5"`). The scale of the result is the number of
/// decimals written, so `"25"` and `"25.00"` compare equal but print as written.
///
/// # Errors
///
/// [`DecimalError::Syntax`] for anything outside that form, [`DecimalError::TooLong`] past 28 digits.
pub fn parse_decimal(s: &str) -> Result<Decimal, DecimalError> {
    let bytes = s.as_bytes();
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some(_) => (false, bytes),
        None => return Err(DecimalError::Syntax),
    };
    let (int_part, frac_part) = match digits.iter().position(|&b| b == b'.') {
        Some(dot) => {
            let (int_part, rest) = digits.split_at(dot);
            let frac = rest.get(1..).unwrap_or(&[]);
            if frac.is_empty() {
                return Err(DecimalError::Syntax);
            }
            (int_part, frac)
        }
        None => (digits, &[][..]),
    };
    if int_part.is_empty() || !int_part.iter().chain(frac_part).all(u8::is_ascii_digit) {
        return Err(DecimalError::Syntax);
    }
    // Leading zeros of the integer part carry no precision.
    let first_significant = int_part
        .iter()
        .position(|&b| b != b'0')
        .unwrap_or(int_part.len());
    let significant_int = int_part.get(first_significant..).unwrap_or(&[]);
    if significant_int.len().saturating_add(frac_part.len()) > MAX_DIGITS
        || frac_part.len() > MAX_DIGITS
    {
        return Err(DecimalError::TooLong);
    }
    let mut mantissa: i128 = 0;
    for &b in significant_int.iter().chain(frac_part) {
        let digit = i128::from(b.wrapping_sub(b'0'));
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(digit))
            .ok_or(DecimalError::TooLong)?;
    }
    if negative {
        mantissa = mantissa.checked_neg().ok_or(DecimalError::TooLong)?;
    }
    let scale = u32::try_from(frac_part.len()).map_err(|_| DecimalError::TooLong)?;
    Decimal::try_from_i128_with_scale(mantissa, scale).map_err(|_| DecimalError::TooLong)
}

/// Writes a decimal as a plain decimal string (no exponent), as [`parse_decimal`] reads it.
pub(crate) struct Plain<'a>(pub(crate) &'a Decimal);

impl fmt::Display for Plain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Decimal's Display never uses an exponent and writes `-` only for negative values; `-0` is
        // normalised so that `-0.00` prints as `0.00`.
        if self.0.is_zero() {
            let mut zero = Decimal::ZERO;
            zero.rescale(self.0.scale());
            return fmt::Display::fmt(&zero, f);
        }
        fmt::Display::fmt(self.0, f)
    }
}

/// `a + b`, `None` on overflow.
pub(crate) fn add(a: Decimal, b: Decimal) -> Option<Decimal> {
    a.checked_add(b)
}

/// `a - b`, `None` on overflow.
pub(crate) fn sub(a: Decimal, b: Decimal) -> Option<Decimal> {
    a.checked_sub(b)
}

/// `a * b`, `None` on overflow.
pub(crate) fn mul(a: Decimal, b: Decimal) -> Option<Decimal> {
    a.checked_mul(b)
}

/// `a / b`, `None` on overflow or division by zero.
pub(crate) fn div(a: Decimal, b: Decimal) -> Option<Decimal> {
    a.checked_div(b)
}

/// Rounds half away from zero (EN 16931, the GST Act) to `dp` decimals.
pub(crate) fn round_half_up(value: Decimal, dp: u32) -> Decimal {
    value.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
}

/// Serde for a [`Decimal`] as a decimal string (`"1210.00"`), never a JSON number.
///
/// Use with `#[serde(with = "fin_invariants::decimal_str")]`.
#[cfg(feature = "serde")]
pub mod decimal_str {
    use super::{Decimal, Deserialize, Deserializer, Plain, Serializer, parse_decimal};

    /// Writes the decimal as a string.
    ///
    /// # Errors
    ///
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&Plain(value))
    }

    /// Reads a decimal from a string of the form [`parse_decimal`] accepts.
    ///
    /// # Errors
    ///
    /// A custom error when the value is not such a string.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        parse_decimal(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde for an `Option<Decimal>` as a decimal string or `null`.
///
/// Use with `#[serde(default, with = "fin_invariants::decimal_str_opt")]`.
#[cfg(feature = "serde")]
pub mod decimal_str_opt {
    use super::{Decimal, Deserialize, Deserializer, Plain, Serializer, parse_decimal};

    /// Writes the decimal as a string, `None` as `null`.
    ///
    /// # Errors
    ///
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(
        value: &Option<Decimal>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => serializer.collect_str(&Plain(v)),
            None => serializer.serialize_none(),
        }
    }

    /// Reads a decimal string or `null`.
    ///
    /// # Errors
    ///
    /// A custom error when the value is neither `null` nor a decimal string.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Decimal>, D::Error> {
        let s = <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)?;
        s.map(|s| parse_decimal(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_decimal_strings_parse_with_their_scale() {
        assert_eq!(parse_decimal("1210.00").unwrap().to_string(), "1210.00");
        assert_eq!(parse_decimal("-0.5").unwrap().to_string(), "-0.5");
        assert_eq!(parse_decimal("007").unwrap().to_string(), "7");
        assert_eq!(
            parse_decimal("25").unwrap(),
            parse_decimal("25.00").unwrap()
        );
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in [
            "", "-", "+1", "1e3", "1_000", "1,000", " 1", "1 ", ".5", "5.", "1.2.3", "--1", "0x10",
            "NaN",
        ] {
            assert_eq!(parse_decimal(bad), Err(DecimalError::Syntax), "{bad:?}");
        }
        assert_eq!(
            parse_decimal("12345678901234567890123456789"),
            Err(DecimalError::TooLong)
        );
        assert_eq!(
            parse_decimal("0.00000000000000000000000000001"),
            Err(DecimalError::TooLong)
        );
    }

    #[test]
    fn negative_zero_prints_without_sign() {
        let z = parse_decimal("-0.00").unwrap();
        assert_eq!(Plain(&z).to_string(), "0.00");
    }
}
