//! Seconds since the job started, and how they are written in reasons.

/// A point or span of time in seconds since the job started.
pub type Secs = f64;

/// One hour, the granularity of per-hour billing.
pub const HOUR: Secs = 3600.0;

/// Writes seconds the way a person reads them: `45s`, `12m05s`, `2h03m`.
pub fn human(secs: Secs) -> String {
    if !secs.is_finite() {
        return "never".to_string();
    }
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn writes_seconds_minutes_and_hours() {
        assert_eq!(human(45.2), "45s");
        assert_eq!(human(725.0), "12m05s");
        assert_eq!(human(7380.0), "2h03m");
        assert_eq!(human(f64::INFINITY), "never");
    }
}
