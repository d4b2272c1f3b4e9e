use super::*;
use crate::ids::TransactionId;

fn parse<T, E>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|_| unreachable!())
}

fn row(n: u128, cedent: &str, period: &str, cents: i64, reference: &str, status: TxnStatus) -> LedgerRow {
    LedgerRow {
        id: TransactionId(Uuid::from_u128(n)),
        treaty_id: parse(TreatyId::parse("TR-1")),
        cedent_id: parse(CedentId::parse(cedent)),
        accounting_period: parse(Period::parse(period)),
        txn_date: chrono::NaiveDate::default(),
        amount: Amount::from_cents(cents),
        currency: parse(Currency::parse("USD")),
        reference: reference.to_owned(),
        status,
        row_version: 1,
    }
}

fn request(amount: &str, lines: &[(&str, Option<&str>)]) -> SuggestRequest {
    let remittance = lines
        .iter()
        .map(|(r, a)| RemittanceInput { reference: (*r).into(), amount: a.map(Into::into) })
        .collect::<Vec<_>>();
    parse(SuggestRequest::parse(&SuggestInput {
        amount: amount.into(),
        currency: "USD".into(),
        remittance: (!remittance.is_empty()).then_some(remittance),
        remittance_csv: None,
    }))
}

fn ids(s: &Suggestion) -> Vec<u128> {
    match &s.selection {
        Proposed::Ids(ids) => ids.iter().map(|i| i.as_u128()).collect(),
        Proposed::Group { .. } => Vec::new(),
    }
}

fn ledger() -> Vec<LedgerRow> {
    use TxnStatus::{Cleared, Open};
    vec![
        row(1, "CED-1", "2024-01", 10_000, "SOA-A", Open),
        row(2, "CED-1", "2024-01", 25_000, "SOA-B", Open),
        row(3, "CED-1", "2024-01", 5_000, "SOA-B", Open),
        row(4, "CED-1", "2024-02", 7_500, "SOA-C", Cleared),
        row(5, "CED-2", "2024-01", 40_000, "SOA-D", Open),
        row(6, "CED-2", "2024-02", 12_345, "SOA-E", Open),
        row(7, "CED-2", "2024-02", 2_655, "SOA-F", Open),
    ]
}

#[test]
fn remittance_lines_take_their_rows_and_the_rest_are_listed_with_why() {
    // SOA-A whole, SOA-B the 50.00 row only: 150.00 of a 150.00 check.
    let req = request(
        "150.00",
        &[
            ("soa-a", None),
            (" SOA-B", Some("50.00")),
            ("SOA-C", None),
            ("SOA-Z", None),
            ("SOA-D", Some("1.00")),
        ],
    );
    let out = suggest(&ledger(), &req);
    let top = &out.suggestions[0];
    assert_eq!((top.strategy, ids(top)), (Strategy::Reference, vec![1, 3]));
    assert_eq!((top.total, top.difference), (Amount::from_cents(15_000), Amount::ZERO));
    assert!(top.reason.starts_with("2 of 5 remittance lines"), "{}", top.reason);
    let why: Vec<(u32, Unmatched)> = out.unmatched.iter().map(|u| (u.line.line, u.reason)).collect();
    assert_eq!(why, vec![(3, Unmatched::NotOpen), (4, Unmatched::NoRow), (5, Unmatched::AmountDiffers)]);
    assert_eq!(out.unmatched_count, 3);
}

#[test]
fn a_reference_match_off_the_check_comes_after_every_exact_proposal() {
    // SOA-B is 300.00; the check is 400.00, which CED-2's row 5 equals.
    let out = suggest(&ledger(), &request("400.00", &[("SOA-B", None)]));
    let strategies: Vec<Strategy> = out.suggestions.iter().map(|s| s.strategy).collect();
    assert_eq!(strategies.first(), Some(&Strategy::SingleRow));
    let last = out.suggestions.last().map(|s| (s.strategy, s.difference));
    assert_eq!(last, Some((Strategy::Reference, Amount::from_cents(10_000))));
}

#[test]
fn whole_groups_and_exact_sums_are_proposed_in_rank_order_once() {
    // CED-1's January is 400.00; so is row 5 alone; rows 2+3+1 are the group.
    let out = suggest(&ledger(), &request("400.00", &[]));
    let found: Vec<(Strategy, Vec<u128>)> = out.suggestions.iter().map(|s| (s.strategy, ids(s))).collect();
    assert_eq!(found[0], (Strategy::SingleRow, vec![5]));
    assert_eq!(found[1].0, Strategy::CedentPeriod);
    let group = &out.suggestions[1];
    assert_eq!(group.row_count, 3);
    assert!(matches!(&group.selection, Proposed::Group { cedent, period: Some(p), .. }
        if cedent.as_str() == "CED-1" && p.to_string() == "2024-01"));
    // CED-2's February: 123.45 + 26.55 = 150.00 is its whole group, and
    // with row 5 the cedent's total.
    let cedent = suggest(&ledger(), &request("550.00", &[]));
    assert_eq!(cedent.suggestions.first().map(|s| s.strategy), Some(Strategy::Cedent));
    // 250.00 + 50.00 = 300.00: two rows of CED-1's January, by the search.
    let sums = suggest(&ledger(), &request("300.00", &[]));
    let exact: Vec<_> = sums.suggestions.iter().map(|s| (s.strategy, ids(s))).collect();
    assert_eq!(exact, vec![(Strategy::ExactSum, vec![2, 3])]);
    assert_eq!((sums.search.groups, sums.search.stopped_by), (3, None));
    // Deterministic: the same input, the same answer.
    let again = suggest(&ledger(), &request("300.00", &[]));
    assert_eq!(sums.suggestions, again.suggestions);
}

#[test]
fn a_cedent_in_two_treaties_is_not_proposed_as_a_view() {
    let mut rows = ledger();
    let mut other = row(8, "CED-2", "2024-02", 1, "X", TxnStatus::Open);
    other.treaty_id = parse(TreatyId::parse("TR-2"));
    rows.push(other);
    // CED-2's February in TR-1 is 150.00: proposed by its ids, not a view;
    // CED-1's 100.00 + 50.00 by the search.
    let out = suggest(&rows, &request("150.00", &[]));
    let found: Vec<_> = out.suggestions.iter().map(|s| (s.strategy, ids(s))).collect();
    assert_eq!(found, vec![(Strategy::CedentPeriod, vec![6, 7]), (Strategy::ExactSum, vec![1, 3])]);
    // Other currencies are never candidates.
    let mut euro = row(9, "CED-3", "2024-01", 15_000, "Y", TxnStatus::Open);
    euro.currency = parse(Currency::parse("EUR"));
    assert!(suggest(&[euro], &request("150.00", &[])).suggestions.is_empty());
}
