//! Calendar dates at day resolution, as used by consent periods and study dates.

use std::fmt;
use std::str::FromStr;

use crate::error::DateError;

/// A proleptic Gregorian calendar date (day resolution; times of day are not modelled).
///
/// Ordering is chronological. Construct with [`Date::new`] or parse an ISO 8601 / FHIR `date` or
/// `dateTime` string with [`str::parse`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Date {
    year: i32,
    month: u8,
    day: u8,
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

impl Date {
    /// The date `year-month-day`. Errors when the month is not 1–12, the day does not exist in
    /// that month, or the year is outside 1..=9999 (FHIR's range).
    pub fn new(year: i32, month: u8, day: u8) -> Result<Self, DateError> {
        if !(1..=9999).contains(&year) {
            return Err(DateError::OutOfRange { field: "year" });
        }
        if !(1..=12).contains(&month) {
            return Err(DateError::OutOfRange { field: "month" });
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(DateError::OutOfRange { field: "day" });
        }
        Ok(Self { year, month, day })
    }

    /// Year, month (1–12) and day (1–31).
    pub fn ymd(&self) -> (i32, u8, u8) {
        (self.year, self.month, self.day)
    }

    /// The date `days` days after 1970-01-01 (negative: before), as FHIR stores and the system
    /// clock count. Errors when the year falls outside 1..=9999.
    pub fn from_unix_days(days: i64) -> Result<Self, DateError> {
        // Civil-from-days on the proleptic Gregorian calendar, by 400-year eras of 146097 days
        // starting on 0000-03-01 (so that leap days fall at the end of each era-year).
        let z = days.checked_add(719_468).ok_or(DateError::OutOfRange { field: "year" })?;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let year = i32::try_from(year).map_err(|_| DateError::OutOfRange { field: "year" })?;
        Date::new(year, month as u8, day as u8)
    }
}

impl FromStr for Date {
    type Err = DateError;

    /// Parses `YYYY-MM-DD`, optionally followed by `T` and a time of day (FHIR `dateTime`); the
    /// time part is ignored except that it must start with `T`. Partial dates (`YYYY`,
    /// `YYYY-MM`) are refused because a consent boundary must be exact.
    fn from_str(s: &str) -> Result<Self, DateError> {
        let date_part = match s.split_once('T') {
            Some((d, _)) => d,
            None => s,
        };
        let b = date_part.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(DateError::Syntax);
        }
        let digits = |r: std::ops::Range<usize>| -> Result<u32, DateError> {
            let part = date_part.get(r).ok_or(DateError::Syntax)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(DateError::Syntax);
            }
            part.parse::<u32>().map_err(|_| DateError::Syntax)
        };
        let year = i32::try_from(digits(0..4)?).map_err(|_| DateError::Syntax)?;
        let month = u8::try_from(digits(5..7)?).map_err(|_| DateError::Syntax)?;
        let day = u8::try_from(digits(8..10)?).map_err(|_| DateError::Syntax)?;
        Date::new(year, month, day)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dates_and_datetimes() {
        assert_eq!("2024-02-29".parse::<Date>(), Date::new(2024, 2, 29));
        assert_eq!("2024-02-29T10:00:00Z".parse::<Date>(), Date::new(2024, 2, 29));
        assert!("2023-02-29".parse::<Date>().is_err());
        assert!("2023-02".parse::<Date>().is_err());
        assert!("2023-1-01".parse::<Date>().is_err());
        assert!("+023-01-01".parse::<Date>().is_err());
        assert!(Date::new(2020, 1, 1).unwrap() < Date::new(2020, 1, 2).unwrap());
        assert_eq!(Date::new(2020, 3, 4).unwrap().to_string(), "2020-03-04");
    }

    #[test]
    fn unix_days_round_trip_known_dates() {
        assert_eq!(Date::from_unix_days(0), Date::new(1970, 1, 1));
        assert_eq!(Date::from_unix_days(-1), Date::new(1969, 12, 31));
        assert_eq!(Date::from_unix_days(11_016), Date::new(2000, 2, 29));
        assert_eq!(Date::from_unix_days(19_723), Date::new(2024, 1, 1));
        assert_eq!(Date::from_unix_days(-719_162), Date::new(1, 1, 1));
        assert!(Date::from_unix_days(-719_163).is_err());
        // Consecutive days are consecutive dates across a leap-year end.
        let (a, b) = (Date::from_unix_days(19_782).unwrap(), Date::from_unix_days(19_783).unwrap());
        assert_eq!((a.to_string(), b.to_string()), ("2024-02-29".into(), "2024-03-01".into()));
    }
}
