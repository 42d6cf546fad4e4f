//! Australian GST: 10 % on an exclusive price, 1/11 of an inclusive price, rounded to the cent half up, per
//! invoice or per taxable supply (the GST Act allows both; an audit accepts both and records which).

use rust_decimal::Decimal;

use crate::invoice::TaxRounding;
use crate::money::{Money, MoneyError, Rounding};
use crate::violation::{Violation, codes};

/// The GST rate in percent.
pub const RATE_PERCENT: Decimal = Decimal::TEN;

/// Whether prices include GST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PriceBasis {
    /// Prices exclude GST: the GST is 10 % of the price.
    Exclusive,
    /// Prices include GST: the GST is 1/11 of the price.
    Inclusive,
}

/// Where the rounding to the cent happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// Sum the supplies, then compute and round the GST once ("total invoice" rounding).
    PerInvoice,
    /// Compute and round the GST of each taxable supply, then sum ("taxable supply" rounding).
    PerSupply,
}

/// The GST on a price that excludes it: 10 %, rounded half up to the minor unit.
///
/// ```
/// use fin_invariants::{gst, Currency, Money};
/// let gst = gst::on_exclusive(Money::parse("10.05", Currency::AUD)?)?;
/// assert_eq!(gst.to_string(), "1.01"); // 1.005 rounds half up
/// # Ok::<(), fin_invariants::MoneyError>(())
/// ```
///
/// # Errors
///
/// [`MoneyError::Overflow`].
pub fn on_exclusive(price: Money) -> Result<Money, MoneyError> {
    price.checked_mul(Decimal::new(1, 1), Rounding::HalfUp)
}

/// The GST contained in a price that includes it: 1/11, rounded half up to the minor unit.
///
/// ```
/// use fin_invariants::{gst, Currency, Money};
/// let gst = gst::in_inclusive(Money::parse("110.00", Currency::AUD)?)?;
/// assert_eq!(gst.to_string(), "10.00");
/// # Ok::<(), fin_invariants::MoneyError>(())
/// ```
///
/// # Errors
///
/// [`MoneyError::Overflow`].
pub fn in_inclusive(price: Money) -> Result<Money, MoneyError> {
    price.checked_div(Decimal::from(11u8), Rounding::HalfUp)
}

fn gst_of(price: Money, basis: PriceBasis) -> Result<Money, MoneyError> {
    match basis {
        PriceBasis::Exclusive => on_exclusive(price),
        PriceBasis::Inclusive => in_inclusive(price),
    }
}

/// The GST of an invoice whose taxable supplies are `supplies` (all in one currency), by `method`.
///
/// # Errors
///
/// [`MoneyError::CurrencyMismatch`], [`MoneyError::Overflow`], and [`MoneyError::InvalidRatios`] for no
/// supplies (there is no currency to answer in).
pub fn total(supplies: &[Money], basis: PriceBasis, method: Method) -> Result<Money, MoneyError> {
    let currency = supplies
        .first()
        .ok_or(MoneyError::InvalidRatios)?
        .currency();
    match method {
        Method::PerInvoice => gst_of(Money::sum(currency, supplies.iter().copied())?, basis),
        Method::PerSupply => supplies.iter().try_fold(Money::zero(currency), |acc, &s| {
            acc.checked_add(gst_of(s, basis)?)
        }),
    }
}

/// Checks the GST stated on an invoice against both rounding methods and says which one was used.
///
/// ```
/// use fin_invariants::{gst, Currency, Money, invoice::TaxRounding};
/// let aud = |s| Money::parse(s, Currency::AUD).unwrap();
/// let supplies = [aud("0.05"), aud("0.05"), aud("0.05")]; // 0.005 GST each
/// let used = gst::check(&supplies, gst::PriceBasis::Exclusive, aud("0.03"));
/// assert_eq!(used, Ok(TaxRounding::PerSupply)); // per invoice would be 0.015 -> 0.02
/// ```
///
/// # Errors
///
/// A [`codes::GST`] violation at `/gst` when the stated GST matches neither method (or the amounts
/// cannot be summed by either), with the per-invoice figure as `expected` (the per-supply one when the
/// per-invoice sum overflows).
pub fn check(
    supplies: &[Money],
    basis: PriceBasis,
    stated: Money,
) -> Result<TaxRounding, Violation> {
    let fail = |message: &'static str| Violation::new(codes::GST, "/gst", message);
    if supplies.is_empty() {
        return if stated.is_zero() {
            Ok(TaxRounding::Either)
        } else {
            Err(fail("GST stated without taxable supplies").with_values("0", stated))
        };
    }
    // Each method on its own: near the i64 limits one may overflow (the sum of the supplies) while the
    // other still gives a figure.
    let per_invoice = total(supplies, basis, Method::PerInvoice).ok();
    let per_supply = total(supplies, basis, Method::PerSupply).ok();
    let Some(figure) = per_invoice.or(per_supply) else {
        return Err(fail("supplies cannot be summed"));
    };
    if stated.currency() != figure.currency() {
        return Err(fail("GST in another currency than the supplies"));
    }
    match (per_invoice == Some(stated), per_supply == Some(stated)) {
        (true, true) => Ok(TaxRounding::Either),
        (true, false) => Ok(TaxRounding::PerInvoice),
        (false, true) => Ok(TaxRounding::PerSupply),
        (false, false) => Err(
            fail("GST matches neither per-invoice nor per-supply rounding")
                .with_values(figure, stated),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    fn aud(s: &str) -> Money {
        Money::parse(s, Currency::AUD).unwrap()
    }

    #[test]
    fn ten_percent_exclusive_and_one_eleventh_inclusive() {
        assert_eq!(on_exclusive(aud("100.00")).unwrap(), aud("10.00"));
        assert_eq!(on_exclusive(aud("0.05")).unwrap(), aud("0.01"));
        assert_eq!(on_exclusive(aud("0.04")).unwrap(), aud("0.00"));
        assert_eq!(in_inclusive(aud("110.00")).unwrap(), aud("10.00"));
        // 10.00 / 11 = 0.90909...
        assert_eq!(in_inclusive(aud("10.00")).unwrap(), aud("0.91"));
        // 0.55 / 11 = 0.05 exactly; 0.66 / 11 = 0.06
        assert_eq!(in_inclusive(aud("0.55")).unwrap(), aud("0.05"));
    }

    #[test]
    fn both_rounding_methods_are_accepted_and_recorded() {
        let supplies = [aud("9.95"), aud("9.95"), aud("9.95")];
        // per supply: 0.995 -> 1.00 each = 3.00; per invoice: 2.985 -> 2.99
        assert_eq!(
            check(&supplies, PriceBasis::Exclusive, aud("3.00")),
            Ok(TaxRounding::PerSupply)
        );
        assert_eq!(
            check(&supplies, PriceBasis::Exclusive, aud("2.99")),
            Ok(TaxRounding::PerInvoice)
        );
        assert_eq!(
            check(&supplies, PriceBasis::Exclusive, aud("2.98"))
                .unwrap_err()
                .code,
            codes::GST
        );
        let round = [aud("100.00"), aud("20.00")];
        assert_eq!(
            check(&round, PriceBasis::Exclusive, aud("12.00")),
            Ok(TaxRounding::Either)
        );
        let inclusive = [aud("10.00"), aud("10.00")];
        // per supply 0.91 + 0.91 = 1.82; per invoice 20/11 = 1.818 -> 1.82
        assert_eq!(
            check(&inclusive, PriceBasis::Inclusive, aud("1.82")),
            Ok(TaxRounding::Either)
        );
        let inclusive = [aud("1.00"), aud("1.00"), aud("1.00")];
        // per supply 0.09 x 3 = 0.27; per invoice 3/11 = 0.2727 -> 0.27; both
        assert_eq!(
            check(&inclusive, PriceBasis::Inclusive, aud("0.27")),
            Ok(TaxRounding::Either)
        );
        let inclusive = [aud("0.50"), aud("0.50"), aud("0.50")];
        // per supply 0.045 -> 0.05 each = 0.15; per invoice 1.50/11 = 0.136 -> 0.14
        assert_eq!(
            check(&inclusive, PriceBasis::Inclusive, aud("0.15")),
            Ok(TaxRounding::PerSupply)
        );
        assert_eq!(
            check(&inclusive, PriceBasis::Inclusive, aud("0.14")),
            Ok(TaxRounding::PerInvoice)
        );
    }
}
