//! Accounting periods: a calendar month, written `YYYY-MM` on the wire and
//! stored as the first day of that month in SQL (the range partition key).

use std::fmt;

use chrono::NaiveDate;

/// Earliest and latest years a period may name. Wider than any ledger needs;
/// the bound keeps a typo like `20244-01` from creating a partition.
pub const YEAR_MIN: i32 = 1990;
pub const YEAR_MAX: i32 = 2099;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("must be written YYYY-MM")]
    Format,
    #[error("month must be 01 to 12")]
    Month,
    #[error("year must be {YEAR_MIN} to {YEAR_MAX}")]
    Year,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    year: i32,
    month: u32,
}

impl Period {
    /// Parses `YYYY-MM`.
    ///
    /// # Errors
    /// [`PeriodError`] for any other spelling, a month outside 01..=12 or a
    /// year outside [`YEAR_MIN`]..=[`YEAR_MAX`].
    pub fn parse(raw: &str) -> Result<Self, PeriodError> {
        let bytes = raw.as_bytes();
        let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
        if bytes.len() != 7 || bytes[4] != b'-' || !digits(0..4) || !digits(5..7) {
            return Err(PeriodError::Format);
        }
        let year: i32 = raw[0..4].parse().map_err(|_| PeriodError::Format)?;
        let month: u32 = raw[5..7].parse().map_err(|_| PeriodError::Format)?;
        Self::new(year, month)
    }

    /// # Errors
    /// [`PeriodError`] when the month or year is out of range.
    pub fn new(year: i32, month: u32) -> Result<Self, PeriodError> {
        if !(1..=12).contains(&month) {
            return Err(PeriodError::Month);
        }
        if !(YEAR_MIN..=YEAR_MAX).contains(&year) {
            return Err(PeriodError::Year);
        }
        Ok(Self { year, month })
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u32 {
        self.month
    }

    /// The first day of the month: the value stored in `accounting_period`.
    pub fn first_day(self) -> NaiveDate {
        // Year and month were range-checked at construction, so the date exists.
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or(NaiveDate::MIN)
    }

    /// # Errors
    /// [`PeriodError::Format`] when the date is not the first of a month.
    pub fn from_first_day(date: NaiveDate) -> Result<Self, PeriodError> {
        use chrono::Datelike;
        if date.day() != 1 {
            return Err(PeriodError::Format);
        }
        Self::new(date.year(), date.month())
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refuses_what_is_not_a_period() {
        assert_eq!(Period::parse("2024-13"), Err(PeriodError::Month));
        assert_eq!(Period::parse("2024-00"), Err(PeriodError::Month));
        assert_eq!(Period::parse("2024/01"), Err(PeriodError::Format));
        assert_eq!(Period::parse("24-01"), Err(PeriodError::Format));
        assert_eq!(Period::parse("+024-01"), Err(PeriodError::Format));
        assert_eq!(Period::parse("1850-01"), Err(PeriodError::Year));
        assert_eq!(Period::parse("2024-1é"), Err(PeriodError::Format));
    }

    proptest! {
        #[test]
        fn display_parses_back(year in YEAR_MIN..=YEAR_MAX, month in 1u32..=12) {
            let period = Period::new(year, month).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(Period::parse(&period.to_string()), Ok(period));
            prop_assert_eq!(Period::from_first_day(period.first_day()), Ok(period));
        }

        #[test]
        fn parse_never_panics(raw in "\\PC{0,12}") {
            let _ = Period::parse(&raw);
        }
    }
}
