//! Reading instants given on the command line (`--at`): RFC 3339, or a local date-time in
//! the agency's time zone when no offset is given.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// Parses `2022-09-05T08:00:00+07:00`, `2022-09-05T08:00` (local), `2022-09-05 08:00` or
/// `2022-09-05` (local midnight).
pub fn parse_instant(text: &str, tz: Tz) -> Result<DateTime<Tz>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&tz));
    }
    let local = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .or_else(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))
        .ok_or_else(|| format!("{text:?} is not a time; use RFC 3339 such as 2022-09-05T08:00:00+07:00"))?;
    tz.from_local_datetime(&local).earliest().ok_or_else(|| format!("{text:?} does not exist in {tz}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_without_offset_are_local_to_the_agency() {
        let tz = chrono_tz::Asia::Ho_Chi_Minh;
        let a = parse_instant("2022-09-05T08:00:00+07:00", tz).unwrap();
        let b = parse_instant("2022-09-05T08:00", tz).unwrap();
        let c = parse_instant("2022-09-05T01:00:00Z", tz).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert!(parse_instant("tomorrow", tz).is_err());
    }
}
