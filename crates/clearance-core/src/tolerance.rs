//! How far a check may differ from the rows it clears (DESIGN.md, Money
//! rules). A difference is booked to unapplied cash only within the
//! tolerance of the check's currency (an absolute cap, or a rate of the
//! check, whichever is smaller) and only when the request allows it; an
//! overpayment beyond it only when the request sends it to unapplied cash
//! explicitly; a short payment beyond it never. Never a silent posting of an
//! arbitrary difference.

use rust_decimal::{Decimal, RoundingStrategy};

use crate::clearance::{Check, PostingError};
use crate::money::{Amount, Currency, CURRENCIES};

/// Per currency, the largest difference booked without a word: the smaller
/// of the currency's cap and `rate_bps` of the check, rounded down to the
/// cent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerance {
    caps: [Amount; CURRENCIES.len()],
    rate_bps: u32,
}

/// DESIGN.md's default: 1.00, or 0.1 % of the check, whichever is smaller.
pub const CAP_DEFAULT: Amount = Amount::ONE;
pub const RATE_BPS_DEFAULT: u32 = 10;

impl Default for Tolerance {
    fn default() -> Self {
        Self { caps: [CAP_DEFAULT; CURRENCIES.len()], rate_bps: RATE_BPS_DEFAULT }
    }
}

/// What the request says about a difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DifferenceConsent {
    /// A difference within the tolerance may go to unapplied cash.
    pub allow_difference: bool,
    /// An overpayment beyond the tolerance may go to unapplied cash.
    pub overpayment_to_unapplied: bool,
}

impl Tolerance {
    /// The default caps with `caps` (`CUR=AMOUNT`, comma-separated, e.g.
    /// `JPY=100,USD=5.00`) and `rate_bps` of the check.
    ///
    /// # Errors
    /// The rule the first bad item breaks.
    pub fn parse(caps: &str, rate_bps: u32) -> Result<Self, String> {
        if rate_bps > 10_000 {
            return Err("the rate is at most 10000 basis points (100 %)".into());
        }
        let mut tolerance = Self { rate_bps, ..Self::default() };
        for item in caps.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (code, cap) = item.split_once('=').ok_or_else(|| format!("{item:?} is not CUR=AMOUNT"))?;
            let currency = Currency::parse_code(code.trim()).map_err(|e| format!("{code:?}: {e}"))?;
            let cap = Amount::parse(cap.trim()).map_err(|e| format!("{item:?}: {e}"))?;
            if cap < Amount::ZERO {
                return Err(format!("{item:?}: a cap is not negative"));
            }
            tolerance.caps[index(currency)] = cap;
        }
        Ok(tolerance)
    }

    /// The largest difference booked for `check` without an explicit word.
    pub fn bound(&self, check: &Check) -> Amount {
        let rate = check.amount.as_decimal() * Decimal::from(self.rate_bps) / Decimal::from(10_000);
        let rate = rate.round_dp_with_strategy(2, RoundingStrategy::ToZero);
        let cap = self.caps[index(check.currency)].as_decimal();
        Amount::from_decimal(rate.min(cap)).unwrap_or(Amount::ZERO)
    }

    /// Whether a posting whose difference (check minus cleared total) is
    /// `difference` may be booked as the request says.
    ///
    /// # Errors
    /// [`PostingError::AmountMismatch`] for a difference the request does
    /// not allow at all; [`PostingError::DifferenceOutOfTolerance`] for a
    /// short payment beyond the bound, or an overpayment beyond it that the
    /// request does not send to unapplied cash.
    pub fn check(
        &self,
        check: &Check,
        total: Amount,
        difference: Amount,
        consent: DifferenceConsent,
    ) -> Result<(), PostingError> {
        if difference == Amount::ZERO {
            return Ok(());
        }
        if !consent.allow_difference && !consent.overpayment_to_unapplied {
            return Err(PostingError::AmountMismatch { selected: total, check: check.amount });
        }
        let bound = self.bound(check);
        let magnitude = difference.as_decimal().abs();
        let within = magnitude <= bound.as_decimal();
        let overpaid = difference > Amount::ZERO;
        if (within && consent.allow_difference) || (overpaid && consent.overpayment_to_unapplied) {
            return Ok(());
        }
        Err(PostingError::DifferenceOutOfTolerance { difference, bound })
    }
}

fn index(currency: Currency) -> usize {
    CURRENCIES.iter().position(|c| *c == currency.as_str()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(cents: i64, code: &str) -> Check {
        Check {
            number: "CHK".into(),
            amount: Amount::from_cents(cents),
            currency: Currency::parse_code(code).unwrap_or_else(|_| unreachable!()),
            received_on: chrono::NaiveDate::default(),
        }
    }

    #[test]
    fn the_bound_is_the_smaller_of_the_cap_and_the_rate() {
        let t = Tolerance::default();
        assert_eq!(t.bound(&check(10_000, "USD")), Amount::from_cents(10), "0.1 % of 100.00");
        assert_eq!(t.bound(&check(10_000_000, "USD")), Amount::from_cents(100), "capped at 1.00");
        assert_eq!(t.bound(&check(999, "USD")), Amount::from_cents(0), "rounded down to the cent");
        let jpy = Tolerance::parse("JPY=100, USD=5.00", 10).unwrap_or_default();
        assert_eq!(jpy.bound(&check(10_000_000_000, "JPY")), Amount::from_cents(10_000));
        assert_eq!(jpy.bound(&check(10_000_000_000, "EUR")), Amount::from_cents(100));
        for bad in ["JPY", "XXX=1", "USD=-1", "USD=1.001", "usd=1"] {
            assert!(Tolerance::parse(bad, 10).is_err(), "{bad}");
        }
        assert!(Tolerance::parse("", 10_001).is_err());
    }

    proptest! {
        #[test]
        fn no_difference_beyond_the_bound_is_booked_unless_an_overpayment_is_sent_to_unapplied(
            check_cents in 1i64..10_000_000_000, total_cents in -10_000_000_000i64..10_000_000_000,
            allow in any::<bool>(), over in any::<bool>(),
        ) {
            let t = Tolerance::default();
            let c = check(check_cents, "USD");
            let total = Amount::from_cents(total_cents);
            let difference = Amount::from_cents(check_cents - total_cents);
            let consent = DifferenceConsent { allow_difference: allow, overpayment_to_unapplied: over };
            let bound = t.bound(&c).as_decimal();
            let d = difference.as_decimal();
            match t.check(&c, total, difference, consent) {
                Ok(()) => prop_assert!(
                    d.is_zero() || (allow && d.abs() <= bound) || (over && d > Decimal::ZERO),
                    "booked {d} with bound {bound}, {consent:?}"
                ),
                Err(PostingError::AmountMismatch { .. }) => prop_assert!(!allow && !over && !d.is_zero()),
                Err(PostingError::DifferenceOutOfTolerance { bound: b, .. }) => {
                    prop_assert_eq!(b.as_decimal(), bound);
                    prop_assert!(d.abs() > bound || !allow);
                    prop_assert!(!(over && d > Decimal::ZERO));
                }
                Err(other) => prop_assert!(false, "{other}"),
            }
            // A short payment beyond the bound is never booked.
            if d < -bound {
                let both = DifferenceConsent { allow_difference: true, overpayment_to_unapplied: true };
                let refused = t.check(&c, total, difference, both).is_err();
                prop_assert!(refused, "a short payment of {} was booked", d);
            }
        }
    }
}
