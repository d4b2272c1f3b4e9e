//! A selection resolved against the snapshot it names, one page at a time:
//! what a clearance takes, and the preview of it (the selection summary).
//! Membership is decided by the snapshot only; the guard in PostgreSQL
//! decides whether the rows are still so.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::clearance::{Selection, SnapshotRowRef};
use crate::ids::{TransactionId, TreatyId};
use crate::money::{Amount, Currency};
use crate::pages::{CurrencyTotals, OpenRows, Total, NOT_OPEN_IDS_SHOWN};
use crate::transaction::{LedgerRow, TxnStatus};
use crate::write::WriteError;

/// A row a selection takes: what the posting and the guard need of it
/// (about 60 bytes, against a few hundred for the whole snapshot row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectedRow {
    pub row: SnapshotRowRef,
    pub amount: Amount,
    pub currency: Currency,
}

/// How a clearance of a selection would run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearMode {
    /// Inside the request (up to the sync limit, inclusive).
    Sync,
    /// As a batch job.
    Job,
}

impl ClearMode {
    pub fn for_rows(rows: u64, sync_rows_max: usize) -> Self {
        if rows <= sync_rows_max as u64 {
            Self::Sync
        } else {
            Self::Job
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Job => "job",
        }
    }
}

/// The preview of a clearance: the rows it would take (open in the
/// snapshot), their treaty and totals, and the selected rows it would not
/// take because the snapshot shows them not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectionSummary {
    pub row_count: u64,
    pub treaty_id: Option<TreatyId>,
    pub totals: Vec<Total>,
    pub not_open_count: u64,
    /// The first [`NOT_OPEN_IDS_SHOWN`], in the snapshot's order.
    pub not_open_ids: Vec<Uuid>,
    pub mode: ClearMode,
}

impl SelectionSummary {
    /// The summary of every open row of a view, from the view's meta.
    ///
    /// # Errors
    /// As [`SelectionResolver::summarize`].
    pub fn of_open_rows(open: &OpenRows, limit: usize, sync_rows_max: usize) -> Result<Self, WriteError> {
        let treaties = open
            .treaties
            .iter()
            .map(|t| TreatyId::parse(t).map_err(|e| WriteError::Snapshot(format!("a meta's treaty: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let row_count = open.totals.iter().map(|t| t.count).sum();
        check_limits(&treaties, row_count, limit, open.overflow)?;
        Ok(Self {
            row_count,
            treaty_id: treaties.into_iter().next(),
            totals: open.totals.clone(),
            not_open_count: open.not_open_count,
            not_open_ids: open.not_open_ids.clone(),
            mode: ClearMode::for_rows(row_count, sync_rows_max),
        })
    }
}

/// One treaty, at most `limit` rows, a total in range: in that order.
fn check_limits(treaties: &[TreatyId], taken: u64, limit: usize, overflow: bool) -> Result<(), WriteError> {
    if treaties.len() > 1 {
        return Err(WriteError::SpansTreaties(treaties.to_vec()));
    }
    if taken > limit as u64 {
        return Err(WriteError::TooLarge { rows: taken, max: limit });
    }
    if overflow {
        return Err(WriteError::TotalOutOfRange);
    }
    Ok(())
}

/// Resolves a selection against a snapshot one page at a time, keeping only
/// what the selection takes, so that resolving 1M rows never holds the
/// snapshot: named ids must all be rows of the snapshot, one treaty, at
/// most `limit` rows. Named rows that are not open are refused by a
/// clearance; rows of an all-selection that are not open are left out.
pub struct SelectionResolver<'a> {
    selection: &'a Selection,
    limit: usize,
    keep_rows: bool,
    seen: BTreeSet<TransactionId>,
    totals: CurrencyTotals,
    selected: Vec<SelectedRow>,
    not_open_count: u64,
    not_open: Vec<Uuid>,
    treaties: BTreeSet<TreatyId>,
    /// The taken rows' sum left `NUMERIC(18,2)`: answered as the posting's
    /// range error.
    overflow: bool,
}

impl<'a> SelectionResolver<'a> {
    /// A resolver for a clearance: keeps the rows taken.
    pub fn new(selection: &'a Selection, limit: usize) -> Self {
        Self::with(selection, limit, true)
    }

    /// A resolver for a summary: counts and sums, keeps no row.
    pub fn counting(selection: &'a Selection, limit: usize) -> Self {
        Self::with(selection, limit, false)
    }

    fn with(selection: &'a Selection, limit: usize, keep_rows: bool) -> Self {
        Self {
            selection,
            limit,
            keep_rows,
            seen: BTreeSet::new(),
            totals: CurrencyTotals::default(),
            selected: Vec::new(),
            not_open_count: 0,
            not_open: Vec::new(),
            treaties: BTreeSet::new(),
            overflow: false,
        }
    }

    /// Takes what the selection names from the next page of the snapshot.
    pub fn take(&mut self, rows: &[LedgerRow]) {
        let named = self.selection.named();
        for row in rows {
            let is_named = named.contains(&row.id);
            if is_named {
                self.seen.insert(row.id);
            }
            let selected = match self.selection {
                Selection::Ids(_) => is_named,
                Selection::AllExcept { view, .. } => !is_named && view.keeps(row),
            };
            if selected {
                self.select(row);
            }
        }
    }

    fn select(&mut self, row: &LedgerRow) {
        if row.status != TxnStatus::Open {
            self.not_open_count += 1;
            // Named rows not open are the clearance's refusal: every id;
            // an all-selection's are shown, the first few.
            if matches!(self.selection, Selection::Ids(_)) || self.not_open.len() < NOT_OPEN_IDS_SHOWN {
                self.not_open.push(row.id.0);
            }
            return;
        }
        self.overflow |= self.totals.add(row.currency, row.amount).is_err();
        if !self.treaties.contains(&row.treaty_id) {
            self.treaties.insert(row.treaty_id.clone());
        }
        // Past the limit only the count goes on: the answer is 413.
        if self.keep_rows && self.selected.len() < self.limit {
            self.selected.push(SelectedRow {
                row: SnapshotRowRef {
                    id: row.id.0,
                    accounting_period: row.accounting_period.first_day(),
                    row_version: row.row_version,
                },
                amount: row.amount,
                currency: row.currency,
            });
        }
    }

    fn check_named(&self) -> Result<(), WriteError> {
        let named = self.selection.named();
        if self.seen.len() != named.len() {
            let field = match self.selection {
                Selection::Ids(_) => "/selection/ids",
                Selection::AllExcept { .. } => "/selection/except",
            };
            let ids = named.iter().filter(|id| !self.seen.contains(id)).map(|id| id.0).collect();
            return Err(WriteError::UnknownIds { field, ids });
        }
        Ok(())
    }

    /// The selection's treaty and rows, in snapshot order.
    ///
    /// # Errors
    /// [`WriteError`]: ids not in the snapshot, named rows not open,
    /// nothing selected, several treaties, more rows than the limit.
    pub fn finish(self) -> Result<(TreatyId, Vec<SelectedRow>), WriteError> {
        self.check_named()?;
        if matches!(self.selection, Selection::Ids(_)) && !self.not_open.is_empty() {
            let mut not_open = self.not_open;
            not_open.sort_unstable();
            return Err(WriteError::RowsNotOpen(not_open));
        }
        let treaties: Vec<TreatyId> = self.treaties.into_iter().collect();
        check_limits(&treaties, self.totals.count(), self.limit, self.overflow)?;
        let Some(treaty) = treaties.into_iter().next() else {
            return Err(WriteError::EmptySelection);
        };
        Ok((treaty, self.selected))
    }

    /// The selection's preview: an empty one is an answer, not an error.
    ///
    /// # Errors
    /// [`WriteError`]: ids not in the snapshot, several treaties, more rows
    /// than the limit.
    pub fn summarize(self, sync_rows_max: usize) -> Result<SelectionSummary, WriteError> {
        self.check_named()?;
        let treaties: Vec<TreatyId> = self.treaties.into_iter().collect();
        let row_count = self.totals.count();
        check_limits(&treaties, row_count, self.limit, self.overflow)?;
        let mut not_open_ids = self.not_open;
        not_open_ids.truncate(NOT_OPEN_IDS_SHOWN);
        Ok(SelectionSummary {
            row_count,
            treaty_id: treaties.into_iter().next(),
            totals: self.totals.into_totals(),
            not_open_count: self.not_open_count,
            not_open_ids,
            mode: ClearMode::for_rows(row_count, sync_rows_max),
        })
    }
}

/// [`SelectionResolver`] over rows at hand.
///
/// # Errors
/// As [`SelectionResolver::finish`].
pub fn resolve_selection(
    rows: &[LedgerRow],
    selection: &Selection,
    limit: usize,
) -> Result<(TreatyId, Vec<SelectedRow>), WriteError> {
    let mut resolver = SelectionResolver::new(selection, limit);
    resolver.take(rows);
    resolver.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::{ViewFilter, ViewFilterInput};
    use crate::{CedentId, Period};

    fn parse<T, E>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|_| unreachable!())
    }

    fn row(n: u128, treaty: &str, status: TxnStatus) -> LedgerRow {
        LedgerRow {
            id: TransactionId(Uuid::from_u128(n)),
            treaty_id: parse(TreatyId::parse(treaty)),
            cedent_id: parse(CedentId::parse(if n % 2 == 0 { "CED-2" } else { "CED-1" })),
            accounting_period: parse(Period::parse("2024-01")),
            txn_date: chrono::NaiveDate::default(),
            amount: Amount::from_cents(100),
            currency: parse(Currency::parse("USD")),
            reference: String::new(),
            status,
            row_version: 1,
        }
    }

    fn ids(ns: &[u128]) -> BTreeSet<TransactionId> {
        ns.iter().map(|n| TransactionId(Uuid::from_u128(*n))).collect()
    }

    fn all_except(ns: &[u128]) -> Selection {
        Selection::AllExcept { except: ids(ns), view: ViewFilter::default() }
    }

    #[test]
    fn selections_resolve_against_the_snapshot_only() {
        let rows = vec![
            row(1, "TR-1", TxnStatus::Open),
            row(2, "TR-1", TxnStatus::Cleared),
            row(3, "TR-1", TxnStatus::Open),
        ];
        let picked = |s: &Selection| {
            resolve_selection(&rows, s, 10).map(|(_, r)| r.iter().map(|r| r.row.id).collect::<Vec<_>>())
        };
        assert_eq!(picked(&Selection::Ids(ids(&[3]))).ok(), Some(vec![Uuid::from_u128(3)]));
        assert_eq!(picked(&all_except(&[1])).ok(), Some(vec![Uuid::from_u128(3)]));
        assert!(matches!(
            resolve_selection(&rows, &all_except(&[2]), 1),
            Err(WriteError::TooLarge { rows: 2, max: 1 })
        ));
        assert!(matches!(
            picked(&Selection::Ids(ids(&[1, 9]))),
            Err(WriteError::UnknownIds { field: "/selection/ids", ids }) if ids == vec![Uuid::from_u128(9)]
        ));
        assert!(matches!(
            picked(&all_except(&[8])),
            Err(WriteError::UnknownIds { field: "/selection/except", .. })
        ));
        assert!(
            matches!(picked(&Selection::Ids(ids(&[2]))), Err(WriteError::RowsNotOpen(v)) if v.len() == 1)
        );
        assert!(matches!(picked(&all_except(&[1, 3])), Err(WriteError::EmptySelection)));
        let two = vec![row(1, "TR-1", TxnStatus::Open), row(2, "TR-2", TxnStatus::Open)];
        assert!(matches!(
            resolve_selection(&two, &all_except(&[]), 10),
            Err(WriteError::SpansTreaties(t)) if t.len() == 2
        ));
    }

    #[test]
    fn a_view_selection_takes_the_views_open_rows_and_the_summary_shows_the_rest() -> Result<(), WriteError> {
        let rows: Vec<_> = (1..=10)
            .map(|n| row(n, "TR-1", if n % 3 == 0 { TxnStatus::Cleared } else { TxnStatus::Open }))
            .collect();
        let view = ViewFilter::parse(
            &ViewFilterInput { cedent_id: Some(vec!["CED-1".into()]), ..ViewFilterInput::default() },
            "",
        )
        .map_err(|e| WriteError::Snapshot(e.message))?;
        let selection = Selection::AllExcept { except: ids(&[5, 2]), view };
        let (_, taken) = resolve_selection(&rows, &selection, 100)?;
        // CED-1 is the odd rows; 3 and 9 are cleared, 5 excepted.
        assert_eq!(taken.iter().map(|r| r.row.id.as_u128()).collect::<Vec<_>>(), vec![1, 7]);
        let mut counting = SelectionResolver::counting(&selection, 100);
        counting.take(&rows);
        let summary = counting.summarize(1)?;
        assert_eq!((summary.row_count, summary.mode, summary.not_open_count), (2, ClearMode::Job, 2));
        assert_eq!(summary.not_open_ids, vec![Uuid::from_u128(3), Uuid::from_u128(9)]);
        assert_eq!(summary.totals[0].amount, "2.00");
        // Named rows that are not open are shown by a summary, refused by a clearance.
        let named = Selection::Ids(ids(&[1, 3]));
        let mut counting = SelectionResolver::counting(&named, 100);
        counting.take(&rows);
        assert_eq!(counting.summarize(2000)?.not_open_ids, vec![Uuid::from_u128(3)]);
        assert!(matches!(resolve_selection(&rows, &named, 100), Err(WriteError::RowsNotOpen(_))));
        Ok(())
    }
}
