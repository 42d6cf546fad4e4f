//! [`Currency`] and [`Money`]: an exact amount in a currency's minor unit, with checked arithmetic.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
#[cfg(feature = "serde")]
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::decimal::{DecimalError, parse_decimal};

/// An ISO 4217 currency that has a minor unit (AUD 2, JPY 0, BHD 3).
///
/// Codes without a minor unit (gold `XAU`, the test code `XTS`, ...) are refused: an amount in them has no
/// smallest unit to count in.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// Australian dollar (2 decimals).
    pub const AUD: Self = Self(iso_currency::Currency::AUD);
    /// Euro (2 decimals).
    pub const EUR: Self = Self(iso_currency::Currency::EUR);
    /// US dollar (2 decimals).
    pub const USD: Self = Self(iso_currency::Currency::USD);
    /// Pound sterling (2 decimals).
    pub const GBP: Self = Self(iso_currency::Currency::GBP);
    /// New Zealand dollar (2 decimals).
    pub const NZD: Self = Self(iso_currency::Currency::NZD);
    /// Japanese yen (0 decimals).
    pub const JPY: Self = Self(iso_currency::Currency::JPY);
    /// Bahraini dinar (3 decimals).
    pub const BHD: Self = Self(iso_currency::Currency::BHD);

    /// The currency with this upper-case ISO 4217 alphabetic code.
    ///
    /// # Errors
    ///
    /// [`MoneyError::UnknownCurrency`] for an unknown code or one without a minor unit.
    pub fn from_code(code: &str) -> Result<Self, MoneyError> {
        let currency =
            iso_currency::Currency::from_code(code).ok_or(MoneyError::UnknownCurrency)?;
        if currency.exponent().is_none() {
            return Err(MoneyError::UnknownCurrency);
        }
        Ok(Self(currency))
    }

    /// The three-letter ISO 4217 code.
    #[must_use]
    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// The number of decimals of the minor unit: 2 for AUD, 0 for JPY, 3 for BHD.
    #[must_use]
    pub fn minor_units(self) -> u32 {
        // Constructors refuse currencies without an exponent; the fallback is never taken.
        self.0.exponent().map_or(0, u32::from)
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_code(s)
    }
}

#[cfg(feature = "serde")]
impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

#[cfg(feature = "serde")]
impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::from_code(&s).map_err(serde::de::Error::custom)
    }
}

/// What went wrong with a money operation. Every operation that can fail returns one; none panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// The two amounts are in different currencies.
    #[error("currency mismatch: {left} and {right}")]
    CurrencyMismatch {
        /// The currency of the left operand.
        left: Currency,
        /// The currency of the right operand.
        right: Currency,
    },
    /// The result does not fit in 64-bit minor units (the storage range).
    #[error("amount out of range")]
    Overflow,
    /// The amount has more decimals than the currency's minor unit and no rounding was asked for.
    #[error("amount has more decimals than the currency allows")]
    Precision,
    /// Not a decimal string.
    #[error("invalid decimal amount: {0}")]
    Decimal(#[from] DecimalError),
    /// Not an ISO 4217 code with a minor unit.
    #[error("unknown currency code")]
    UnknownCurrency,
    /// Allocation needs at least one ratio and a positive sum of ratios.
    #[error("allocation ratios must be non-empty with a positive sum")]
    InvalidRatios,
    /// Division by zero.
    #[error("division by zero")]
    DivisionByZero,
}

/// How to round an amount to the currency's minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Rounding {
    /// Half away from zero: 0.125 to 0.13, -0.125 to -0.13. EN 16931 and the GST Act round this way.
    #[default]
    HalfUp,
    /// Half to even (banker's rounding, rust_decimal's default): 0.125 to 0.12.
    HalfEven,
    /// Toward zero.
    Down,
    /// Away from zero.
    Up,
}

impl Rounding {
    fn strategy(self) -> RoundingStrategy {
        match self {
            Self::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            Self::HalfEven => RoundingStrategy::MidpointNearestEven,
            Self::Down => RoundingStrategy::ToZero,
            Self::Up => RoundingStrategy::AwayFromZero,
        }
    }
}

/// An exact amount of money: a whole number of the currency's minor unit (cents for AUD, yen for JPY,
/// fils for BHD), held as `i64`, the range the server stores as BIGINT.
///
/// Arithmetic is checked: mixing currencies, overflowing or losing a decimal returns a [`MoneyError`],
/// never a wrong amount and never a panic. Multiplication and division by a decimal go through
/// [`Decimal`] and round once, with the [`Rounding`] the caller names. There are no floats anywhere.
///
/// On the wire it is `{"amount": "1210.00", "currency": "AUD"}`, the amount a decimal string written with
/// exactly the currency's minor-unit decimals.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// Zero in `currency`.
    #[must_use]
    pub const fn zero(currency: Currency) -> Self {
        Self { minor: 0, currency }
    }

    /// From a whole number of minor units (the BIGINT column): `from_minor(12100, AUD)` is AUD 121.00.
    #[must_use]
    pub const fn from_minor(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// The amount in minor units (the BIGINT column).
    #[must_use]
    pub const fn minor(self) -> i64 {
        self.minor
    }

    /// The currency.
    #[must_use]
    pub const fn currency(self) -> Currency {
        self.currency
    }

    /// The amount as a decimal with exactly the currency's minor-unit scale (`121.00`).
    #[must_use]
    pub fn amount(self) -> Decimal {
        Decimal::new(self.minor, self.currency.minor_units())
    }

    /// From an exact decimal amount.
    ///
    /// # Errors
    ///
    /// [`MoneyError::Precision`] when the amount has non-zero digits below the minor unit
    /// (`1.005` AUD), [`MoneyError::Overflow`] outside the `i64` minor-unit range.
    pub fn from_decimal(amount: Decimal, currency: Currency) -> Result<Self, MoneyError> {
        let rounded =
            amount.round_dp_with_strategy(currency.minor_units(), RoundingStrategy::ToZero);
        if rounded != amount {
            return Err(MoneyError::Precision);
        }
        Self::from_rounded(rounded, currency)
    }

    /// From a decimal amount rounded to the minor unit with `rounding`.
    ///
    /// # Errors
    ///
    /// [`MoneyError::Overflow`] outside the `i64` minor-unit range.
    pub fn from_decimal_rounded(
        amount: Decimal,
        currency: Currency,
        rounding: Rounding,
    ) -> Result<Self, MoneyError> {
        let rounded = amount.round_dp_with_strategy(currency.minor_units(), rounding.strategy());
        Self::from_rounded(rounded, currency)
    }

    fn from_rounded(mut rounded: Decimal, currency: Currency) -> Result<Self, MoneyError> {
        rounded.rescale(currency.minor_units());
        if rounded.scale() != currency.minor_units() {
            return Err(MoneyError::Overflow);
        }
        let minor = i64::try_from(rounded.mantissa()).map_err(|_| MoneyError::Overflow)?;
        Ok(Self { minor, currency })
    }

    /// Parses a decimal string (`"1210.00"`, `"-0.5"`, `"7"`) in `currency`.
    ///
    /// # Errors
    ///
    /// [`MoneyError::Decimal`] for a malformed string, [`MoneyError::Precision`] for more decimals than
    /// the minor unit has non-zero, [`MoneyError::Overflow`] out of range.
    pub fn parse(s: &str, currency: Currency) -> Result<Self, MoneyError> {
        Self::from_decimal(parse_decimal(s)?, currency)
    }

    /// `self + other`.
    ///
    /// # Errors
    ///
    /// [`MoneyError::CurrencyMismatch`], [`MoneyError::Overflow`].
    pub fn checked_add(self, other: Self) -> Result<Self, MoneyError> {
        let currency = self.same_currency(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Self { minor, currency })
    }

    /// `self - other`.
    ///
    /// # Errors
    ///
    /// [`MoneyError::CurrencyMismatch`], [`MoneyError::Overflow`].
    pub fn checked_sub(self, other: Self) -> Result<Self, MoneyError> {
        let currency = self.same_currency(other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Self { minor, currency })
    }

    /// `-self`.
    ///
    /// # Errors
    ///
    /// [`MoneyError::Overflow`] for the most negative amount.
    pub fn checked_neg(self) -> Result<Self, MoneyError> {
        let minor = self.minor.checked_neg().ok_or(MoneyError::Overflow)?;
        Ok(Self {
            minor,
            currency: self.currency,
        })
    }

    /// `self * factor`, rounded once to the minor unit.
    ///
    /// # Errors
    ///
    /// [`MoneyError::Overflow`].
    pub fn checked_mul(self, factor: Decimal, rounding: Rounding) -> Result<Self, MoneyError> {
        let product = self
            .amount()
            .checked_mul(factor)
            .ok_or(MoneyError::Overflow)?;
        Self::from_decimal_rounded(product, self.currency, rounding)
    }

    /// `self / divisor`, rounded once to the minor unit.
    ///
    /// # Errors
    ///
    /// [`MoneyError::DivisionByZero`], [`MoneyError::Overflow`].
    pub fn checked_div(self, divisor: Decimal, rounding: Rounding) -> Result<Self, MoneyError> {
        if divisor.is_zero() {
            return Err(MoneyError::DivisionByZero);
        }
        let quotient = self
            .amount()
            .checked_div(divisor)
            .ok_or(MoneyError::Overflow)?;
        Self::from_decimal_rounded(quotient, self.currency, rounding)
    }

    /// The sum of `amounts`, all in `currency` (zero for none).
    ///
    /// # Errors
    ///
    /// [`MoneyError::CurrencyMismatch`], [`MoneyError::Overflow`].
    pub fn sum<I: IntoIterator<Item = Self>>(
        currency: Currency,
        amounts: I,
    ) -> Result<Self, MoneyError> {
        amounts
            .into_iter()
            .try_fold(Self::zero(currency), Self::checked_add)
    }

    /// Compares two amounts of the same currency (there is no `Ord`: AUD 1 and JPY 1 do not compare).
    ///
    /// # Errors
    ///
    /// [`MoneyError::CurrencyMismatch`].
    pub fn checked_cmp(self, other: Self) -> Result<std::cmp::Ordering, MoneyError> {
        self.same_currency(other)?;
        Ok(self.minor.cmp(&other.minor))
    }

    /// Whether the amount is zero.
    #[must_use]
    pub const fn is_zero(self) -> bool {
        self.minor == 0
    }

    /// Whether the amount is below zero.
    #[must_use]
    pub const fn is_negative(self) -> bool {
        self.minor < 0
    }

    /// Whether the amount is above zero.
    #[must_use]
    pub const fn is_positive(self) -> bool {
        self.minor > 0
    }

    /// Splits the amount into parts proportional to `ratios`, by the largest-remainder method.
    ///
    /// Each part first gets the whole minor units of its exact share (rounded toward zero); the minor
    /// units left over go one each to the parts with the largest remainders. A tie goes to the larger
    /// ratio, then to the earlier position. So the parts always sum exactly to the amount, no part is
    /// more than one minor unit from its exact share, and the same multiset of ratios in any order gets the
    /// same multiset of parts. A zero ratio gets zero. Negative amounts split like their absolute value,
    /// negated.
    ///
    /// ```
    /// use fin_invariants::{Currency, Money};
    /// let parts = Money::parse("100.00", Currency::AUD)?.allocate(&[1, 1, 1])?;
    /// let shown: Vec<String> = parts.iter().map(ToString::to_string).collect();
    /// assert_eq!(shown, ["33.34", "33.33", "33.33"]);
    /// # Ok::<(), fin_invariants::MoneyError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`MoneyError::InvalidRatios`] when `ratios` is empty or sums to zero, [`MoneyError::Overflow`] when
    /// the ratios' sum exceeds `u128`.
    pub fn allocate(self, ratios: &[u64]) -> Result<Vec<Self>, MoneyError> {
        let total_ratio = ratios
            .iter()
            .try_fold(0u128, |acc, &r| acc.checked_add(u128::from(r)))
            .ok_or(MoneyError::Overflow)?;
        if total_ratio == 0 {
            return Err(MoneyError::InvalidRatios);
        }
        let negative = self.minor < 0;
        let total = u128::from(self.minor.unsigned_abs());
        let mut parts: Vec<u128> = Vec::with_capacity(ratios.len());
        let mut remainders: Vec<(u128, u64, usize)> = Vec::with_capacity(ratios.len());
        let mut given: u128 = 0;
        for (index, &ratio) in ratios.iter().enumerate() {
            // total < 2^63 and ratio < 2^64, so the product fits in u128.
            let exact = total
                .checked_mul(u128::from(ratio))
                .ok_or(MoneyError::Overflow)?;
            let share = exact
                .checked_div(total_ratio)
                .ok_or(MoneyError::InvalidRatios)?;
            let remainder = exact
                .checked_rem(total_ratio)
                .ok_or(MoneyError::InvalidRatios)?;
            given = given.checked_add(share).ok_or(MoneyError::Overflow)?;
            parts.push(share);
            remainders.push((remainder, ratio, index));
        }
        let left = total.checked_sub(given).ok_or(MoneyError::Overflow)?;
        // Largest remainder first; then larger ratio; then earlier position.
        remainders.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        let left = usize::try_from(left).map_err(|_| MoneyError::Overflow)?;
        for &(_, _, index) in remainders.iter().take(left) {
            if let Some(part) = parts.get_mut(index) {
                *part = part.checked_add(1).ok_or(MoneyError::Overflow)?;
            }
        }
        parts
            .into_iter()
            .map(|part| {
                let magnitude = i64::try_from(part).map_err(|_| MoneyError::Overflow)?;
                let minor = if negative {
                    magnitude.checked_neg().ok_or(MoneyError::Overflow)?
                } else {
                    magnitude
                };
                Ok(Self {
                    minor,
                    currency: self.currency,
                })
            })
            .collect()
    }

    fn same_currency(self, other: Self) -> Result<Currency, MoneyError> {
        if self.currency == other.currency {
            Ok(self.currency)
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }
}

impl fmt::Display for Money {
    /// The amount with exactly the minor-unit decimals, without the currency: `1210.00`, `-0.50`, `7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.amount(), f)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount(), self.currency)
    }
}

#[cfg(feature = "serde")]
#[derive(Serialize, Deserialize)]
struct MoneyWire<'a> {
    #[serde(borrow)]
    amount: std::borrow::Cow<'a, str>,
    currency: Currency,
}

#[cfg(feature = "serde")]
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let amount = self.to_string();
        MoneyWire {
            amount: amount.into(),
            currency: self.currency,
        }
        .serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = MoneyWire::deserialize(deserializer)?;
        Self::parse(&wire.amount, wire.currency).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aud(s: &str) -> Money {
        Money::parse(s, Currency::AUD).unwrap()
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        assert_eq!(Currency::AUD.minor_units(), 2);
        assert_eq!(Currency::JPY.minor_units(), 0);
        assert_eq!(Currency::BHD.minor_units(), 3);
        assert_eq!(Currency::from_code("XAU"), Err(MoneyError::UnknownCurrency));
        assert_eq!(Currency::from_code("aud"), Err(MoneyError::UnknownCurrency));
        assert_eq!(Currency::from_code("CHF").unwrap().code(), "CHF");
    }

    #[test]
    fn amounts_print_with_the_minor_unit_scale() {
        assert_eq!(aud("1210").to_string(), "1210.00");
        assert_eq!(aud("-0.5").to_string(), "-0.50");
        assert_eq!(
            Money::parse("1210", Currency::JPY).unwrap().to_string(),
            "1210"
        );
        assert_eq!(
            Money::parse("1.5", Currency::BHD).unwrap().to_string(),
            "1.500"
        );
        assert_eq!(aud("1.230").minor(), 123);
    }

    #[test]
    fn sub_minor_digits_are_refused_unless_rounded() {
        assert_eq!(
            Money::parse("1.005", Currency::AUD),
            Err(MoneyError::Precision)
        );
        assert_eq!(
            Money::parse("1.5", Currency::JPY),
            Err(MoneyError::Precision)
        );
        let d = parse_decimal("1.005").unwrap();
        assert_eq!(
            Money::from_decimal_rounded(d, Currency::AUD, Rounding::HalfUp).unwrap(),
            aud("1.01")
        );
        assert_eq!(
            Money::from_decimal_rounded(d, Currency::AUD, Rounding::HalfEven).unwrap(),
            aud("1.00")
        );
    }

    #[test]
    fn mixing_currencies_is_an_error() {
        let eur = Money::parse("1", Currency::EUR).unwrap();
        assert_eq!(
            aud("1").checked_add(eur),
            Err(MoneyError::CurrencyMismatch {
                left: Currency::AUD,
                right: Currency::EUR
            })
        );
    }

    #[test]
    fn amounts_compare_only_within_a_currency() {
        assert_eq!(
            aud("1.00").checked_cmp(aud("0.99")),
            Ok(std::cmp::Ordering::Greater)
        );
        assert!(
            aud("1")
                .checked_cmp(Money::parse("1", Currency::JPY).unwrap())
                .is_err()
        );
    }

    #[test]
    fn overflow_is_an_error() {
        let max = Money::from_minor(i64::MAX, Currency::AUD);
        assert_eq!(max.checked_add(aud("0.01")), Err(MoneyError::Overflow));
        assert_eq!(
            Money::from_minor(i64::MIN, Currency::AUD).checked_neg(),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            max.checked_mul(Decimal::TWO, Rounding::HalfUp),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::parse("92233720368547758.08", Currency::AUD),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            aud("1").checked_div(Decimal::ZERO, Rounding::HalfUp),
            Err(MoneyError::DivisionByZero)
        );
    }

    #[test]
    fn allocation_tie_goes_to_larger_ratio_then_earlier_position() {
        let parts = aud("0.05").allocate(&[1, 2, 1, 2]).unwrap();
        // exact shares 0.8333, 1.6667, 0.8333, 1.6667 cents: floors 0,1,0,1; remainders 5/6,4/6,5/6,4/6.
        assert_eq!(
            parts.iter().map(|m| m.minor()).collect::<Vec<_>>(),
            [1, 2, 1, 1]
        );
        let parts = aud("0.01").allocate(&[1, 1]).unwrap();
        assert_eq!(parts.iter().map(|m| m.minor()).collect::<Vec<_>>(), [1, 0]);
        let parts = aud("0.01").allocate(&[1, 3, 3]).unwrap();
        // remainders: 1/7, 3/7, 3/7 -> the tie between the 3s goes to the earlier one.
        assert_eq!(
            parts.iter().map(|m| m.minor()).collect::<Vec<_>>(),
            [0, 1, 0]
        );
        let parts = aud("-100.00").allocate(&[1, 1, 1]).unwrap();
        assert_eq!(
            parts.iter().map(|m| m.minor()).collect::<Vec<_>>(),
            [-3334, -3333, -3333]
        );
        assert_eq!(aud("1").allocate(&[]), Err(MoneyError::InvalidRatios));
        assert_eq!(aud("1").allocate(&[0, 0]), Err(MoneyError::InvalidRatios));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn money_serializes_as_decimal_string_with_currency() {
        let json = serde_json::to_string(&aud("1210")).unwrap();
        assert_eq!(json, r#"{"amount":"1210.00","currency":"AUD"}"#);
        let back: Money = serde_json::from_str(&json).unwrap();
        assert_eq!(back, aud("1210"));
        assert!(serde_json::from_str::<Money>(r#"{"amount":1210.0,"currency":"AUD"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount":"1.001","currency":"AUD"}"#).is_err());
    }
}
