//! Policies read from a TOML file (feature `toml`).
//!
//! ```toml
//! shadow = false              # optional: only report refusals
//! default_tier = "anonymous"  # optional: the tier for unknown names (default: the first tier)
//!
//! [allow]                     # optional
//! networks = ["10.0.0.0/8"]   # skip the per-address limits
//! keys = ["svc-backup"]       # user ids that skip the per-user limits
//!
//! [[limits]]
//! name = "anonymous_minute"
//! tier = "anonymous"          # or `category = "auth"`; neither: an extra limit for handlers
//! rate = 30
//! per = "1m"                  # s, m, h or d
//! burst = 30                  # optional, default `rate`
//! key = "ip"                  # "ip" or "user" (default "user": the user id, else the address)
//! charge = "request"          # "request" (default) or "handler"
//! ```

use std::time::Duration;

use serde::Deserialize;

use crate::error::ConfigError;
use crate::gcra::{Limit, Quota};
use crate::ip::AllowList;
use crate::policy::{ChargeMode, KeyBy, Policies, PolicyLimit};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    shadow: bool,
    default_tier: Option<String>,
    #[serde(default)]
    allow: Allow,
    #[serde(default)]
    limits: Vec<LimitEntry>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Allow {
    #[serde(default)]
    networks: Vec<String>,
    #[serde(default)]
    keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitEntry {
    name: String,
    tier: Option<String>,
    category: Option<String>,
    rate: u64,
    per: String,
    burst: Option<u64>,
    #[serde(default)]
    key: KeyEntry,
    #[serde(default)]
    charge: ChargeEntry,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum KeyEntry {
    Ip,
    #[default]
    User,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ChargeEntry {
    #[default]
    Request,
    Handler,
}

/// `30s`, `15m`, `1h`, `1d`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, ConfigError> {
    let text = text.trim();
    let bad = || {
        ConfigError::PolicyFile(format!(
            "bad duration {text:?}: use a number and s, m, h or d"
        ))
    };
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(unit_at);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(n.checked_mul(secs).ok_or_else(bad)?))
}

impl Policies {
    /// Policies from the text of a TOML policy file (the format is in the module docs of `policy_file`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::PolicyFile`] for TOML that does not parse or has unknown fields, and the errors of
    /// [`Quota`], [`Limit`], [`AllowList`] and [`Policies::tier`] for values they refuse.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let file: File =
            toml::from_str(text).map_err(|e| ConfigError::PolicyFile(e.to_string()))?;
        let mut tiers: Vec<(String, Vec<PolicyLimit>)> = Vec::new();
        let mut categories: Vec<(String, Vec<PolicyLimit>)> = Vec::new();
        let mut policies = Policies::empty();
        for entry in file.limits {
            let mut quota = Quota::new(entry.rate, parse_duration(&entry.per)?)?;
            if let Some(burst) = entry.burst {
                quota = quota.with_burst(burst)?;
            }
            let key = match entry.key {
                KeyEntry::Ip => KeyBy::ClientIp,
                KeyEntry::User => KeyBy::User,
            };
            let charge = match entry.charge {
                ChargeEntry::Request => ChargeMode::Request,
                ChargeEntry::Handler => ChargeMode::Handler,
            };
            let limit = PolicyLimit::new(Limit::new(&entry.name, quota)?, key, charge);
            let group = match (entry.tier, entry.category) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::PolicyFile(format!(
                        "limit {:?} names both a tier and a category",
                        entry.name
                    )));
                }
                (Some(tier), None) => Some((&mut tiers, tier)),
                (None, Some(category)) => Some((&mut categories, category)),
                (None, None) => None,
            };
            match group {
                Some((groups, name)) => match groups.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, limits)) => limits.push(limit),
                    None => groups.push((name, vec![limit])),
                },
                None => policies = policies.extra(limit),
            }
        }
        for (name, limits) in tiers {
            policies = policies.tier(&name, limits)?;
        }
        for (name, limits) in categories {
            policies = policies.category(&name, limits)?;
        }
        if let Some(default_tier) = file.default_tier {
            policies = policies.default_tier(&default_tier)?;
        }
        let allow = AllowList::new()
            .networks(&file.allow.networks)?
            .keys(file.allow.keys);
        Ok(policies.allow_list(allow).shadow(file.shadow))
    }

    /// Policies from a TOML policy file (`RATE_LIMIT_POLICY`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::PolicyFile`] when the file cannot be read, and those of
    /// [`from_toml_str`](Self::from_toml_str).
    pub fn from_toml_file(path: impl AsRef<std::path::Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::PolicyFile(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
shadow = true
default_tier = "anonymous"

[allow]
networks = ["10.0.0.0/8", "192.0.2.1"]
keys = ["svc-backup"]

[[limits]]
name = "anonymous_minute"
tier = "anonymous"
rate = 30
per = "1m"
key = "ip"

[[limits]]
name = "auth"
category = "auth"
rate = 5
per = "15m"
key = "ip"
charge = "handler"

[[limits]]
name = "auth_account"
rate = 5
per = "15m"
burst = 3
"#;

    #[test]
    fn a_policy_file_is_read_into_policies() {
        let p = Policies::from_toml_str(FILE).unwrap();
        assert!(p.is_shadow());
        assert!(p.allow_listed().contains_ip("10.1.2.3".parse().unwrap()));
        assert!(p.allow_listed().contains_key("svc-backup"));
        assert_eq!(
            p.limit("auth").unwrap().quota().window(),
            Duration::from_secs(900)
        );
        assert_eq!(p.limit("auth_account").unwrap().quota().burst(), 3);
        let auth = p.all_limits().find(|l| l.limit().name() == "auth").unwrap();
        assert_eq!(
            (auth.key_by(), auth.charge_mode()),
            (KeyBy::ClientIp, ChargeMode::Handler)
        );
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        assert!(Policies::from_toml_str("limits = 3").is_err());
        assert!(
            Policies::from_toml_str("[[limits]]\nname = \"x\"\nrate = 1\nper = \"1 fortnight\"")
                .is_err()
        );
        assert!(
            Policies::from_toml_str("[[limits]]\nname = \"X\"\nrate = 1\nper = \"1m\"").is_err()
        );
        assert!(Policies::from_toml_str("surprise = 1").is_err());
        assert!(Policies::from_toml_str("[allow]\nnetworks = [\"10.0.0.0/99\"]").is_err());
        assert!(Policies::from_toml_file("/nonexistent/policy.toml").is_err());
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("").is_err());
    }
}
