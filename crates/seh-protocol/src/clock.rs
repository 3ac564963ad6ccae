//! RFC 3339 rendering of a caller-supplied Unix time (the protocol never reads a clock).

/// Formats `secs` (seconds since 1970-01-01T00:00:00Z) and `millis` as
/// `YYYY-MM-DDTHH:MM:SS.mmmZ`. Precondition: `millis < 1000`.
pub fn rfc3339(secs: u64, millis: u32) -> String {
    let rem = secs % 86_400;
    // The civil date comes from the one calendar conversion the governance layer uses; an instant
    // past year 9999 (not a clock reading) renders as the last representable day.
    let (year, month, day) = i64::try_from(secs / 86_400)
        .ok()
        .and_then(|d| seh_policy::Date::from_unix_days(d).ok())
        .map_or((9999, 12, 31), |d| d.ymd());
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        millis.min(999)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_instants() {
        assert_eq!(super::rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(super::rfc3339(1_700_000_000, 123), "2023-11-14T22:13:20.123Z");
    }
}
