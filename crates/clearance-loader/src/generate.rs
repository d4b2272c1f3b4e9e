//! A deterministic generator of realistic treaty transactions.
//!
//! Row `i` of seed `s` is a pure function of `(s, i)`, so the first N rows
//! are the same whatever total is asked for: seeding 100K rows after 10K adds
//! 90K, and seeding the same N twice adds nothing (the ids are UUID v5 of the
//! natural key). The shape is the same at every size:
//!
//! - 200 treaties `TR-0001`..`TR-0200`;
//! - `TR-0001` holds 32% of the rows, `TR-0002` 20%, `TR-0003` 10% (the heavy
//!   treaties, six cedents each, 60 periods from 2021-01 to 2025-12, mostly
//!   USD/EUR/GBP); the other 38% spread over the remaining 197 treaties, each
//!   with one to four cedents, 24 periods and a home currency;
//! - amounts from 100.00 to 999,999.99, log-spread, 8% of them negative
//!   (return premiums and claim offsets).

use std::ops::Range;

use chrono::NaiveDate;
use clearance_core::{Amount, CedentId, Currency, Period, TransactionId, TreatyId, UpstreamTransaction};
use clearance_pg::load::{LoadSource, RecordError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Treaties generated.
pub const TREATY_COUNT: u32 = 200;

/// Share of rows, in slots of 100, of the three heavy treaties.
const HEAVY_SLOTS: [u32; 3] = [32, 20, 10];

/// First period generated and how many follow it.
const FIRST_YEAR: i32 = 2021;
const HEAVY_PERIODS: u32 = 60;
const LIGHT_PERIODS: u32 = 24;

struct Profile {
    treaty: TreatyId,
    cedents: Vec<CedentId>,
    /// (currency, weight in percent); weights sum to 100.
    currencies: Vec<(Currency, u32)>,
    first_period: u32,
    periods: u32,
}

pub struct Generator {
    seed: u64,
    /// Rows the generator yields as a [`LoadSource`].
    rows_total: u64,
    rng: ChaCha8Rng,
    profiles: Vec<Profile>,
}

fn code<T>(parse: fn(&str) -> Result<T, clearance_core::ids::CodeError>, text: &str) -> T {
    match parse(text) {
        Ok(value) => value,
        // The generator only formats codes of the valid shape.
        Err(err) => panic!("generated code {text} is invalid: {err}"),
    }
}

fn currency(text: &str) -> Currency {
    match Currency::parse(text) {
        Ok(c) => c,
        Err(err) => panic!("generated currency {text} is invalid: {err}"),
    }
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        let homes = ["USD", "EUR", "GBP", "CHF", "CAD", "JPY", "AUD"];
        let profiles = (1..=TREATY_COUNT)
            .map(|n| {
                let treaty = code(TreatyId::parse, &format!("TR-{n:04}"));
                let heavy = n as usize <= HEAVY_SLOTS.len();
                if heavy {
                    let cedents = (0..6)
                        .map(|c| code(CedentId::parse, &format!("CED-{:03}", (n - 1) * 6 + c + 1)))
                        .collect();
                    let currencies = match n {
                        1 => vec![(currency("USD"), 80), (currency("EUR"), 12), (currency("GBP"), 8)],
                        2 => vec![(currency("EUR"), 70), (currency("USD"), 30)],
                        _ => vec![(currency("GBP"), 60), (currency("USD"), 40)],
                    };
                    Profile { treaty, cedents, currencies, first_period: 0, periods: HEAVY_PERIODS }
                } else {
                    let cedent_count = 1 + n % 4;
                    let cedents = (0..cedent_count)
                        .map(|c| code(CedentId::parse, &format!("CED-{:03}", 19 + (n * 7 + c * 13) % 80)))
                        .collect();
                    let home = currency(homes[n as usize % homes.len()]);
                    let currencies = if home.as_str() == "USD" {
                        vec![(home, 100)]
                    } else {
                        vec![(home, 90), (currency("USD"), 10)]
                    };
                    let first_period = (n * 5) % (HEAVY_PERIODS - LIGHT_PERIODS);
                    Profile { treaty, cedents, currencies, first_period, periods: LIGHT_PERIODS }
                }
            })
            .collect();
        Self { seed, rows_total: 0, rng: ChaCha8Rng::seed_from_u64(seed), profiles }
    }

    /// The first `rows_total` rows of this seed, as a [`LoadSource`].
    pub fn with_rows(mut self, rows_total: u64) -> Self {
        self.rows_total = rows_total;
        self
    }

    /// Rows `range` of this seed, in index order.
    pub fn rows(&self, range: Range<u64>) -> impl Iterator<Item = UpstreamTransaction> + '_ {
        range.map(move |i| self.row(i))
    }

    /// Row `i`: a function of the seed and `i` alone.
    pub fn row(&self, i: u64) -> UpstreamTransaction {
        let mut rng = self.rng.clone();
        rng.set_stream(i);
        rng.set_word_pos(0);

        // A permutation of each block of 100 rows (37 is coprime to 100), so
        // that even a small N holds every heavy treaty in its share.
        let slot = ((i % 100) * 37 % 100) as u32;
        let profile = match slot {
            s if s < HEAVY_SLOTS[0] => &self.profiles[0],
            s if s < HEAVY_SLOTS[0] + HEAVY_SLOTS[1] => &self.profiles[1],
            s if s < HEAVY_SLOTS.iter().sum::<u32>() => &self.profiles[2],
            _ => {
                &self.profiles
                    [HEAVY_SLOTS.len() + rng.random_range(0..self.profiles.len() - HEAVY_SLOTS.len())]
            }
        };

        let cedent = profile.cedents[rng.random_range(0..profile.cedents.len())].clone();
        let month_index = profile.first_period + rng.random_range(0..profile.periods);
        let year = FIRST_YEAR + (month_index / 12) as i32;
        let month = month_index % 12 + 1;
        let period = match Period::new(year, month) {
            Ok(p) => p,
            Err(err) => panic!("generated period {year}-{month} is invalid: {err}"),
        };
        let day = rng.random_range(1..=28);
        let txn_date = NaiveDate::from_ymd_opt(year, month, day).unwrap_or(period.first_day());

        let mut pick = rng.random_range(0..100);
        let mut currency = profile.currencies[0].0;
        for (c, weight) in &profile.currencies {
            if pick < *weight {
                currency = *c;
                break;
            }
            pick -= weight;
        }

        // Log-spread magnitude: pick the number of digits, then a value.
        let digits = rng.random_range(4..=7_u32);
        let mut cents: i64 = rng.random_range(10_i64.pow(digits)..10_i64.pow(digits + 1));
        if rng.random_range(0..100) < 8 {
            cents = -cents;
        }

        let quarter = (month - 1) / 3 + 1;
        let reference = format!("SOA-{year}Q{quarter}-{cedent}-{:04}", i % 10_000);
        let source_ref = format!("GEN-{}-{i:010}", self.seed);
        let id = TransactionId::from_natural_key(&profile.treaty, period, &source_ref);
        UpstreamTransaction {
            id,
            source_ref,
            treaty_id: profile.treaty.clone(),
            cedent_id: cedent,
            accounting_period: period,
            txn_date,
            amount: Amount::from_cents(cents),
            currency,
            reference,
        }
    }
}

impl LoadSource for Generator {
    fn scan(&mut self, visit: &mut dyn FnMut(u64, UpstreamTransaction)) -> Result<(), RecordError> {
        for i in 0..self.rows_total {
            visit(i, self.row(i));
        }
        Ok(())
    }

    fn fetch(&mut self, position: u64) -> Result<UpstreamTransaction, RecordError> {
        Ok(self.row(position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn a_row_depends_on_seed_and_index_only() {
        let a = Generator::new(42);
        let b = Generator::new(42);
        let c = Generator::new(43);
        assert_eq!(a.row(12_345), b.row(12_345));
        assert_ne!(a.row(12_345).id, c.row(12_345).id);
        let head: Vec<_> = a.rows(0..100).collect();
        let longer: Vec<_> = b.rows(0..200).collect();
        assert_eq!(head[..], longer[..100]);
    }

    #[test]
    fn the_heaviest_treaty_holds_at_least_30_percent_over_six_cedents() {
        for n in [10_u64, 100, 1_000, 20_000] {
            let rows: Vec<_> = Generator::new(1).rows(0..n).collect();
            let mut per_treaty: HashMap<&str, u64> = HashMap::new();
            for r in &rows {
                *per_treaty.entry(r.treaty_id.as_str()).or_default() += 1;
            }
            let heaviest = per_treaty.get("TR-0001").copied().unwrap_or(0);
            assert!(heaviest * 100 >= n * 30, "{heaviest} of {n}");
            assert!(per_treaty.values().all(|&c| c <= heaviest));
        }
        let rows: Vec<_> = Generator::new(1).rows(0..20_000).collect();
        let heavy: Vec<_> = rows.iter().filter(|r| r.treaty_id.as_str() == "TR-0001").collect();
        let cedents: HashSet<_> = heavy.iter().map(|r| r.cedent_id.as_str()).collect();
        let periods: HashSet<_> = heavy.iter().map(|r| r.accounting_period).collect();
        let currencies: HashSet<_> = heavy.iter().map(|r| r.currency).collect();
        assert_eq!(cedents.len(), 6);
        assert_eq!(periods.len(), HEAVY_PERIODS as usize);
        assert_eq!(currencies.len(), 3);
        let ids: HashSet<_> = rows.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), rows.len());
    }
}
