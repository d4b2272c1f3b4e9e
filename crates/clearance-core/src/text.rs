//! The spelling rules of free text and identifiers on the API, each the
//! exact twin of a pattern in `openapi.yaml` (a test compares them and
//! schemathesis checks both directions): what the schema allows is
//! accepted, what it refuses is a 400.

/// Whether `c` is a control character (Unicode category Cc: U+0000-U+001F,
/// U+007F-U+009F), which no text field accepts (the reason allows `\n`).
fn is_control(c: char) -> bool {
    c.is_control()
}

/// Free text of 1 to `max` characters: no control character (but `\n`
/// where `newline` allows it) and at least one character that is not a
/// space. The pattern: `^[^C]*[^C ][^C]*$` with C the control set, and
/// `maxLength`.
pub fn is_printable_text(raw: &str, max: usize, newline: bool) -> bool {
    let allowed = |c: char| !is_control(c) || (newline && c == '\n');
    let count = raw.chars().count();
    (1..=max).contains(&count)
        && raw.chars().all(allowed)
        && raw.chars().any(|c| c != ' ' && c != '\n' && !is_control(c))
}

/// The form of a row, clearance or job id: a UUID as the service writes
/// it, lower-case and hyphenated (`^[0-9a-f]{8}-[0-9a-f]{4}-...$`).
pub fn parse_uuid(raw: &str) -> Option<uuid::Uuid> {
    let shaped = raw.len() == 36
        && raw.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        });
    if shaped {
        uuid::Uuid::try_parse(raw).ok()
    } else {
        None
    }
}

/// An amount as a check states it: a positive decimal with at most 16
/// integer digits, no leading zero, at most two decimals
/// (`^([1-9][0-9]{0,15}(\.[0-9]{1,2})?|0\.([0-9][1-9]|[1-9][0-9]?))$`).
pub fn is_positive_amount_text(raw: &str) -> bool {
    let (integer, fraction) = match raw.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (raw, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let fraction_ok = fraction.is_none_or(|f| digits(f) && f.len() <= 2);
    if !digits(integer) || !fraction_ok || integer.len() > 16 {
        return false;
    }
    if integer == "0" {
        fraction.is_some_and(|f| f.bytes().any(|b| b != b'0'))
    } else {
        !integer.starts_with('0')
    }
}

/// An amount as a filter bound states it: optionally negative, at most 16
/// integer digits, no leading zero, at most two decimals
/// (`^-?(0|[1-9][0-9]{0,15})(\.[0-9]{1,2})?$`).
pub fn is_amount_text(raw: &str) -> bool {
    let unsigned = raw.strip_prefix('-').unwrap_or(raw);
    let (integer, fraction) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(integer)
        && integer.len() <= 16
        && (integer == "0" || !integer.starts_with('0'))
        && fraction.is_none_or(|f| digits(f) && f.len() <= 2)
}

/// A calendar date written `YYYY-MM-DD`, exactly ten characters.
pub fn parse_date(raw: &str) -> Option<chrono::NaiveDate> {
    let shaped = raw.len() == 10
        && raw
            .bytes()
            .enumerate()
            .all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    if shaped {
        chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_needs_a_visible_character_and_no_control() {
        assert!(is_printable_text("CHK-1001", 64, false));
        assert!(is_printable_text(" CHK 1 ", 64, false));
        assert!(is_printable_text("Ünïcödé", 64, false));
        for bad in ["", " ", "   ", "a\u{7}", "\u{89}x", "a\nb"] {
            assert!(!is_printable_text(bad, 64, false), "{bad:?}");
        }
        assert!(is_printable_text("line one\nline two", 500, true));
        assert!(!is_printable_text("\n \n", 500, true));
        assert!(!is_printable_text(&"x".repeat(65), 64, false));
        assert!(is_printable_text(&"é".repeat(64), 64, false), "characters, not bytes");
    }

    #[test]
    fn ids_are_lower_case_hyphenated_uuids() {
        assert!(parse_uuid("5bca5fed-0000-4000-8000-000000000001").is_some());
        for bad in [
            "5BCA5FED-0000-4000-8000-000000000001",
            "5bca5fed000040008000000000000001",
            "{5bca5fed-0000-4000-8000-000000000001}",
            "urn:uuid:5bca5fed-0000-4000-8000-000000000001",
            " 5bca5fed-0000-4000-8000-000000000001",
        ] {
            assert!(parse_uuid(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_check_amount_is_positive_and_canonical() {
        for good in ["1", "0.01", "0.1", "0.10", "12500.00", "9999999999999999.99"] {
            assert!(is_positive_amount_text(good), "{good}");
        }
        for bad in
            ["0", "0.0", "0.00", "-1.00", "01.00", "1.", ".5", "1.005", "1e5", " 1", "10000000000000000"]
        {
            assert!(!is_positive_amount_text(bad), "{bad}");
        }
    }

    #[test]
    fn a_bound_is_a_canonical_decimal_of_either_sign() {
        for good in ["0", "-0", "1", "-1.5", "0.01", "12500.00", "-9999999999999999.99"] {
            assert!(is_amount_text(good), "{good}");
        }
        for bad in ["", "-", "01", "-01.0", "1.", ".5", "1.005", "1e5", " 1", "+1", "10000000000000000"] {
            assert!(!is_amount_text(bad), "{bad}");
        }
    }

    #[test]
    fn dates_are_exactly_yyyy_mm_dd() {
        assert!(parse_date("2024-05-31").is_some());
        for bad in ["2024-5-31", "2024-02-30", " 2024-05-31", "20240531", "+2024-05-31"] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
    }
}
