//! Deliver ← window: outbox rules that need no database: when a message may go out (the send window) and
//! when a failed one is tried again (exponential backoff with jitter, on the logical clock).

use crate::calendar::Calendar;
use crate::config::Config;
use chrono::DateTime;
use chrono_tz::Tz;

/// True when messages may be sent at `now`: inside the daily window, and on a working day
/// unless the window is configured for every day.
pub fn in_send_window(config: &Config, calendar: &Calendar, now: DateTime<Tz>) -> bool {
    let time = now.time();
    let hours = time >= config.window_start && time < config.window_end;
    let day = !config.send_window.working_days_only || calendar.is_working_day(now.date_naive());
    hours && day
}

/// Seconds to wait before attempt number `attempt + 1`, after `attempt` failures (≥ 1):
/// base × 2^(attempt−1), capped, then spread ±20% so many failures do not retry in lockstep.
pub fn retry_delay(base: u64, max: u64, attempt: u32, jitter: f64) -> u64 {
    let exponent = attempt.saturating_sub(1).min(30);
    let raw = base.saturating_mul(1u64 << exponent).min(max);
    let spread = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    ((raw as f64) * spread).round().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_delays_double_and_stop_at_the_cap() {
        let delays: Vec<u64> = (1..=8).map(|a| retry_delay(60, 3600, a, 0.5)).collect();
        assert_eq!(delays, vec![60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(retry_delay(60, 3600, 1, 0.0), 48);
        assert_eq!(retry_delay(60, 3600, 1, 1.0), 72);
    }

    #[test]
    fn nothing_goes_out_at_night_on_a_saturday_or_a_holiday() {
        let config = Config::load_from(None, &[]).unwrap();
        let calendar = Calendar::load(None).unwrap();
        let tz = chrono_tz::Asia::Ho_Chi_Minh;
        let at = |y, m, d, h, min| tz.with_ymd_and_hms(y, m, d, h, min, 0).unwrap();
        assert!(in_send_window(&config, &calendar, at(2022, 9, 5, 7, 30)));
        assert!(in_send_window(&config, &calendar, at(2022, 9, 5, 16, 59)));
        assert!(!in_send_window(&config, &calendar, at(2022, 9, 5, 17, 0)));
        assert!(!in_send_window(&config, &calendar, at(2022, 9, 5, 7, 29)));
        assert!(!in_send_window(&config, &calendar, at(2022, 9, 3, 9, 0))); // Saturday
        assert!(!in_send_window(&config, &calendar, at(2022, 9, 2, 9, 0))); // National Day
    }
}
