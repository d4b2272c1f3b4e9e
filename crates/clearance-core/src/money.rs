//! Money. Never a float: amounts are `rust_decimal::Decimal` with at most two
//! decimal places and fit SQL `NUMERIC(18,2)`; on the wire they are strings.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

/// Decimal places of every stored amount (`NUMERIC(18,2)`).
pub const AMOUNT_SCALE: u32 = 2;

/// Digits of `NUMERIC(18,2)` left of the point: sixteen.
const AMOUNT_INTEGER_DIGITS_MAX: usize = 16;

/// Longest amount string read: sign, sixteen digits, point, two decimals.
const AMOUNT_TEXT_LEN_MAX: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("must be a decimal number such as 1234.50")]
    Format,
    #[error("must have at most {AMOUNT_SCALE} decimal places")]
    Precision,
    #[error("must be less than 10^16 in absolute value")]
    Range,
}

/// An amount of money in some currency, exact to the cent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(Decimal);

impl Amount {
    pub const ZERO: Self = Self(Decimal::ZERO);
    /// 1.00.
    pub const ONE: Self = Self(Decimal::from_parts(100, 0, 0, false, AMOUNT_SCALE));

    /// Parses a plain decimal: optional '-', digits, optional '.' and one or
    /// two digits. No exponent, no thousands separator, no '+'.
    ///
    /// # Errors
    /// [`AmountError`] when the text is not such a decimal, has more than two
    /// decimal places, or does not fit `NUMERIC(18,2)`.
    pub fn parse(raw: &str) -> Result<Self, AmountError> {
        if raw.is_empty() || raw.len() > AMOUNT_TEXT_LEN_MAX + 8 {
            return Err(AmountError::Format);
        }
        let unsigned = raw.strip_prefix('-').unwrap_or(raw);
        let (integer, fraction) = match unsigned.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (unsigned, None),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if integer.is_empty() || !all_digits(integer) {
            return Err(AmountError::Format);
        }
        if let Some(f) = fraction {
            if f.is_empty() || !all_digits(f) {
                return Err(AmountError::Format);
            }
            if f.len() > AMOUNT_SCALE as usize {
                return Err(AmountError::Precision);
            }
        }
        if integer.trim_start_matches('0').len() > AMOUNT_INTEGER_DIGITS_MAX {
            return Err(AmountError::Range);
        }
        let value = Decimal::from_str(raw).map_err(|_| AmountError::Format)?;
        Ok(Self(value))
    }

    /// # Errors
    /// [`AmountError`] when the decimal has more than two places or does not
    /// fit `NUMERIC(18,2)`.
    pub fn from_decimal(value: Decimal) -> Result<Self, AmountError> {
        if value.normalize().scale() > AMOUNT_SCALE {
            return Err(AmountError::Precision);
        }
        if value.abs() >= Decimal::from(10_i64.pow(AMOUNT_INTEGER_DIGITS_MAX as u32)) {
            return Err(AmountError::Range);
        }
        Ok(Self(value))
    }

    /// An amount from whole cents; exact by construction.
    pub fn from_cents(cents: i64) -> Self {
        Self(Decimal::new(cents, AMOUNT_SCALE))
    }

    pub fn as_decimal(self) -> Decimal {
        self.0
    }

    /// # Errors
    /// [`AmountError::Range`] when the sum leaves `NUMERIC(18,2)`.
    pub fn checked_add(self, other: Self) -> Result<Self, AmountError> {
        let sum = self.0.checked_add(other.0).ok_or(AmountError::Range)?;
        Self::from_decimal(sum)
    }
}

impl fmt::Display for Amount {
    /// Always two decimal places: `1234.50`, `-0.05`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut value = self.0;
        value.rescale(AMOUNT_SCALE);
        write!(f, "{value}")
    }
}

/// Currencies the ledger books. ISO 4217 codes; a currency outside this list
/// is refused rather than stored, so totals per currency stay meaningful.
pub const CURRENCIES: &[&str] = &[
    "AUD", "BRL", "CAD", "CHF", "CNY", "DKK", "EUR", "GBP", "HKD", "INR", "JPY", "MXN", "NOK", "NZD", "SEK",
    "SGD", "USD", "ZAR",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be one of the booked ISO 4217 currencies ({})", CURRENCIES.join(", "))]
pub struct CurrencyError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency(&'static str);

impl Currency {
    /// Parses an ISO 4217 code, case-insensitively.
    ///
    /// # Errors
    /// [`CurrencyError`] when the code is not in [`CURRENCIES`].
    pub fn parse(raw: &str) -> Result<Self, CurrencyError> {
        let trimmed = raw.trim();
        CURRENCIES
            .iter()
            .find(|code| code.eq_ignore_ascii_case(trimmed))
            .map(|code| Self(code))
            .ok_or(CurrencyError)
    }

    /// Parses a code exactly as ISO 4217 spells it (upper case, no
    /// space): how the API takes a currency, an `enum` in the schema.
    ///
    /// # Errors
    /// [`CurrencyError`] when the code is not in [`CURRENCIES`] so spelled.
    pub fn parse_code(raw: &str) -> Result<Self, CurrencyError> {
        CURRENCIES.iter().find(|code| **code == raw).map(|code| Self(code)).ok_or(CurrencyError)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refuses_floats_in_disguise_and_over_precise_amounts() {
        assert_eq!(Amount::parse("1e5"), Err(AmountError::Format));
        assert_eq!(Amount::parse("1,000.00"), Err(AmountError::Format));
        assert_eq!(Amount::parse("+1.00"), Err(AmountError::Format));
        assert_eq!(Amount::parse("1."), Err(AmountError::Format));
        assert_eq!(Amount::parse(".5"), Err(AmountError::Format));
        assert_eq!(Amount::parse("NaN"), Err(AmountError::Format));
        assert_eq!(Amount::parse("1.005"), Err(AmountError::Precision));
        assert_eq!(Amount::parse("10000000000000000"), Err(AmountError::Range));
        assert_eq!(
            Amount::parse("9999999999999999.99").map(|a| a.to_string()),
            Ok("9999999999999999.99".into())
        );
        assert_eq!(Amount::parse("-0.5").map(|a| a.to_string()), Ok("-0.50".into()));
    }

    #[test]
    fn currencies_are_from_the_booked_list() {
        assert_eq!(Currency::parse("usd").map(Currency::as_str), Ok("USD"));
        assert_eq!(Currency::parse("XXX"), Err(CurrencyError));
        assert_eq!(Currency::parse(""), Err(CurrencyError));
    }

    proptest! {
        #[test]
        fn cents_round_trip_exactly(cents in -999_999_999_999_999_999_i64..=999_999_999_999_999_999) {
            let amount = Amount::from_cents(cents);
            prop_assert_eq!(Amount::parse(&amount.to_string()), Ok(amount));
        }

        #[test]
        fn sums_of_cents_are_exact(a in -1_000_000_000_i64..1_000_000_000, b in -1_000_000_000_i64..1_000_000_000) {
            let sum = Amount::from_cents(a).checked_add(Amount::from_cents(b));
            prop_assert_eq!(sum, Ok(Amount::from_cents(a + b)));
        }

        #[test]
        fn parse_never_panics(raw in "\\PC{0,40}") {
            let _ = Amount::parse(&raw);
        }
    }
}
