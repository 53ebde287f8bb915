//! The stderr logger behind the `log` facade: `env_filter` decides which
//! records pass (per-module levels, `RUST_LOG` syntax), this module writes
//! them as text or JSON lines.
//!
//! Text lines look like `2026-11-23T19:55:12.123Z INFO  target: message`;
//! JSON lines like `{"ts":"2026-11-23T19:55:12.123Z","level":"INFO",
//! "target":"…","msg":"…"}`, with a `kv` object when the record carries
//! key-values. The tracker logs little (start-up, reloads, worker trouble),
//! so one formatted write per record under the stderr lock is plenty and
//! keeps lines from different threads whole. What a disabled record costs
//! matters more: `log::max_level()` is set to the most verbose level any
//! directive enables, so below that a `debug!` is one relaxed atomic load
//! and compare, and the filter's per-module check runs only for levels
//! some module has turned on.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use log::kv::{Key, Value, VisitSource};
use log::{Log, Metadata, Record};

use crate::config::{LogFilter, LogFormat};

struct StderrLogger {
    filter: env_filter::Filter,
    format: LogFormat,
}

/// Installs the stderr logger with `filter`, writing `format`. Only the
/// first call in a process takes effect; later calls (or a logger installed
/// by someone else) leave things as they are, so tests and embedders may
/// call it freely.
pub fn init(filter: &LogFilter, format: LogFormat) {
    let filter = filter.build();
    let max_level = filter.filter();
    if log::set_boxed_logger(Box::new(StderrLogger { filter, format })).is_ok() {
        log::set_max_level(max_level);
    }
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.filter.matches(record) {
            return;
        }
        let line = format_line(self.format, SystemTime::now(), record);
        // Nowhere to report a failed write to stderr; dropping the line is
        // the only sensible outcome.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().lock().flush();
    }
}

/// `msg` as one info line from `target` in `format`, for the rare line
/// written whatever the filter says (the `ready:` line in JSON mode), so
/// that it reads like every other line.
pub fn info_line(format: LogFormat, target: &str, msg: &str) -> String {
    format_line(
        format,
        SystemTime::now(),
        &Record::builder()
            .level(log::Level::Info)
            .target(target)
            .args(format_args!("{msg}"))
            .build(),
    )
}

fn format_line(format: LogFormat, now: SystemTime, record: &Record<'_>) -> String {
    match format {
        LogFormat::Text => text_line(now, record),
        LogFormat::Json => json_line(now, record),
    }
}

fn text_line(now: SystemTime, record: &Record<'_>) -> String {
    let mut line = String::with_capacity(128);
    write_timestamp(&mut line, now);
    // Level padded to five so messages line up across levels.
    let _ = write!(
        line,
        " {:<5} {}: {}",
        record.level(),
        record.target(),
        record.args()
    );
    let _ = record.key_values().visit(&mut TextKeyValues(&mut line));
    line.push('\n');
    line
}

/// Appends ` key=value` per key-value, after the message.
struct TextKeyValues<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for TextKeyValues<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let _ = write!(self.0, " {key}={value}");
        Ok(())
    }
}

/// One JSON line. serde_json does the escaping, so quotes, backslashes,
/// newlines and control characters in a message cannot break the line.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    ts: &'a str,
    level: &'a str,
    target: &'a str,
    msg: &'a str,
    /// Nested, so a key such as `msg` cannot clash with the fields above.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    kv: serde_json::Map<String, serde_json::Value>,
}

fn json_line(now: SystemTime, record: &Record<'_>) -> String {
    let mut ts = String::with_capacity(24);
    write_timestamp(&mut ts, now);
    let formatted;
    let msg = match record.args().as_str() {
        Some(msg) => msg,
        None => {
            formatted = record.args().to_string();
            &formatted
        }
    };
    let mut kv = JsonKeyValues(serde_json::Map::new());
    let _ = record.key_values().visit(&mut kv);
    let mut line = serde_json::to_string(&JsonLine {
        ts: &ts,
        level: record.level().as_str(),
        target: record.target(),
        msg,
        kv: kv.0,
    })
    // Only a non-string map key or a failing Serialize impl can fail, and
    // JsonLine has neither.
    .unwrap_or_default();
    line.push('\n');
    line
}

/// Collects key-values, keeping numbers and booleans typed for the shipper.
struct JsonKeyValues(serde_json::Map<String, serde_json::Value>);

impl<'kvs> VisitSource<'kvs> for JsonKeyValues {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let value = if let Some(b) = value.to_bool() {
            b.into()
        } else if let Some(n) = value.to_u64() {
            n.into()
        } else if let Some(n) = value.to_i64() {
            n.into()
        } else {
            value.to_string().into()
        };
        self.0.insert(key.as_str().to_owned(), value);
        Ok(())
    }
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
    use crate::config::LogLevel;
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

    fn record<'a>(
        level: log::Level,
        target: &'a str,
        args: std::fmt::Arguments<'a>,
        kvs: &'a dyn log::kv::Source,
    ) -> Record<'a> {
        Record::builder()
            .level(level)
            .target(target)
            .args(args)
            .key_values(kvs)
            .build()
    }

    const NOW_MS: u64 = 1_795_463_712_123;
    const NO_KVS: &[(&str, u64)] = &[];

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(NOW_MS)
    }

    #[test]
    fn line_format() {
        let line = text_line(
            now(),
            &record(
                log::Level::Info,
                "tracker_user::server",
                format_args!("bound {}", 6969),
                &NO_KVS,
            ),
        );
        assert_eq!(
            line,
            "2026-11-23T19:55:12.123Z INFO  tracker_user::server: bound 6969\n"
        );
        let line = text_line(
            now(),
            &record(log::Level::Error, "t", format_args!("x"), &NO_KVS),
        );
        assert!(line.ends_with("Z ERROR t: x\n"), "{line}");
        let line = text_line(
            now(),
            &record(log::Level::Warn, "t", format_args!("x"), &[("n", 3)]),
        );
        assert!(line.ends_with("Z WARN  t: x n=3\n"), "{line}");
    }

    #[test]
    fn json_line_format() {
        let line = json_line(
            now(),
            &record(
                log::Level::Info,
                "tracker_user::server",
                format_args!("UDP listening on {}", "127.0.0.1:6969"),
                &NO_KVS,
            ),
        );
        assert_eq!(
            line,
            "{\"ts\":\"2026-11-23T19:55:12.123Z\",\"level\":\"INFO\",\
             \"target\":\"tracker_user::server\",\"msg\":\"UDP listening on 127.0.0.1:6969\"}\n"
        );
    }

    #[test]
    fn json_escapes_and_keeps_one_line() {
        let nasty = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} é 🚀";
        let kvs: &[(&str, &dyn log::kv::ToValue)] = &[
            ("msg", &"shadowed?"),
            ("n", &42u64),
            ("neg", &-1i64),
            ("ok", &true),
        ];
        let line = json_line(
            now(),
            &record(log::Level::Debug, "a::b", format_args!("{nasty}"), &kvs),
        );
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["msg"], nasty);
        assert_eq!(v["level"], "DEBUG");
        assert_eq!(v["target"], "a::b");
        assert_eq!(v["kv"]["msg"], "shadowed?");
        assert_eq!(v["kv"]["n"], 42);
        assert_eq!(v["kv"]["neg"], -1);
        assert_eq!(v["kv"]["ok"], true);
    }

    #[test]
    fn init_twice_is_harmless() {
        // Off, so other tests' log lines do not clutter the test output.
        init(&LogLevel::Off.into(), LogFormat::Text);
        init(&LogLevel::Trace.into(), LogFormat::Json);
        assert_eq!(log::max_level(), log::LevelFilter::Off);
        log::error!("not shown");
    }
}
