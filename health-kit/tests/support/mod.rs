//! Helpers shared by the integration tests: a validator of the draft's JSON shape and request builders.
#![allow(dead_code, unreachable_pub)]

use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tower::ServiceExt;

/// Checks a body against draft-inadarei-api-health-check-06 sections 3 and 4, as strictly as the draft reads.
pub fn validate_health_json(body: &Value) -> Result<(), String> {
    let top = body.as_object().ok_or("top level is not an object")?;
    let status = top
        .get("status")
        .and_then(Value::as_str)
        .ok_or("top-level status missing or not a string")?;
    let status = parse_status(status)?;
    for key in ["version", "releaseId", "serviceId", "description", "output"] {
        if let Some(v) = top.get(key) {
            v.as_str().ok_or(format!("{key} is not a string"))?;
        }
    }
    if status == "pass" && top.contains_key("output") {
        return Err("output SHOULD be omitted on pass".into());
    }
    if let Some(notes) = top.get("notes") {
        notes.as_array().ok_or("notes is not an array")?;
    }
    let Some(checks) = top.get("checks") else {
        return Ok(());
    };
    let checks = checks.as_object().ok_or("checks is not an object")?;
    for (key, value) in checks {
        let parts: Vec<&str> = key.split(':').collect();
        if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!("key {key:?} is not componentName:measurementName"));
        }
        let array = value
            .as_array()
            .ok_or(format!("{key}: value is not an array"))?;
        if array.is_empty() {
            return Err(format!("{key}: empty array"));
        }
        for object in array {
            let object = object
                .as_object()
                .ok_or(format!("{key}: element is not an object"))?;
            let check_status = object
                .get("status")
                .and_then(Value::as_str)
                .ok_or(format!("{key}: no status"))?;
            let check_status = parse_status(check_status)?;
            if parts.len() == 2 {
                let ct = object
                    .get("componentType")
                    .and_then(Value::as_str)
                    .ok_or(format!("{key}: no componentType"))?;
                if !["component", "datastore", "system"].contains(&ct) && !ct.contains(':') {
                    return Err(format!(
                        "{key}: componentType {ct:?} is neither predefined nor a URI"
                    ));
                }
            }
            if object.contains_key("observedValue") && !object.contains_key("observedUnit") {
                return Err(format!("{key}: observedValue without observedUnit"));
            }
            if let Some(unit) = object.get("observedUnit") {
                unit.as_str()
                    .ok_or(format!("{key}: observedUnit is not a string"))?;
            }
            if let Some(time) = object.get("time") {
                let time = time
                    .as_str()
                    .ok_or(format!("{key}: time is not a string"))?;
                check_rfc3339(time).map_err(|e| format!("{key}: {e}"))?;
            }
            match (check_status, object.get("output")) {
                ("pass", Some(_)) => return Err(format!("{key}: output on pass")),
                ("pass", None) => {}
                (_, Some(output)) => {
                    output
                        .as_str()
                        .ok_or(format!("{key}: output is not a string"))?;
                }
                (_, None) => return Err(format!("{key}: {check_status} without output")),
            }
            if let Some(endpoints) = object.get("affectedEndpoints") {
                endpoints
                    .as_array()
                    .ok_or(format!("{key}: affectedEndpoints is not an array"))?;
            }
        }
    }
    Ok(())
}

fn parse_status(s: &str) -> Result<&'static str, String> {
    match s.to_ascii_lowercase().as_str() {
        "pass" | "ok" | "up" => Ok("pass"),
        "warn" => Ok("warn"),
        "fail" | "error" | "down" => Ok("fail"),
        other => Err(format!("unknown status {other:?}")),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (the local rule: RFC 3339 in UTC).
fn check_rfc3339(t: &str) -> Result<(), String> {
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        r.into_iter()
            .all(|i| b.get(i).is_some_and(u8::is_ascii_digit))
    };
    let ok = b.len() == 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'Z';
    if ok {
        Ok(())
    } else {
        Err(format!("time {t:?} is not RFC 3339 UTC"))
    }
}

pub fn get(path: &str) -> Request<Full<bytes::Bytes>> {
    Request::get(path)
        .body(Full::default())
        .expect("a valid request")
}

pub fn get_with_auth(path: &str, auth: &str) -> Request<Full<bytes::Bytes>> {
    Request::get(path)
        .header(http::header::AUTHORIZATION, auth)
        .body(Full::default())
        .expect("a valid request")
}

/// Calls the service once and returns the status, headers and parsed JSON body (Null when empty).
pub async fn call<S>(
    service: S,
    request: Request<Full<bytes::Bytes>>,
) -> (http::StatusCode, http::HeaderMap, Value)
where
    S: tower::Service<
            Request<Full<bytes::Bytes>>,
            Response = Response<Full<bytes::Bytes>>,
            Error = std::convert::Infallible,
        >,
{
    let response = service.oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("infallible").to_bytes();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("a JSON body")
    };
    (parts.status, parts.headers, json)
}
