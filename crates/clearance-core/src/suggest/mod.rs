//! Suggested matches: which open rows of a snapshot a check most plausibly
//! pays, each proposal a selection a clearance takes as it is, with its
//! total and why it was proposed. Read from the snapshot only (never the
//! ledger): the guard decides at clearance time whether the rows are still
//! open. The same snapshot and request give the same answer.
//!
//! Strategies, in rank order among exact proposals:
//! 1. `reference`: the remittance lines' references found among the open
//!    rows (a line with an amount takes one row of that amount); lines not
//!    found are listed with why.
//! 2. `single_row`: one open row equal to the check.
//! 3. `cedent_period` / `cedent`: every open row of one cedent (and one
//!    period) in the check's currency, summing exactly to it.
//! 4. `exact_sum`: a few rows of one cedent and period summing exactly to
//!    the check, by the bounded search of [`subset`].
//!
//! A reference match that does not sum to the check is still proposed,
//! after every exact one, with its difference.

mod input;
pub mod subset;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use uuid::Uuid;

pub use input::{
    reference_key, RemittanceInput, RemittanceLine, SuggestInput, SuggestRequest, REMITTANCE_CSV_BYTES_MAX,
    REMITTANCE_LINES_MAX,
};

use crate::ids::{CedentId, TreatyId};
use crate::money::{Amount, Currency};
use crate::period::Period;
use crate::transaction::{LedgerRow, TxnStatus};

/// Most proposals answered.
pub const SUGGESTIONS_MAX: usize = 10;
/// Most single rows equal to the check proposed.
pub const SINGLE_ROWS_MAX: usize = 3;
/// Most exact-sum proposals.
pub const EXACT_SUMS_MAX: usize = 3;
/// The exact-sum search's work, in subset sums (deterministic).
pub const SEARCH_WORK_MAX: u64 = 1 << 22;
/// The exact-sum search's wall-clock stop, should a slow host need it.
pub const SEARCH_TIME_MAX: Duration = Duration::from_millis(200);
/// A whole group whose cedent has rows in several treaties of the snapshot
/// (no view names it) is proposed by its ids up to this many rows.
pub const GROUP_IDS_MAX: usize = 2_000;
/// Unmatched remittance lines listed (their count is always given).
pub const UNMATCHED_SHOWN: usize = 1_000;

/// How a proposal was found; the rank order among exact proposals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Strategy {
    Reference,
    SingleRow,
    CedentPeriod,
    Cedent,
    ExactSum,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reference => "reference",
            Self::SingleRow => "single_row",
            Self::CedentPeriod => "cedent_period",
            Self::Cedent => "cedent",
            Self::ExactSum => "exact_sum",
        }
    }
}

/// The rows a proposal takes, as a clearance's selection names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proposed {
    /// `{"ids": [...]}`, in snapshot order.
    Ids(Vec<Uuid>),
    /// `{"all": true, "except": [], "view": {cedent, currency, period}}`:
    /// every open row of the group, however many.
    Group { cedent: CedentId, currency: Currency, period: Option<Period> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub strategy: Strategy,
    pub treaty_id: TreatyId,
    pub selection: Proposed,
    pub row_count: u64,
    pub total: Amount,
    /// The check less the rows' total: zero for an exact proposal.
    pub difference: Amount,
    pub reason: String,
}

/// Why a remittance line found no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmatched {
    /// No row of the snapshot has the reference.
    NoRow,
    /// Rows have it, none open in the check's currency.
    NotOpen,
    /// Open rows have it, none of the line's amount (or all taken by
    /// earlier lines).
    AmountDiffers,
}

impl Unmatched {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoRow => "no_row",
            Self::NotOpen => "not_open",
            Self::AmountDiffers => "amount_differs",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedLine {
    pub line: RemittanceLine,
    pub reason: Unmatched,
}

/// How far the exact-sum search went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchReport {
    pub groups: usize,
    pub groups_searched: usize,
    /// Work done, in subset sums.
    pub work: u64,
    /// `Some("work")` or `Some("time")` when a limit stopped it.
    pub stopped_by: Option<&'static str>,
}

/// Time spent per strategy, for the benchmark and the logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct StrategyTimings {
    pub reference: Duration,
    pub single_row: Duration,
    pub totals: Duration,
    pub exact_sum: Duration,
}

#[derive(Debug, Clone)]
pub struct Suggestions {
    pub suggestions: Vec<Suggestion>,
    pub unmatched_count: usize,
    /// The first [`UNMATCHED_SHOWN`] unmatched lines, in line order.
    pub unmatched: Vec<UnmatchedLine>,
    pub candidates: usize,
    pub search: SearchReport,
    pub timings: StrategyTimings,
}

/// Candidates (indices) by treaty, cedent and period (indices).
type GroupKey = (u32, u32, Period);
type Groups = BTreeMap<GroupKey, Vec<u32>>;

/// An open row in the check's currency, as the strategies need it.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    id: Uuid,
    treaty: u32,
    cedent: u32,
    period: Period,
    cents: i64,
}

fn cents(amount: Amount) -> i64 {
    let mut d = amount.as_decimal();
    d.rescale(crate::money::AMOUNT_SCALE);
    // NUMERIC(18,2) fits i64 cents by construction.
    i64::try_from(d.mantissa()).unwrap_or(i64::MAX)
}

/// Collects, a snapshot page at a time, what the strategies need: the open
/// rows in the check's currency (about 40 bytes each) and the remittance
/// references' rows; no other row is kept.
pub struct SuggestionScan<'a> {
    request: &'a SuggestRequest,
    target: i64,
    keys: HashSet<String>,
    treaties: Vec<TreatyId>,
    cedents: Vec<CedentId>,
    cedent_index: HashMap<CedentId, u32>,
    rows: Vec<Candidate>,
    /// Reference key → candidates holding it, in snapshot order.
    by_reference: HashMap<String, Vec<u32>>,
    /// Reference keys seen on rows that are not candidates.
    seen_elsewhere: HashSet<String>,
}

impl<'a> SuggestionScan<'a> {
    pub fn new(request: &'a SuggestRequest) -> Self {
        Self {
            request,
            target: cents(request.amount),
            keys: request.remittance.iter().map(RemittanceLine::key).collect(),
            treaties: Vec::new(),
            cedents: Vec::new(),
            cedent_index: HashMap::new(),
            rows: Vec::new(),
            by_reference: HashMap::new(),
            seen_elsewhere: HashSet::new(),
        }
    }

    /// Takes what the strategies need from the next page of the snapshot.
    pub fn take(&mut self, page: &[LedgerRow]) {
        for row in page {
            let candidate = row.status == TxnStatus::Open && row.currency == self.request.currency;
            if !self.keys.is_empty() {
                let key = reference_key(&row.reference);
                if self.keys.contains(&key) {
                    if candidate {
                        let at = self.rows.len() as u32;
                        self.by_reference.entry(key).or_default().push(at);
                    } else {
                        self.seen_elsewhere.insert(key);
                    }
                }
            }
            if candidate {
                let treaty = self.treaty(&row.treaty_id);
                let cedent = self.cedent(&row.cedent_id);
                let (id, period, cents) = (row.id.0, row.accounting_period, cents(row.amount));
                self.rows.push(Candidate { id, treaty, cedent, period, cents });
            }
        }
    }

    fn treaty(&mut self, treaty: &TreatyId) -> u32 {
        match self.treaties.iter().position(|t| t == treaty) {
            Some(at) => at as u32,
            None => {
                self.treaties.push(treaty.clone());
                (self.treaties.len() - 1) as u32
            }
        }
    }

    fn cedent(&mut self, cedent: &CedentId) -> u32 {
        if let Some(&at) = self.cedent_index.get(cedent) {
            return at;
        }
        let at = self.cedents.len() as u32;
        self.cedents.push(cedent.clone());
        self.cedent_index.insert(cedent.clone(), at);
        at
    }

    /// Runs the strategies and ranks their proposals.
    pub fn finish(self) -> Suggestions {
        let mut timings = StrategyTimings::default();
        let started = Instant::now();
        let (mut proposals, unmatched) = self.by_references();
        timings.reference = started.elapsed();
        let started = Instant::now();
        proposals.extend(self.single_rows());
        timings.single_row = started.elapsed();
        let started = Instant::now();
        let groups = self.groups();
        proposals.extend(self.group_totals(&groups));
        timings.totals = started.elapsed();
        let started = Instant::now();
        let (sums, search) = self.exact_sums(&groups);
        proposals.extend(sums);
        timings.exact_sum = started.elapsed();
        Suggestions {
            suggestions: rank(proposals),
            unmatched_count: unmatched.len(),
            unmatched: unmatched.into_iter().take(UNMATCHED_SHOWN).collect(),
            candidates: self.rows.len(),
            search,
            timings,
        }
    }

    fn proposal(
        &self,
        strategy: Strategy,
        members: Vec<u32>,
        selection: Option<Proposed>,
        reason: String,
    ) -> Ranked {
        let total: i64 = members.iter().map(|&m| self.rows[m as usize].cents).sum();
        let ids: Vec<Uuid> = members.iter().map(|&m| self.rows[m as usize].id).collect();
        let treaty = members.first().map_or(0, |&m| self.rows[m as usize].treaty) as usize;
        let mut key = ids.clone();
        key.sort_unstable();
        Ranked {
            key,
            suggestion: Suggestion {
                strategy,
                treaty_id: self.treaties[treaty].clone(),
                row_count: members.len() as u64,
                total: Amount::from_cents(total),
                difference: Amount::from_cents(self.target - total),
                selection: selection.unwrap_or(Proposed::Ids(ids)),
                reason,
            },
        }
    }

    /// Each line takes, in line order, the open rows with its reference not
    /// taken by an earlier line: one of its amount if it states one, else
    /// all of them. One proposal per treaty the matches fall in.
    fn by_references(&self) -> (Vec<Ranked>, Vec<UnmatchedLine>) {
        let mut taken: BTreeSet<u32> = BTreeSet::new();
        let mut unmatched = Vec::new();
        let mut matched_lines = 0_usize;
        for line in &self.request.remittance {
            let key = line.key();
            let rows = self.by_reference.get(&key).map(Vec::as_slice).unwrap_or_default();
            let free = rows.iter().copied().filter(|r| !taken.contains(r));
            let picked: Vec<u32> = match line.amount {
                Some(amount) => {
                    free.filter(|&r| self.rows[r as usize].cents == cents(amount)).take(1).collect()
                }
                None => free.collect(),
            };
            if picked.is_empty() {
                let reason = if !rows.is_empty() {
                    Unmatched::AmountDiffers
                } else if self.seen_elsewhere.contains(&key) {
                    Unmatched::NotOpen
                } else {
                    Unmatched::NoRow
                };
                unmatched.push(UnmatchedLine { line: line.clone(), reason });
            } else {
                matched_lines += 1;
                taken.extend(picked);
            }
        }
        let mut by_treaty: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        // Snapshot order within each proposal.
        for r in taken {
            by_treaty.entry(self.rows[r as usize].treaty).or_default().push(r);
        }
        let lines = self.request.remittance.len();
        let proposals = by_treaty
            .into_values()
            .map(|members| {
                let reason = format!(
                    "{matched_lines} of {lines} remittance lines matched {} open rows by reference",
                    members.len()
                );
                self.proposal(Strategy::Reference, members, None, reason)
            })
            .collect();
        (proposals, unmatched)
    }

    fn single_rows(&self) -> Vec<Ranked> {
        let equal: Vec<u32> =
            (0..self.rows.len() as u32).filter(|&r| self.rows[r as usize].cents == self.target).collect();
        let count = equal.len();
        equal
            .into_iter()
            .take(SINGLE_ROWS_MAX)
            .map(|r| {
                let reason = if count == 1 {
                    "the one open row equal to the check".to_owned()
                } else {
                    format!("an open row equal to the check ({count} are)")
                };
                self.proposal(Strategy::SingleRow, vec![r], None, reason)
            })
            .collect()
    }

    /// The candidates by treaty, cedent and period, in snapshot order.
    fn groups(&self) -> Groups {
        let mut groups = Groups::new();
        for (r, row) in self.rows.iter().enumerate() {
            groups.entry((row.treaty, row.cedent, row.period)).or_default().push(r as u32);
        }
        groups
    }

    /// Whole groups summing to the check: a cedent's period, or the cedent.
    /// Proposed as a view selection when the cedent has candidates in one
    /// treaty (a view names no treaty), else by ids up to [`GROUP_IDS_MAX`].
    fn group_totals(&self, groups: &Groups) -> Vec<Ranked> {
        let mut treaties_of: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
        let mut cedent_rows: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (&(treaty, cedent, _), members) in groups {
            treaties_of.entry(cedent).or_default().insert(treaty);
            cedent_rows.entry(cedent).or_default().extend(members);
        }
        let sum = |members: &[u32]| members.iter().map(|&m| self.rows[m as usize].cents).sum::<i64>();
        let one_treaty = |cedent: u32| treaties_of.get(&cedent).is_some_and(|t| t.len() == 1);
        let group = |cedent: u32, period: Option<Period>| {
            one_treaty(cedent).then(|| Proposed::Group {
                cedent: self.cedents[cedent as usize].clone(),
                currency: self.request.currency,
                period,
            })
        };
        let proposable = |cedent: u32, members: &[u32]| {
            members.len() > 1
                && (one_treaty(cedent) || members.len() <= GROUP_IDS_MAX)
                && sum(members) == self.target
        };
        let mut out = Vec::new();
        for (&(_, cedent, period), members) in groups {
            if proposable(cedent, members) {
                let name = &self.cedents[cedent as usize];
                let reason = format!(
                    "every open row of {name} in {period} ({} rows) sums to the check",
                    members.len()
                );
                out.push(self.proposal(
                    Strategy::CedentPeriod,
                    members.clone(),
                    group(cedent, Some(period)),
                    reason,
                ));
            }
        }
        for (cedent, mut members) in cedent_rows {
            // A cedent in several treaties has no one-treaty selection.
            if proposable(cedent, &members) && one_treaty(cedent) {
                members.sort_unstable();
                let name = &self.cedents[cedent as usize];
                let reason = format!("every open row of {name} ({} rows) sums to the check", members.len());
                out.push(self.proposal(Strategy::Cedent, members, group(cedent, None), reason));
            }
        }
        out
    }

    /// The bounded exact-sum search, over the groups whose open total is
    /// nearest the check first (a check most often pays most of a
    /// statement), within [`SEARCH_WORK_MAX`].
    fn exact_sums(&self, groups: &Groups) -> (Vec<Ranked>, SearchReport) {
        let started = Instant::now();
        let sum =
            |members: &[u32]| members.iter().map(|&m| i128::from(self.rows[m as usize].cents)).sum::<i128>();
        let mut order: Vec<(i128, &GroupKey, &Vec<u32>)> =
            groups.iter().map(|(k, m)| ((sum(m) - i128::from(self.target)).abs(), k, m)).collect();
        order.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let mut report = SearchReport { groups: order.len(), ..SearchReport::default() };
        let mut out = Vec::new();
        for (_, &(_, cedent, period), members) in order {
            if out.len() == EXACT_SUMS_MAX {
                break;
            }
            if started.elapsed() > SEARCH_TIME_MAX {
                report.stopped_by = Some("time");
                break;
            }
            let Some(cost) = subset::cost(members.len()) else { continue };
            if report.work + cost > SEARCH_WORK_MAX {
                report.stopped_by = Some("work");
                continue;
            }
            report.work += cost;
            report.groups_searched += 1;
            let values: Vec<i64> = members.iter().map(|&m| self.rows[m as usize].cents).collect();
            if let Some(found) = subset::exact_subset(&values, self.target) {
                let picked: Vec<u32> = found.into_iter().map(|i| members[i]).collect();
                let name = &self.cedents[cedent as usize];
                let reason = format!(
                    "{} of the {} open rows of {name} in {period} sum exactly to the check",
                    picked.len(),
                    members.len()
                );
                out.push(self.proposal(Strategy::ExactSum, picked, None, reason));
            }
        }
        (out, report)
    }
}

/// A proposal and its rows' ids, sorted, to drop the same rows proposed
/// twice.
struct Ranked {
    key: Vec<Uuid>,
    suggestion: Suggestion,
}

/// Exact proposals first, by strategy, fewer rows first; then the inexact
/// (reference matches off the check), nearest first. The same rows
/// proposed twice are kept once, at their better rank.
fn rank(mut proposals: Vec<Ranked>) -> Vec<Suggestion> {
    proposals.sort_by(|a, b| {
        let order = |p: &Ranked| {
            let s = &p.suggestion;
            let off = s.difference.as_decimal().abs();
            (off != rust_decimal::Decimal::ZERO, off, s.strategy, s.row_count)
        };
        order(a).cmp(&order(b)).then_with(|| a.key.cmp(&b.key))
    });
    let mut seen: HashSet<Vec<Uuid>> = HashSet::new();
    proposals
        .into_iter()
        .filter(|p| seen.insert(p.key.clone()))
        .take(SUGGESTIONS_MAX)
        .map(|p| p.suggestion)
        .collect()
}

/// [`SuggestionScan`] over rows at hand.
pub fn suggest(rows: &[LedgerRow], request: &SuggestRequest) -> Suggestions {
    let mut scan = SuggestionScan::new(request);
    scan.take(rows);
    scan.finish()
}

#[cfg(test)]
mod tests;
