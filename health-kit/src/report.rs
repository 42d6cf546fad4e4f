//! The `application/health+json` bodies (draft-inadarei-api-health-check-06).

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::registry::CheckRecord;
use crate::status::{ComponentType, Status};

/// The service's identity, shown on `/health/status`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    pub(crate) version: Option<String>,
    pub(crate) release_id: Option<String>,
    pub(crate) service_id: Option<String>,
    pub(crate) description: Option<String>,
}

/// One registered check and its last result, as the body builder sees it.
pub(crate) struct CheckView<'a> {
    pub(crate) name: &'a str,
    pub(crate) critical: bool,
    pub(crate) component_type: &'a ComponentType,
    pub(crate) record: Option<&'a CheckRecord>,
    /// How old the result is, when it is too old to count (the refresher stopped or fell behind).
    pub(crate) stale_for: Option<std::time::Duration>,
}

impl CheckView<'_> {
    /// The check's status as it counts now: failing when it has no result or a stale one.
    pub(crate) fn status(&self) -> Status {
        match self.record {
            Some(record) if self.stale_for.is_none() => record.observation.status(),
            _ => Status::Fail,
        }
    }

    fn output(&self) -> Option<String> {
        if let Some(age) = self.stale_for {
            return Some(format!(
                "stale: the last result is {} old",
                crate::registry::human(age)
            ));
        }
        self.record
            .and_then(|r| r.observation.output_text().map(str::to_owned))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TopLevel<'a> {
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    release_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checks: Option<Map<String, Value>>,
}

fn to_bytes(top: &TopLevel<'_>) -> Bytes {
    // Serialising plain strings, numbers and maps cannot fail; fall back to a minimal body all the same.
    serde_json::to_vec(top).map_or_else(
        |_| Bytes::from(format!("{{\"status\":\"{}\"}}", top.status)),
        Bytes::from,
    )
}

/// `{"status": ...}` with an optional `output`: the bodies of live, startup and ready, which never show checks.
pub(crate) fn lifecycle_body(status: Status, output: Option<&str>) -> Bytes {
    // The bodies probes read most, as static bytes: cloning them per probe touches no reference count.
    let fixed: Option<&'static [u8]> = match (status, output) {
        (Status::Pass, None) => Some(br#"{"status":"pass"}"#),
        (Status::Warn, None) => Some(br#"{"status":"warn"}"#),
        (Status::Fail, None) => Some(br#"{"status":"fail"}"#),
        (Status::Fail, Some("starting")) => Some(br#"{"status":"fail","output":"starting"}"#),
        (Status::Fail, Some("not ready")) => Some(br#"{"status":"fail","output":"not ready"}"#),
        (Status::Fail, Some("draining")) => Some(br#"{"status":"fail","output":"draining"}"#),
        _ => None,
    };
    if let Some(fixed) = fixed {
        return Bytes::from_static(fixed);
    }
    to_bytes(&TopLevel {
        status,
        version: None,
        release_id: None,
        service_id: None,
        description: None,
        output,
        checks: None,
    })
}

/// The body of `/health/status`: the service's identity and status and, when `checks` is given, every check
/// with the top-level `output` naming the checks at fault.
pub(crate) fn status_body(status: Status, meta: &Meta, checks: Option<&[CheckView<'_>]>) -> Bytes {
    let output = checks.and_then(|views| summary(status, views));
    to_bytes(&TopLevel {
        status,
        version: meta.version.as_deref(),
        release_id: meta.release_id.as_deref(),
        service_id: meta.service_id.as_deref(),
        description: meta.description.as_deref(),
        output: output.as_deref(),
        checks: checks.map(checks_object),
    })
}

fn summary(status: Status, views: &[CheckView<'_>]) -> Option<String> {
    if status == Status::Pass {
        return None;
    }
    let at_fault: Vec<String> = views
        .iter()
        .filter_map(|v| {
            let s = v.status();
            (s != Status::Pass).then(|| {
                let kind = if v.critical {
                    "critical"
                } else {
                    "non-critical"
                };
                format!("{} {} ({kind})", v.name, s)
            })
        })
        .collect();
    Some(at_fault.join(", "))
}

/// `checks`: one key per measurement, `component:measurement`, each an array of one object (section 4).
fn checks_object(views: &[CheckView<'_>]) -> Map<String, Value> {
    let mut out = Map::new();
    for view in views {
        let Some(record) = view.record else {
            let mut object = Map::new();
            object.insert(
                "componentType".into(),
                Value::from(view.component_type.as_str()),
            );
            object.insert("status".into(), Value::from(Status::Fail.as_str()));
            object.insert("output".into(), Value::from("no result yet"));
            object.insert("critical".into(), Value::from(view.critical));
            out.insert(
                format!("{}:responseTime", view.name),
                Value::Array(vec![Value::Object(object)]),
            );
            continue;
        };
        let observation = &record.observation;
        let status = view.status();
        let output = view.output();
        for measurement in observation.measurements() {
            let mut object = Map::new();
            object.insert(
                "componentType".into(),
                Value::from(view.component_type.as_str()),
            );
            if let Some(value) = measurement.observed_value() {
                object.insert("observedValue".into(), value.clone());
            }
            if let Some(unit) = measurement.observed_unit() {
                object.insert("observedUnit".into(), Value::from(unit));
            }
            object.insert("status".into(), Value::from(status.as_str()));
            object.insert("time".into(), Value::from(record.time.as_str()));
            if status != Status::Pass {
                let output = output.as_deref().unwrap_or(status.as_str());
                object.insert("output".into(), Value::from(output));
            }
            // Application-defined (section 4.10): whether this check can fail the service.
            object.insert("critical".into(), Value::from(view.critical));
            for (key, value) in measurement.fields() {
                object.insert(key.clone(), value.clone());
            }
            out.insert(
                format!("{}:{}", view.name, measurement.name()),
                Value::Array(vec![Value::Object(object)]),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_lifecycle_bodies_match_what_serde_writes() {
        for (status, output) in [
            (Status::Pass, None),
            (Status::Warn, None),
            (Status::Fail, None),
            (Status::Fail, Some("starting")),
            (Status::Fail, Some("not ready")),
            (Status::Fail, Some("draining")),
        ] {
            let serialised = to_bytes(&TopLevel {
                status,
                version: None,
                release_id: None,
                service_id: None,
                description: None,
                output,
                checks: None,
            });
            assert_eq!(lifecycle_body(status, output), serialised);
        }
        assert_eq!(
            &lifecycle_body(Status::Warn, Some("x"))[..],
            br#"{"status":"warn","output":"x"}"#
        );
    }
}
