//! Clock: the one place that reads the system's time. Everything else takes `now` or asks
//! here. It gives the logical *now* the rules are applied at (the system's, unless a run fixes
//! it), the wall clock that leases between processes are measured on, a monotonic clock for
//! durations and time-outs, and what must never repeat — message ids (UUIDv7) and retry
//! jitter — from a generator seeded once (or by a test).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The logical clock, and the source of ids and jitter.
#[derive(Debug)]
pub struct Clock {
    logical: Logical,
    rng: Mutex<fastrand::Rng>,
}

/// Where the logical now comes from.
#[derive(Debug, Clone, Copy)]
enum Logical {
    /// The system's time.
    System,
    /// Always this instant (`plan --at`, `tick --at`, tests).
    Fixed(DateTime<Utc>),
    /// This instant when the clock was made, then on at the monotonic clock's pace
    /// (`run --at`: a daemon rehearsing a given day).
    From { at: DateTime<Utc>, started: Instant },
}

impl Clock {
    /// The system's time; ids and jitter seeded from it.
    pub fn system() -> Clock {
        Clock { logical: Logical::System, rng: Mutex::new(fastrand::Rng::with_seed(system_seed())) }
    }

    /// A clock that reads `at` now and runs on from there at the system's pace; ids and
    /// jitter seeded from the system.
    pub fn starting_at(at: DateTime<Utc>) -> Clock {
        let logical = Logical::From { at, started: Instant::now() };
        Clock { logical, rng: Mutex::new(fastrand::Rng::with_seed(system_seed())) }
    }

    /// A clock stopped at `at`, its ids and jitter drawn from `seed`: the same run twice
    /// gives the same values.
    pub fn fixed(at: DateTime<Utc>, seed: u64) -> Clock {
        Clock { logical: Logical::Fixed(at), rng: Mutex::new(fastrand::Rng::with_seed(seed)) }
    }

    /// The logical now.
    pub fn now(&self) -> DateTime<Utc> {
        match self.logical {
            Logical::System => Utc::now(),
            Logical::Fixed(at) => at,
            Logical::From { at, started } => {
                at + chrono::Duration::from_std(started.elapsed()).unwrap_or(chrono::Duration::zero())
            }
        }
    }

    /// The logical now in the agency's time zone.
    pub fn now_in(&self, tz: Tz) -> DateTime<Tz> {
        self.now().with_timezone(&tz)
    }

    /// A fresh time-ordered id (UUIDv7): the wall clock's milliseconds, then random bits. A
    /// round's messages, and the notices that point at them, are appended at the end of their
    /// indexes instead of landing on random pages of them.
    pub fn new_id(&self) -> uuid::Uuid {
        let millis = u64::try_from(self.now().timestamp_millis().max(0)).unwrap_or(0);
        let mut random = [0u8; 10];
        self.with_rng(|rng| random.iter_mut().for_each(|b| *b = rng.u8(..)));
        uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
    }

    /// A number in [0, 1) to spread retries, so many failures do not retry in lockstep.
    pub fn jitter(&self) -> f64 {
        self.with_rng(|rng| rng.f64())
    }

    fn with_rng<T>(&self, draw: impl FnOnce(&mut fastrand::Rng) -> T) -> T {
        let mut rng = self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        draw(&mut rng)
    }
}

/// Seconds since the epoch on the system's clock: what leases between processes (and the
/// health endpoint's "last scan" age) are measured on, whatever instant a run plans at.
pub fn wall_seconds() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A monotonic instant, for durations and time-outs.
pub fn monotonic() -> Instant {
    Instant::now()
}

fn system_seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_fixed_clock_gives_the_same_ids_and_jitter_every_time_and_ids_sort_by_time() {
        let at = Utc.with_ymd_and_hms(2022, 9, 5, 1, 0, 0).unwrap();
        let (a, b) = (Clock::fixed(at, 7), Clock::fixed(at, 7));
        assert_eq!(a.now(), at);
        assert_eq!(a.new_id(), b.new_id());
        assert_eq!(a.jitter(), b.jitter());
        assert_ne!(a.new_id(), a.new_id(), "never the same id twice");
        let later = Clock::fixed(at + chrono::Duration::milliseconds(1), 1);
        assert!(later.new_id() > a.new_id(), "time-ordered");
        assert_eq!(a.new_id().get_version_num(), 7);
        assert!((0.0..1.0).contains(&a.jitter()));
    }

    #[test]
    fn a_clock_started_at_an_instant_runs_on_from_it() {
        let at = Utc.with_ymd_and_hms(2022, 9, 5, 1, 0, 0).unwrap();
        let clock = Clock::starting_at(at);
        let first = clock.now();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let second = clock.now();
        assert!(first >= at && first < at + chrono::Duration::seconds(5), "{first}");
        assert!(second > first, "it runs on: {first} then {second}");
    }
}
