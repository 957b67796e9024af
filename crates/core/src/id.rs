//! Identifiers and time: services mint both, stores insert them as given.

use std::time::{SystemTime, UNIX_EPOCH};

/// A new time-ordered identifier (UUIDv7, hyphenated).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 rendering of an epoch-ms timestamp (UTC, millisecond precision).
pub fn iso8601(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => {
            let fmt = time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            );
            t.format(&fmt).unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}

/// Parses an RFC 3339 timestamp or a plain epoch-ms number.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let rfc3339 = |s: &str| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok();
    // A browser's `datetime-local` value has no zone and may lack seconds: read it as UTC.
    let t = rfc3339(s).or_else(|| rfc3339(&format!("{s}Z"))).or_else(|| rfc3339(&format!("{s}:00Z")))?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn iso_round_trip() {
        let s = iso8601(1_700_000_000_123);
        assert_eq!(s, "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_time(&s), Some(1_700_000_000_123));
        assert_eq!(parse_time("2023-11-14T22:13"), Some(1_700_000_000_000 - 20_000));
        assert_eq!(parse_time("yesterday"), None);
    }
}
