//! FHIR `date`, `dateTime` and `instant` values.
//!
//! FHIR allows partial dates (`2015`, `2015-03`) and date-times with a time and
//! a zone offset. Analyses here work on calendar days, so a parsed value keeps
//! its year, month and day (with the precision it was given at) and the time is
//! validated but dropped: the *day as written* is the day used (no conversion
//! between zones, which could move an event across midnight).

use std::fmt;

/// Why a date string was rejected. Carries no part of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not of the form `YYYY`, `YYYY-MM`, `YYYY-MM-DD` or `YYYY-MM-DDThh:mm:ss[.f][Z|±hh:mm]`.
    #[error("not a FHIR date or dateTime (expected YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a zone)")]
    Format,
    /// Month, day, hour, minute, second or offset out of range.
    #[error("a date or time component is out of range")]
    Range,
}

/// How much of a date was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Precision {
    /// `YYYY`
    Year,
    /// `YYYY-MM`
    Month,
    /// `YYYY-MM-DD`, possibly with a time.
    Day,
}

/// A calendar date as written in a FHIR resource, at its precision.
///
/// Invariant: `1 <= month <= 12`, `1 <= day <= days_in_month` (missing parts are stored as 1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FhirDate {
    year: i32,
    month: u8,
    day: u8,
    precision: Precision,
}

impl fmt::Debug for FhirDate {
    /// Dates can be patient data (birth dates); the Debug form hides them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FhirDate(<{:?} precision>)", self.precision)
    }
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
}

/// Whether `year` is a Gregorian leap year.
pub fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1-12) of `year`.
pub fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (negative before).
///
/// Works by shifting the year to start in March so the leap day is last, then
/// counting whole 400-year eras (146097 days each), years (365 days plus the
/// leap rules) and days of the shifted year (153 days per five months).
pub fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The calendar date `(year, month, day)` of a day number from [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

impl FhirDate {
    /// A full-precision date. Returns `None` when the day does not exist.
    pub fn from_ymd(year: i32, month: u8, day: u8) -> Option<Self> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(FhirDate { year, month, day, precision: Precision::Day })
    }

    /// The date of day number `days` (days since 1970-01-01).
    pub fn from_day_number(days: i64) -> Self {
        let (year, month, day) = civil_from_days(days);
        FhirDate { year, month, day, precision: Precision::Day }
    }

    /// Parses a FHIR `date`, `dateTime` or `instant`. The time of day, when
    /// present, must be complete (`hh:mm:ss`, optional fraction) with a zone
    /// (`Z` or `±hh:mm`), as R4 requires.
    pub fn parse(s: &str) -> Result<Self, DateError> {
        let b = s.as_bytes();
        let (date, time) = match b.iter().position(|&c| c == b'T') {
            Some(i) => (&b[..i], Some(&b[i + 1..])),
            None => (b, None),
        };
        let parts: Vec<&[u8]> = date.split(|&c| c == b'-').collect();
        let (year, month, day, precision) = match parts.as_slice() {
            [y] if y.len() == 4 => (digits(y), Some(1), Some(1), Precision::Year),
            [y, m] if y.len() == 4 && m.len() == 2 => (digits(y), digits(m), Some(1), Precision::Month),
            [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
                (digits(y), digits(m), digits(d), Precision::Day)
            }
            _ => return Err(DateError::Format),
        };
        let (Some(year), Some(month), Some(day)) = (year, month, day) else { return Err(DateError::Format) };
        let (year, month, day) = (year as i32, month as u8, day as u8);
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(DateError::Range);
        }
        if let Some(t) = time {
            if precision != Precision::Day {
                return Err(DateError::Format);
            }
            check_time(t)?;
        }
        Ok(FhirDate { year, month, day, precision })
    }

    /// Year.
    pub fn year(&self) -> i32 {
        self.year
    }

    /// Month (1 when the precision is a year).
    pub fn month(&self) -> u8 {
        self.month
    }

    /// Day of month (1 when the precision is a year or month).
    pub fn day(&self) -> u8 {
        self.day
    }

    /// How much of the date was given.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Days since 1970-01-01 of the first day the value can denote
    /// (`2015` → 2015-01-01, `2015-03` → 2015-03-01).
    pub fn day_number(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day)
    }
}

impl fmt::Display for FhirDate {
    /// ISO form at the value's precision. Use only where a date may be shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.precision {
            Precision::Year => write!(f, "{:04}", self.year),
            Precision::Month => write!(f, "{:04}-{:02}", self.year, self.month),
            Precision::Day => write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day),
        }
    }
}

/// Validates `hh:mm:ss[.fff][Z|±hh:mm]`.
fn check_time(t: &[u8]) -> Result<(), DateError> {
    if t.len() < 9 {
        return Err(DateError::Format);
    }
    let (hms, mut rest) = t.split_at(8);
    if hms[2] != b':' || hms[5] != b':' {
        return Err(DateError::Format);
    }
    let h = digits(&hms[0..2]).ok_or(DateError::Format)?;
    let m = digits(&hms[3..5]).ok_or(DateError::Format)?;
    let s = digits(&hms[6..8]).ok_or(DateError::Format)?;
    // FHIR allows 24:00:00? No: hours 00-23; leap second 60 is allowed by the regex.
    if h > 23 || m > 59 || s > 60 {
        return Err(DateError::Range);
    }
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err(DateError::Format);
        }
        rest = &frac[n..];
    }
    match rest {
        b"Z" => Ok(()),
        [sign, oh1, oh2, b':', om1, om2] if *sign == b'+' || *sign == b'-' => {
            let oh = digits(&[*oh1, *oh2]).ok_or(DateError::Format)?;
            let om = digits(&[*om1, *om2]).ok_or(DateError::Format)?;
            if oh > 14 || om > 59 {
                return Err(DateError::Range);
            }
            Ok(())
        }
        _ => Err(DateError::Format),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        for d in [-800_000i64, -1, 0, 59, 60, 11_016, 19_782, 2_000_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn parses_fhir_forms() {
        assert_eq!(FhirDate::parse("2015").unwrap().precision(), Precision::Year);
        assert_eq!(FhirDate::parse("2015-03").unwrap().day_number(), days_from_civil(2015, 3, 1));
        assert_eq!(FhirDate::parse("2015-03-04").unwrap().day(), 4);
        assert_eq!(FhirDate::parse("2015-03-04T10:11:12Z").unwrap().day(), 4);
        assert_eq!(FhirDate::parse("2015-03-04T10:11:12.123+02:00").unwrap().month(), 3);
        assert_eq!(FhirDate::parse("2016-02-29").unwrap().to_string(), "2016-02-29");
    }

    #[test]
    fn rejects_malformed_dates() {
        assert_eq!(FhirDate::parse("2015-02-29"), Err(DateError::Range));
        assert_eq!(FhirDate::parse("2015-13-01"), Err(DateError::Range));
        assert_eq!(FhirDate::parse("15-03-04"), Err(DateError::Format));
        assert_eq!(FhirDate::parse("2015-03-04T10:11"), Err(DateError::Format));
        assert_eq!(FhirDate::parse("2015-03-04T10:11:12"), Err(DateError::Format));
        assert_eq!(FhirDate::parse("2015-03T10:11:12Z"), Err(DateError::Format));
        assert_eq!(FhirDate::parse("2015-03-04T25:11:12Z"), Err(DateError::Range));
        assert_eq!(FhirDate::parse(""), Err(DateError::Format));
        assert_eq!(FhirDate::parse("2015-3-04"), Err(DateError::Format));
    }
}
