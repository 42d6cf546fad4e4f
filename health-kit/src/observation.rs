//! What one run of a check found: a status, measurements and, on trouble, an output.

use std::borrow::Cow;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::status::Status;

/// One measurement of a component, shown under the key `component:measurement` (draft section 4).
///
/// The draft predefines `utilization`, `responseTime`, `connections` and `uptime`. A `:` in the name would
/// break the key, so it is replaced by `_`.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    name: Cow<'static, str>,
    value: Option<Value>,
    unit: Option<Cow<'static, str>>,
    extra: Map<String, Value>,
}

impl Measurement {
    /// A measurement with no value yet.
    #[must_use]
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        let mut name = name.into();
        if name.contains(':') {
            name = Cow::Owned(name.replace(':', "_"));
        }
        Self {
            name,
            value: None,
            unit: None,
            extra: Map::new(),
        }
    }

    /// `responseTime` in milliseconds (fractional, to the microsecond), as the house reports latency.
    #[must_use]
    pub fn response_time(elapsed: Duration) -> Self {
        Self::new("responseTime")
            .value(duration_ms(elapsed))
            .unit("ms")
    }

    /// Sets `observedValue` (any JSON value; a number is what dashboards plot).
    #[must_use]
    pub fn value(mut self, value: impl Into<Value>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Sets `observedUnit` (`ms`, `s`, `percent`, `bytes`, `connections`...).
    #[must_use]
    pub fn unit(mut self, unit: impl Into<Cow<'static, str>>) -> Self {
        self.unit = Some(unit.into());
        self
    }

    /// Adds a field of the application's own (draft section 4.10), such as `idle` beside `connections`.
    /// The draft's own field names (`status`, `time`, `output`...) are reserved and ignored here.
    #[must_use]
    pub fn field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        let key = key.into();
        if !RESERVED.contains(&key.as_str()) {
            self.extra.insert(key, value.into());
        }
        self
    }

    /// The measurement's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `observedValue`, if set.
    #[must_use]
    pub fn observed_value(&self) -> Option<&Value> {
        self.value.as_ref()
    }

    /// `observedUnit`, if set.
    #[must_use]
    pub fn observed_unit(&self) -> Option<&str> {
        self.unit.as_deref()
    }

    /// The application's own fields.
    #[must_use]
    pub fn fields(&self) -> &Map<String, Value> {
        &self.extra
    }
}

const RESERVED: [&str; 9] = [
    "componentId",
    "componentType",
    "observedValue",
    "observedUnit",
    "status",
    "affectedEndpoints",
    "time",
    "output",
    "links",
];

/// Milliseconds as a JSON number with microsecond precision (1.8 for 1 800 µs).
pub(crate) fn duration_ms(elapsed: Duration) -> Value {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let whole = micros / 1000;
    let frac = micros % 1000;
    // Built from integers so the value is exact to the microsecond and never NaN.
    let text = format!("{whole}.{frac:03}");
    text.parse::<serde_json::Number>()
        .map_or_else(|_| Value::from(whole), Value::Number)
}

/// The result of one run of a check.
///
/// A check with no measurements is shown with the `responseTime` the registry measured around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    status: Status,
    output: Option<String>,
    measurements: Vec<Measurement>,
}

impl Observation {
    /// A passing result.
    #[must_use]
    pub fn pass() -> Self {
        Self {
            status: Status::Pass,
            output: None,
            measurements: Vec::new(),
        }
    }

    /// A result with concerns; `output` says which.
    #[must_use]
    pub fn warn(output: impl Into<String>) -> Self {
        Self {
            status: Status::Warn,
            output: Some(output.into()),
            measurements: Vec::new(),
        }
    }

    /// A failed result; `output` says why (the draft's raw error text).
    #[must_use]
    pub fn fail(output: impl Into<String>) -> Self {
        Self {
            status: Status::Fail,
            output: Some(output.into()),
            measurements: Vec::new(),
        }
    }

    /// A result of the given status with no output.
    #[must_use]
    pub fn with_status(status: Status) -> Self {
        Self {
            status,
            output: None,
            measurements: Vec::new(),
        }
    }

    /// Adds a measurement.
    #[must_use]
    pub fn measurement(mut self, measurement: Measurement) -> Self {
        self.measurements.push(measurement);
        self
    }

    /// Sets the output (shown on `warn` and `fail` only: the draft says to omit it on `pass`).
    #[must_use]
    pub fn output(mut self, output: impl Into<String>) -> Self {
        self.output = Some(output.into());
        self
    }

    /// The status the check reported.
    #[must_use]
    pub fn status(&self) -> Status {
        self.status
    }

    /// The output, if any.
    #[must_use]
    pub fn output_text(&self) -> Option<&str> {
        self.output.as_deref()
    }

    /// The measurements.
    #[must_use]
    pub fn measurements(&self) -> &[Measurement] {
        &self.measurements
    }

    /// Raises the status to at least `floor` and, when it is raised, sets the output if there is none.
    pub(crate) fn raise(&mut self, floor: Status, why: impl FnOnce() -> String) {
        if floor > self.status {
            self.status = floor;
            if self.output.is_none() {
                self.output = Some(why());
            }
        }
    }

    pub(crate) fn ensure_measurement(&mut self, default: impl FnOnce() -> Measurement) {
        if self.measurements.is_empty() {
            self.measurements.push(default());
        }
    }
}

impl<E: std::fmt::Display> From<Result<Observation, E>> for Observation {
    fn from(result: Result<Observation, E>) -> Self {
        result.unwrap_or_else(|e| Self::fail(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_keep_microseconds() {
        assert_eq!(duration_ms(Duration::from_micros(1_800)).to_string(), "1.8");
        assert_eq!(duration_ms(Duration::from_micros(7)).to_string(), "0.007");
        assert_eq!(duration_ms(Duration::from_secs(2)).to_string(), "2000.0");
        assert_eq!(duration_ms(Duration::from_secs(2)).as_f64(), Some(2000.0));
    }

    #[test]
    fn colons_cannot_break_the_key_and_reserved_fields_are_ignored() {
        let m = Measurement::new("a:b")
            .field("status", "pass")
            .field("idle", 3);
        assert_eq!(m.name(), "a_b");
        assert_eq!(m.fields().len(), 1);
    }

    #[test]
    fn raise_keeps_worse_status_and_existing_output() {
        let mut o = Observation::fail("down");
        o.raise(Status::Warn, || "slow".into());
        assert_eq!((o.status(), o.output_text()), (Status::Fail, Some("down")));
        let mut o = Observation::pass();
        o.raise(Status::Warn, || "slow".into());
        assert_eq!((o.status(), o.output_text()), (Status::Warn, Some("slow")));
    }
}
