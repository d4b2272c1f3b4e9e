//! Upstream CSV files. The first line is the header, exactly:
//!
//! ```text
//! source_ref,treaty_id,cedent_id,accounting_period,txn_date,amount,currency,reference
//! ```
//!
//! | column | format |
//! |---|---|
//! | source_ref | the upstream system's unique reference of the transaction, 1-64 characters |
//! | treaty_id, cedent_id | codes of A-Z, 0-9 and '-', at most 32 characters (case-insensitive) |
//! | accounting_period | `YYYY-MM` |
//! | txn_date | `YYYY-MM-DD` |
//! | amount | plain decimal, at most two places: `1234.50`, `-80` (no exponent, no separators) |
//! | currency | ISO 4217 code from the booked list |
//! | reference | free text, at most 64 characters, may be empty |
//!
//! The file must be UTF-8. Fields may be quoted the usual CSV way. The first
//! bad record stops the load with its line number and what is wrong, and
//! nothing of the file is committed.

use std::io::{Read, Seek, SeekFrom};

use clearance_core::transaction::UpstreamFields;
use clearance_core::UpstreamTransaction;
use clearance_pg::load::{LoadSource, RecordError};

pub const HEADER: [&str; 8] = [
    "source_ref",
    "treaty_id",
    "cedent_id",
    "accounting_period",
    "txn_date",
    "amount",
    "currency",
    "reference",
];

/// An upstream CSV file as a [`LoadSource`]: read once to validate, then
/// record by record by byte position.
pub struct CsvSource<R: Read + Seek> {
    reader: csv::Reader<R>,
    record: csv::ByteRecord,
}

impl<R: Read + Seek> CsvSource<R> {
    pub fn new(input: R) -> Self {
        let reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(input);
        Self { reader, record: csv::ByteRecord::new() }
    }

    /// Reads the next record into `self.record`; `Ok(None)` at the end.
    fn read_next(&mut self) -> Result<Option<(csv::Position, Vec<&str>)>, RecordError> {
        let before = self.reader.position().line();
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => Ok(None),
            Ok(true) => {
                let position = self.record.position().cloned().unwrap_or_else(csv::Position::new);
                let fields = utf8_fields(&self.record, position.line())?;
                Ok(Some((position, fields)))
            }
            Err(err) => {
                let line = err.position().map_or(before, csv::Position::line);
                Err(RecordError { line, message: format!("unreadable CSV: {err}") })
            }
        }
    }
}

impl<R: Read + Seek> LoadSource for CsvSource<R> {
    fn scan(&mut self, visit: &mut dyn FnMut(u64, UpstreamTransaction)) -> Result<(), RecordError> {
        // seek_raw always moves the underlying reader; seek() skips the move
        // when it believes it is there already, which a reused file defeats.
        self.reader
            .seek_raw(SeekFrom::Start(0), csv::Position::new())
            .map_err(|err| RecordError { line: 1, message: err.to_string() })?;
        let Some((position, header)) = self.read_next()? else {
            return Err(RecordError {
                line: 1,
                message: "the file is empty: a header line is required".into(),
            });
        };
        if header.iter().map(|f| f.trim()).ne(HEADER.iter().copied()) {
            return Err(RecordError {
                line: position.line(),
                message: format!("the header must be exactly: {}", HEADER.join(",")),
            });
        }
        while let Some((position, fields)) = self.read_next()? {
            let txn = parse_fields(&fields, position.line())?;
            visit(position.byte(), txn);
        }
        Ok(())
    }

    fn fetch(&mut self, position: u64) -> Result<UpstreamTransaction, RecordError> {
        let mut at = csv::Position::new();
        at.set_byte(position);
        self.reader
            .seek_raw(SeekFrom::Start(position), at)
            .map_err(|err| RecordError { line: 0, message: err.to_string() })?;
        match self.read_next()? {
            Some((_, fields)) => parse_fields(&fields, 0),
            None => Err(RecordError { line: 0, message: "the file shrank while it was being loaded".into() }),
        }
    }
}

fn utf8_fields(record: &csv::ByteRecord, line: u64) -> Result<Vec<&str>, RecordError> {
    record
        .iter()
        .enumerate()
        .map(|(column, bytes)| {
            std::str::from_utf8(bytes).map_err(|_| RecordError {
                line,
                message: format!("column {} is not valid UTF-8 (the file must be UTF-8)", column + 1),
            })
        })
        .collect()
}

fn parse_fields(fields: &[&str], line: u64) -> Result<UpstreamTransaction, RecordError> {
    let &[source_ref, treaty_id, cedent_id, accounting_period, txn_date, amount, currency, reference] =
        fields
    else {
        return Err(RecordError {
            line,
            message: format!("expected {} columns, found {}", HEADER.len(), fields.len()),
        });
    };
    UpstreamTransaction::parse(UpstreamFields {
        source_ref,
        treaty_id,
        cedent_id,
        accounting_period,
        txn_date,
        amount,
        currency,
        reference,
    })
    .map_err(|err| RecordError { line, message: err.to_string() })
}

/// Writes transactions as an upstream CSV file (with the header).
///
/// # Errors
/// When the writer fails.
pub fn write_csv<W: std::io::Write>(
    out: W,
    rows: impl IntoIterator<Item = UpstreamTransaction>,
) -> Result<(), csv::Error> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(HEADER)?;
    for t in rows {
        writer.write_record([
            t.source_ref.as_str(),
            t.treaty_id.as_str(),
            t.cedent_id.as_str(),
            &t.accounting_period.to_string(),
            &t.txn_date.to_string(),
            &t.amount.to_string(),
            t.currency.as_str(),
            t.reference.as_str(),
        ])?;
    }
    writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER_LINE: &str =
        "source_ref,treaty_id,cedent_id,accounting_period,txn_date,amount,currency,reference\n";

    fn read(text: &[u8]) -> Result<Vec<UpstreamTransaction>, RecordError> {
        let mut rows = Vec::new();
        CsvSource::new(std::io::Cursor::new(text)).scan(&mut |_, txn| rows.push(txn))?;
        Ok(rows)
    }

    #[test]
    fn good_rows_are_read_in_order() {
        let text = format!("{HEADER_LINE}A-1,TR-1,CED-1,2024-01,2024-01-05,10.00,USD,x\nA-2,TR-1,CED-1,2024-02,2024-02-05,\"1.5\",USD,\"a, b\"\n");
        assert_eq!(read(text.as_bytes()).map(|rows| rows.len()), Ok(2));
    }

    #[test]
    fn the_first_bad_line_is_named_and_reading_stops() {
        let text = format!("{HEADER_LINE}A-1,TR-1,CED-1,2024-01,2024-01-05,10.00,USD,x\nA-2,TR-1,CED-1,2024-13,2024-02-05,1.5,USD,x\nA-3,TR-1\n");
        assert_eq!(read(text.as_bytes()).map_err(|e| e.line), Err(3));
    }

    #[test]
    fn a_missing_or_wrong_header_is_refused() {
        assert_eq!(read(b"").map_err(|e| e.line), Err(1));
        assert_eq!(read(b"a,b\n").map_err(|e| e.line), Err(1));
    }

    #[test]
    fn written_files_read_back() -> Result<(), Box<dyn std::error::Error>> {
        let rows: Vec<_> = crate::generate::Generator::new(7).rows(0..50).collect();
        let mut buf = Vec::new();
        write_csv(&mut buf, rows.clone())?;
        assert_eq!(read(&buf)?, rows);
        let mut source = CsvSource::new(std::io::Cursor::new(buf));
        let mut positions = Vec::new();
        source.scan(&mut |position, _| positions.push(position))?;
        assert_eq!(source.fetch(positions[17])?, rows[17]);
        Ok(())
    }
}
