//! A minimal stderr logger for the `log` facade.
//!
//! Lines look like `2026-11-23T19:55:12.123Z INFO  target: message`. The
//! tracker logs little (start-up, reloads, worker trouble), so one
//! formatted write per record under the stderr lock is plenty and keeps
//! lines from different threads whole.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{LevelFilter, Log, Metadata, Record};

use crate::config::LogLevel;

/// The `log` filter for a configured level.
pub fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Off => LevelFilter::Off,
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Trace => LevelFilter::Trace,
    }
}

impl From<LogLevel> for LevelFilter {
    fn from(level: LogLevel) -> Self {
        level_filter(level)
    }
}

struct StderrLogger;

static LOGGER: StderrLogger = StderrLogger;

/// Installs the stderr logger at `level`. Only the first call in a process
/// takes effect; later calls (or a logger installed by someone else) leave
/// things as they are, so tests and embedders may call it freely.
pub fn init(level: LogLevel) {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level_filter(level));
    }
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(SystemTime::now(), record);
        // Nowhere to report a failed write to stderr; dropping the line is
        // the only sensible outcome.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().lock().flush();
    }
}

fn format_line(now: SystemTime, record: &Record<'_>) -> String {
    let mut line = String::with_capacity(128);
    write_timestamp(&mut line, now);
    // Level padded to five so messages line up across levels.
    let _ = writeln!(
        line,
        " {:<5} {}: {}",
        record.level(),
        record.target(),
        record.args()
    );
    line
}

/// Appends `now` as RFC 3339 UTC with milliseconds. A clock before 1970
/// prints as the epoch rather than failing.
fn write_timestamp(out: &mut String, now: SystemTime) {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let millis = since_epoch.subsec_millis();
    let days = secs / 86_400;
    let secs_of_day = secs % 86_400;
    // u64 seconds cover dates far past any i64 day count that matters; the
    // cast cannot overflow for any clock this process will see.
    let (year, month, day) = civil_from_days(days as i64);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60,
    );
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01.
/// Howard Hinnant's `civil_from_days`: shifting the year to start in March
/// puts the leap day last, so every era of 400 years is the same shape.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146_096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of March-based year, 0..=365
    let mp = (5 * doy + 2) / 153; // March-based month, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn timestamp(secs: u64, millis: u64) -> String {
        let mut out = String::new();
        write_timestamp(
            &mut out,
            UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis),
        );
        out
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(10_957), (2000, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1)); // 2100 is not leap
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
    }

    #[test]
    fn civil_dates_are_consecutive() {
        // Walking day by day across several leap cycles must only ever step
        // to the next day, month or year.
        let mut prev = civil_from_days(-800);
        for days in -799..150_000 {
            let next = civil_from_days(days);
            let ok = (next.0 == prev.0 && next.1 == prev.1 && next.2 == prev.2 + 1)
                || (next.0 == prev.0 && next.1 == prev.1 + 1 && next.2 == 1)
                || (next.0 == prev.0 + 1 && (next.1, next.2) == (1, 1) && prev.1 == 12);
            assert!(ok, "{prev:?} -> {next:?} at {days}");
            prev = next;
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        // 2026-11-23T19:55:12.123Z, checked with `date -u -d @1795463712`.
        assert_eq!(timestamp(1_795_463_712, 123), "2026-11-23T19:55:12.123Z");
        assert_eq!(timestamp(4_102_444_799, 999), "2099-12-31T23:59:59.999Z");
        let mut before_epoch = String::new();
        write_timestamp(&mut before_epoch, UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!(before_epoch, "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn line_format() {
        let now = UNIX_EPOCH + Duration::from_millis(1_795_463_712_123);
        let line = format_line(
            now,
            &Record::builder()
                .level(log::Level::Info)
                .target("tracker_user::server")
                .args(format_args!("bound {}", 6969))
                .build(),
        );
        assert_eq!(
            line,
            "2026-11-23T19:55:12.123Z INFO  tracker_user::server: bound 6969\n"
        );
        let line = format_line(
            now,
            &Record::builder()
                .level(log::Level::Error)
                .target("t")
                .args(format_args!("x"))
                .build(),
        );
        assert!(line.ends_with("Z ERROR t: x\n"), "{line}");
    }

    #[test]
    fn level_filters() {
        assert_eq!(level_filter(LogLevel::Off), LevelFilter::Off);
        assert_eq!(level_filter(LogLevel::Error), LevelFilter::Error);
        assert_eq!(level_filter(LogLevel::Warn), LevelFilter::Warn);
        assert_eq!(LevelFilter::from(LogLevel::Info), LevelFilter::Info);
        assert_eq!(level_filter(LogLevel::Debug), LevelFilter::Debug);
        assert_eq!(level_filter(LogLevel::Trace), LevelFilter::Trace);
    }

    #[test]
    fn init_twice_is_harmless() {
        // Off, so other tests' log lines do not clutter the test output.
        init(LogLevel::Off);
        init(LogLevel::Trace);
        log::error!("not shown");
    }
}
