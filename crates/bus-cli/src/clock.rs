//! Times as RFC 3339 text in UTC, without a date-time dependency.

/// `2024-05-01T12:00:00.250Z` for `seconds` since the Unix epoch
/// (milliseconds kept). Non-finite or out-of-range values give `"?"`.
pub(crate) fn utc(seconds: f64) -> String {
    if !seconds.is_finite() || !(0.0..253_402_300_800.0).contains(&seconds) {
        return "?".into();
    }
    // Exact for every f64 in range: at most 2^38 s, times 1000.
    let millis = (seconds * 1000.0).round() as i64;
    let (secs, ms) = (millis.div_euclid(1000), millis.rem_euclid(1000));
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The date of a day counted from 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Now, as seconds since the Unix epoch.
pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(utc(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_700_000_000.25), "2023-11-14T22:13:20.250Z");
        assert_eq!(utc(951_782_400.0), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc(4_107_542_399.999), "2100-02-28T23:59:59.999Z");
        assert_eq!(utc(f64::NAN), "?");
        assert_eq!(utc(-1.0), "?");
    }
}
