//! The loader against the real PostgreSQL: idempotent re-loads, scope
//! versions that move only with the data, and CSV files refused whole.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;

use clearance_loader::csv_source::{write_csv, CsvSource};
use clearance_loader::generate::Generator;
use clearance_pg::load::{load, LoadError};
use clearance_tests::TestDb;

#[tokio::test]
async fn loading_the_same_generated_data_twice_adds_nothing_and_keeps_scope_versions() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let first = load(&db.owner, &mut Generator::new(11).with_rows(5_000)).await?;
    assert_eq!(first.rows_inserted, 5_000);
    assert_eq!(db.transaction_count().await?, 5_000);
    let versions = db.scope_versions().await?;
    assert!(versions.iter().all(|(_, v)| *v == 1));

    let again = load(&db.owner, &mut Generator::new(11).with_rows(5_000)).await?;
    assert_eq!((again.rows_read, again.rows_inserted), (5_000, 0));
    assert!(again.treaties.is_empty());
    assert_eq!(db.transaction_count().await?, 5_000);
    assert_eq!(db.scope_versions().await?, versions, "no row changed, so no version moved");

    // Growing the seed adds exactly the new rows and bumps exactly the
    // treaties that received some.
    let grown = load(&db.owner, &mut Generator::new(11).with_rows(5_600)).await?;
    assert_eq!(grown.rows_inserted, 600);
    assert_eq!(db.transaction_count().await?, 5_600);
    let touched: BTreeSet<String> =
        Generator::new(11).rows(5_000..5_600).map(|r| r.treaty_id.to_string()).collect();
    let before: BTreeMap<_, _> = versions.into_iter().collect();
    for (treaty, version) in db.scope_versions().await? {
        let expected = before.get(&treaty).copied().unwrap_or(0) + i64::from(touched.contains(&treaty));
        assert_eq!(version, expected, "{treaty}");
    }
    db.drop_db().await
}

#[tokio::test]
async fn a_csv_file_loads_once_and_its_rows_read_back_exactly() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let rows: Vec<_> = Generator::new(5).rows(0..300).collect();
    let mut file = tempfile()?;
    write_csv(&mut file, rows.clone())?;

    let report = load(&db.owner, &mut CsvSource::new(file.try_clone()?)).await?;
    assert_eq!(report.rows_inserted, 300);
    let again = load(&db.owner, &mut CsvSource::new(file)).await?;
    assert_eq!(again.rows_inserted, 0);

    let expected_sum: rust_decimal::Decimal = rows.iter().map(|r| r.amount.as_decimal()).sum();
    let (count, sum): (i64, rust_decimal::Decimal) =
        sqlx::query_as("SELECT count(*), sum(amount) FROM transactions").fetch_one(&db.owner).await?;
    assert_eq!((count, sum), (300, expected_sum), "amounts are exact to the cent");
    db.drop_db().await
}

fn tempfile() -> std::io::Result<std::fs::File> {
    let path = std::env::temp_dir().join(format!("clearance-{}.csv", uuid::Uuid::new_v4()));
    let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

#[tokio::test]
async fn a_malformed_csv_is_refused_with_its_line_and_nothing_is_committed() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let good = "S-1,TR-0001,CED-001,2024-01,2024-01-15,100.00,USD,ok\nS-2,TR-0001,CED-001,2024-02,2024-02-15,200.50,USD,ok\n";
    let cases: [(&str, &[u8], &str); 6] = [
        ("bad amount", b"S-3,TR-0001,CED-001,2024-03,2024-03-15,12.345,USD,x\n", "amount"),
        ("bad period", b"S-3,TR-0001,CED-001,2024-13,2024-03-15,12.34,USD,x\n", "accounting_period"),
        ("too few columns", b"S-3,TR-0001,CED-001,2024-03\n", "expected 8 columns, found 4"),
        (
            "too many columns",
            b"S-3,TR-0001,CED-001,2024-03,2024-03-15,1.00,USD,x,extra\n",
            "expected 8 columns, found 9",
        ),
        ("non-UTF-8", b"S-3,TR-0001,CED-001,2024-03,2024-03-15,1.00,USD,caf\xe9\n", "not valid UTF-8"),
        ("unknown currency", b"S-3,TR-0001,CED-001,2024-03,2024-03-15,1.00,XYZ,x\n", "currency"),
    ];
    for (name, bad_line, expected) in cases {
        let mut file = tempfile()?;
        file.write_all(clearance_loader::csv_source::HEADER.join(",").as_bytes())?;
        file.write_all(b"\n")?;
        file.write_all(good.as_bytes())?;
        file.write_all(bad_line)?;
        file.write_all(b"S-4,TR-0001,CED-001,2024-04,2024-04-15,1.00,USD,after\n")?;
        match load(&db.owner, &mut CsvSource::new(file)).await {
            Err(LoadError::Record(err)) => {
                assert_eq!(err.line, 4, "{name}: {err}");
                assert!(err.message.contains(expected), "{name}: {err}");
            }
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
        assert_eq!(db.transaction_count().await?, 0, "{name}: nothing committed");
        assert!(db.scope_versions().await?.is_empty(), "{name}: no version moved");
    }
    db.drop_db().await
}
