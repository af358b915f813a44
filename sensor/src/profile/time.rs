//! Profile times: one type for every time a profile records (`learningStarted`, `readyAt`,
//! `updated`, `firstSeen`, `lastSeen`), ordered so that merging profiles can take the earliest
//! or the latest.
//!
//! A [`Timestamp`] is a UTC instant, persisted as the RFC 3339 string it was read from or made
//! of: `2026-11-26T00:16:17Z` (the daemon's clock, whole seconds) or
//! `2026-11-26T00:16:17.123456789Z` (kernel event times, nanoseconds). It keeps how many
//! fractional digits it was written with, so that a profile read and written back is
//! byte-identical. Reading also accepts what the sensor accepted before times were typed (a
//! space for `T`, `+00:00` or nothing for `Z`, as `humantime::parse_rfc3339_weak`), written back
//! in the canonical form; anything else is an error, and a profile file with such a time is
//! quarantined like any other unreadable file (`profile::persist`).
//!
//! The parser is a `const fn` so that tests and constants can spell times as literals
//! ([`Timestamp::lit`]).

use std::{
    fmt,
    str::FromStr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant from 1970 to 9999, with nanoseconds, and the number of fractional digits
/// (0 to 9) of its RFC 3339 form.
///
/// The order is the order of the instants; two forms of one instant (`…:00Z` and
/// `…:00.000000000Z`) are told apart by their digits, fewer first, so that the order agrees
/// with equality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: u64,
    nanos: u32,
    digits: u8,
}

/// Why a string is not a profile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("not an RFC 3339 time (expected e.g. 2026-11-26T00:16:17Z)")]
    Format,
    #[error("a date or time field is out of range (years 1970 to 9999)")]
    Range,
    #[error("more than 9 fractional digits")]
    Precision,
}

/// The largest number of seconds since the epoch a time can have: 9999-12-31T23:59:59Z.
const MAX_SECS: u64 = 253_402_300_799;

const fn digit(b: u8) -> Result<u64, TimeError> {
    if b.is_ascii_digit() {
        Ok((b - b'0') as u64)
    } else {
        Err(TimeError::Format)
    }
}

/// `b[i..i + n]` as a decimal number.
const fn number(b: &[u8], i: usize, n: usize) -> Result<u64, TimeError> {
    let mut v = 0;
    let mut k = 0;
    while k < n {
        v = v * 10
            + match digit(b[i + k]) {
                Ok(d) => d,
                Err(e) => return Err(e),
            };
        k += 1;
    }
    Ok(v)
}

const fn is_leap_year(y: u64) -> bool {
    y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400))
}

/// Parses `YYYY-MM-DD(T| )HH:MM:SS[.f{1,9}][Z|+00:00]` (the forms
/// `humantime::parse_rfc3339_weak` reads, to nine digits).
const fn parse(b: &[u8]) -> Result<Timestamp, TimeError> {
    macro_rules! num {
        ($i:expr, $n:expr) => {
            match number(b, $i, $n) {
                Ok(v) => v,
                Err(e) => return Err(e),
            }
        };
    }
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b'T' && b[10] != b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(TimeError::Format);
    }
    let year = num!(0, 4);
    let month = num!(5, 2);
    let day = num!(8, 2);
    let hour = num!(11, 2);
    let minute = num!(14, 2);
    let mut second = num!(17, 2);
    if year < 1970 || hour > 23 || minute > 59 || second > 60 {
        return Err(TimeError::Range);
    }
    // A leap second is read as the second before it (as humantime does).
    if second == 60 {
        second = 59;
    }
    let leap = is_leap_year(year);
    let (mut ydays, mdays) = match month {
        1 => (0, 31),
        2 if leap => (31, 29),
        2 => (31, 28),
        3 => (59, 31),
        4 => (90, 30),
        5 => (120, 31),
        6 => (151, 30),
        7 => (181, 31),
        8 => (212, 31),
        9 => (243, 30),
        10 => (273, 31),
        11 => (304, 30),
        12 => (334, 31),
        _ => return Err(TimeError::Range),
    };
    if day == 0 || day > mdays {
        return Err(TimeError::Range);
    }
    ydays += day - 1;
    if leap && month > 2 {
        ydays += 1;
    }
    let leap_years =
        ((year - 1) - 1968) / 4 - ((year - 1) - 1900) / 100 + ((year - 1) - 1600) / 400;
    let days = (year - 1970) * 365 + leap_years + ydays;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;

    let mut i = 19;
    let mut nanos: u64 = 0;
    let mut digits: u8 = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let mut mult = 100_000_000;
        while i < b.len() && b[i].is_ascii_digit() {
            if digits == 9 {
                return Err(TimeError::Precision);
            }
            nanos += mult * (b[i] - b'0') as u64;
            mult /= 10;
            digits += 1;
            i += 1;
        }
        if digits == 0 {
            return Err(TimeError::Format);
        }
    }
    let rest = b.len() - i;
    let zone_ok = rest == 0
        || (rest == 1 && b[i] == b'Z')
        || (rest == 6
            && b[i] == b'+'
            && b[i + 1] == b'0'
            && b[i + 2] == b'0'
            && b[i + 3] == b':'
            && b[i + 4] == b'0'
            && b[i + 5] == b'0');
    if !zone_ok {
        return Err(TimeError::Format);
    }
    if secs > MAX_SECS {
        return Err(TimeError::Range);
    }
    Ok(Timestamp {
        secs,
        nanos: nanos as u32,
        digits,
    })
}

impl Timestamp {
    /// 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp {
        secs: 0,
        nanos: 0,
        digits: 0,
    };

    /// An RFC 3339 time (see the module documentation for the forms read).
    pub const fn parse(s: &str) -> Result<Timestamp, TimeError> {
        parse(s.as_bytes())
    }

    /// A time literal, checked at compile time when used in a constant:
    /// `const T0: Timestamp = Timestamp::lit("2026-11-26T00:00:00Z");`.
    pub const fn lit(s: &str) -> Timestamp {
        match parse(s.as_bytes()) {
            Ok(t) => t,
            Err(_) => panic!("not an RFC 3339 time"),
        }
    }

    /// The current time, in whole seconds (the daemon's clock: `daemon::now_rfc3339`).
    pub fn now() -> Timestamp {
        Timestamp::from_system_time(SystemTime::now(), 0)
    }

    /// `t` written with `digits` fractional digits (at most 9; the instant is truncated to
    /// them). Before 1970 reads as the epoch, after 9999 as the end of 9999.
    pub fn from_system_time(t: SystemTime, digits: u8) -> Timestamp {
        let digits = digits.min(9);
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs().min(MAX_SECS);
        let unit = 10u32.pow(9 - u32::from(digits));
        Timestamp {
            secs,
            nanos: d.subsec_nanos() / unit * unit,
            digits,
        }
    }

    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::new(self.secs, self.nanos)
    }

    /// How long after `earlier` this is (zero when it is not after).
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        self.to_system_time()
            .duration_since(earlier.to_system_time())
            .unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // humantime writes the date and nine digits; the fraction is cut to the digits read.
        let full = humantime::format_rfc3339_nanos(self.to_system_time()).to_string();
        let (seconds, fraction) = full.split_at(19);
        if self.digits == 0 {
            write!(f, "{seconds}Z")
        } else {
            let digits = &fraction[1..1 + usize::from(self.digits)];
            write!(f, "{seconds}.{digits}Z")
        }
    }
}

impl FromStr for Timestamp {
    type Err = TimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

impl From<Timestamp> for String {
    fn from(t: Timestamp) -> String {
        t.to_string()
    }
}

/// In the cluster CRDs' schemas: an RFC 3339 string (what [`Timestamp`]'s serde writes).
impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "date-time" })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Timestamp::parse(&s).map_err(|e| serde::de::Error::custom(format_args!("time `{s}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sensor_forms_round_trip_byte_for_byte() {
        for s in [
            "2026-11-26T00:00:00Z",
            "2026-11-26T00:16:17.123456789Z",
            "2026-11-26T00:16:17.000000000Z",
            "2026-05-28T20:26:40.5Z",
            "2024-02-29T23:59:59.120Z",
            "1970-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
        ] {
            let t = Timestamp::parse(s).unwrap();
            assert_eq!(t.to_string(), s);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        }
    }

    #[test]
    fn instants_agree_with_humantime() {
        for s in [
            "2026-11-26T00:00:00Z",
            "2026-11-26T00:16:17.123456789Z",
            "2000-02-29T12:00:00Z",
            "2100-03-01T00:00:00Z",
            "2026-11-26 00:16:17",
            "2026-11-26T00:16:17+00:00",
            "2016-12-31T23:59:60Z",
        ] {
            assert_eq!(
                Timestamp::parse(s).unwrap().to_system_time(),
                humantime::parse_rfc3339_weak(s).unwrap(),
                "{s}"
            );
        }
        let now = SystemTime::now();
        let t = Timestamp::from_system_time(now, 0);
        assert_eq!(
            t.to_string(),
            humantime::format_rfc3339_seconds(now).to_string()
        );
        let t = Timestamp::from_system_time(now, 9);
        assert_eq!(
            t.to_string(),
            humantime::format_rfc3339_nanos(now).to_string()
        );
    }

    #[test]
    fn weak_forms_are_read_and_written_canonically() {
        assert_eq!(
            Timestamp::parse("2026-11-26 00:16:17").unwrap().to_string(),
            "2026-11-26T00:16:17Z"
        );
        assert_eq!(
            Timestamp::parse("2026-11-26T00:16:17.25+00:00")
                .unwrap()
                .to_string(),
            "2026-11-26T00:16:17.25Z"
        );
    }

    #[test]
    fn garbage_is_refused() {
        for (s, e) in [
            ("", TimeError::Format),
            ("t1", TimeError::Format),
            ("2026-11-26T00:16:17+02:00", TimeError::Format),
            ("2026-11-26T00:16:17.Z", TimeError::Format),
            ("2026-11-26T00:16:17ZZ", TimeError::Format),
            ("2026-13-01T00:00:00Z", TimeError::Range),
            ("2026-02-29T00:00:00Z", TimeError::Range),
            ("1969-12-31T23:59:59Z", TimeError::Range),
            ("2026-11-26T24:00:00Z", TimeError::Range),
            ("2026-11-26T00:00:00.1234567891Z", TimeError::Precision),
        ] {
            assert_eq!(Timestamp::parse(s), Err(e), "{s}");
        }
        let err = serde_json::from_str::<Timestamp>("\"yesterday\"").unwrap_err();
        assert!(err.to_string().contains("time `yesterday`"), "{err}");
    }

    #[test]
    fn order_is_the_order_of_instants() {
        let a = Timestamp::lit("2026-11-26T00:00:00Z");
        let b = Timestamp::lit("2026-11-26T00:00:00.000000001Z");
        let c = Timestamp::lit("2026-11-26T00:00:01Z");
        assert!(a < b && b < c);
        assert!(
            a < Timestamp::lit("2026-11-26T00:00:00.0Z"),
            "digits break ties"
        );
        assert_eq!(c.duration_since(a), Duration::from_secs(1));
        assert_eq!(a.duration_since(c), Duration::ZERO);
    }
}
