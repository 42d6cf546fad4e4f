//! Scaled integers at rest: quantities and unit prices with 6 decimals, rates with 4.
//!
//! The server stores money as BIGINT minor units ([`Money::from_minor`](crate::Money::from_minor)), and
//! quantities, unit prices and rates as BIGINT with a fixed number of decimals. These types convert between
//! those integers and exact decimals, checked both ways: a value with more decimals than its column holds,
//! or out of the `i64` range, is an error, never truncated.

use std::fmt;

use rust_decimal::Decimal;
#[cfg(feature = "serde")]
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::decimal::{DecimalError, Plain, parse_decimal};

/// Why a value does not fit its scaled-integer column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScaleError {
    /// More decimals than the column holds (non-zero digits past them).
    #[error("more than {0} decimal places")]
    Precision(u32),
    /// Outside the `i64` range once scaled.
    #[error("out of range for a 64-bit scaled integer")]
    Overflow,
    /// Not a decimal string.
    #[error("invalid decimal: {0}")]
    Decimal(#[from] DecimalError),
}

fn to_scaled(value: Decimal, dp: u32) -> Result<i64, ScaleError> {
    let mut rounded = value.round_dp_with_strategy(dp, rust_decimal::RoundingStrategy::ToZero);
    if rounded != value {
        return Err(ScaleError::Precision(dp));
    }
    rounded.rescale(dp);
    if rounded.scale() != dp {
        return Err(ScaleError::Overflow);
    }
    i64::try_from(rounded.mantissa()).map_err(|_| ScaleError::Overflow)
}

macro_rules! scaled_type {
    ($(#[$doc:meta])* $name:ident, $dp:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(Decimal);

        impl $name {
            /// The number of decimals of the scaled-integer column.
            pub const SCALE: u32 = $dp;

            /// From the scaled integer of the column.
            #[must_use]
            pub fn from_scaled(value: i64) -> Self {
                Self(Decimal::new(value, Self::SCALE))
            }

            /// The scaled integer for the column.
            ///
            /// # Errors
            ///
            /// Never for a value built by [`Self::new`] or [`Self::from_scaled`]: both check the scale and
            /// range; the `Result` guards the conversion all the same.
            pub fn to_scaled(self) -> Result<i64, ScaleError> {
                to_scaled(self.0, Self::SCALE)
            }

            /// From a decimal that fits the column.
            ///
            /// # Errors
            ///
            /// [`ScaleError::Precision`] for more decimals than [`Self::SCALE`],
            /// [`ScaleError::Overflow`] outside the `i64` range once scaled.
            pub fn new(value: Decimal) -> Result<Self, ScaleError> {
                to_scaled(value, Self::SCALE)?;
                Ok(Self(value))
            }

            /// Parses a decimal string that fits the column.
            ///
            /// # Errors
            ///
            /// As [`Self::new`], and [`ScaleError::Decimal`] for a malformed string.
            pub fn parse(s: &str) -> Result<Self, ScaleError> {
                Self::new(parse_decimal(s)?)
            }

            /// The exact decimal value.
            #[must_use]
            pub const fn get(self) -> Decimal {
                self.0
            }
        }

        impl From<$name> for Decimal {
            fn from(value: $name) -> Decimal {
                value.0
            }
        }

        impl TryFrom<Decimal> for $name {
            type Error = ScaleError;
            fn try_from(value: Decimal) -> Result<Self, ScaleError> {
                Self::new(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&Plain(&self.0), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), Plain(&self.0))
            }
        }

        #[cfg(feature = "serde")]
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&Plain(&self.0))
            }
        }

        #[cfg(feature = "serde")]
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

scaled_type!(
    /// A quantity (BT-129), stored as BIGINT with 6 decimals.
    Quantity,
    6
);
scaled_type!(
    /// A unit price (BT-146), stored as BIGINT with 6 decimals.
    UnitPrice,
    6
);
scaled_type!(
    /// A percentage rate (a VAT or GST rate such as `10` for 10 %), stored as BIGINT with 4 decimals.
    Rate,
    4
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_integers_round_trip() {
        let q = Quantity::parse("1.5").unwrap();
        assert_eq!(q.to_scaled().unwrap(), 1_500_000);
        assert_eq!(Quantity::from_scaled(1_500_000), q);
        assert_eq!(Rate::parse("10").unwrap().to_scaled().unwrap(), 100_000);
        assert_eq!(UnitPrice::from_scaled(8_800).to_string(), "0.008800");
    }

    #[test]
    fn too_many_decimals_or_too_large_is_an_error() {
        assert_eq!(Rate::parse("10.00001"), Err(ScaleError::Precision(4)));
        assert_eq!(Quantity::parse("10000000000000"), Err(ScaleError::Overflow));
        assert!(matches!(
            Quantity::parse("1e3"),
            Err(ScaleError::Decimal(_))
        ));
    }
}
