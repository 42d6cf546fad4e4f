//! Configuration, read once from the environment at start-up (shared/API.md, Configuration).
//!
//! Every variable is checked before the server starts; every one at fault is reported, one line each, naming
//! the variable and what is wrong with it. Secret values are never printed, not even in `Debug`.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use rand::RngCore;

/// Where the server runs: production refuses development conveniences such as a generated JWT key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// A developer's machine: missing secrets are generated with a warning.
    Development,
    /// A pre-production deployment.
    Staging,
    /// A real deployment: every secret must be given.
    Production,
}

/// The HMAC algorithm of access tokens; the only one tokens are accepted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256; keys of at least 32 bytes.
    Hs256,
    /// HMAC with SHA-384; keys of at least 48 bytes.
    Hs384,
    /// HMAC with SHA-512; keys of at least 64 bytes.
    Hs512,
}

impl JwtAlgorithm {
    /// The shortest key RFC 7518 section 3.2 allows for this algorithm.
    #[must_use]
    pub fn min_key_len(self) -> usize {
        match self {
            Self::Hs256 => 32,
            Self::Hs384 => 48,
            Self::Hs512 => 64,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for machines.
    Json,
    /// Coloured multi-line output, for people.
    Pretty,
}

/// A secret value: compared and used, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The secret's bytes.
    #[must_use]
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    fn generate(len: usize) -> Self {
        let mut bytes = vec![0u8; len];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The database the server keeps its data in.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An embedded SQLite file (`sqlite://path`), created when missing.
    Sqlite(String),
    /// A PostgreSQL server (`postgres://...`).
    Postgres(String),
}

impl DatabaseUrl {
    /// The URL as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Sqlite(url) | Self::Postgres(url) => url,
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    // The URL may carry a password: show the kind only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(url) => write!(f, "Sqlite({url:?})"),
            Self::Postgres(_) => f.write_str("Postgres(<redacted>)"),
        }
    }
}

/// The server's whole configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// `ENVIRONMENT`.
    pub environment: Environment,
    /// `BIND_ADDR`.
    pub bind_addr: SocketAddr,
    /// `DATABASE_URL`.
    pub database_url: DatabaseUrl,
    /// `DB_MAX_CONNECTIONS`.
    pub db_max_connections: u32,
    /// `REDIS_URL`.
    pub redis_url: Option<Secret>,
    /// `REDIS_KEY_PREFIX`: put before every Redis key of this deployment (several deployments, or test runs,
    /// can share one Redis).
    pub redis_key_prefix: String,
    /// `JWT_SECRET`, generated in development when missing.
    pub jwt_secret: Secret,
    /// Whether `jwt_secret` was generated at start (tokens then die with the process).
    pub jwt_secret_generated: bool,
    /// `JWT_SECRET_PREVIOUS`.
    pub jwt_secret_previous: Option<Secret>,
    /// `JWT_ALGORITHM`.
    pub jwt_algorithm: JwtAlgorithm,
    /// `JWT_ISSUER`.
    pub jwt_issuer: String,
    /// `ACCESS_TOKEN_TTL`.
    pub access_token_ttl: Duration,
    /// `SESSION_IDLE_TIMEOUT`.
    pub session_idle_timeout: Duration,
    /// `ONE_SESSION_PER_USER`.
    pub one_session_per_user: bool,
    /// `AUDIT_CHAIN_KEY`, generated in development when missing.
    pub audit_chain_key: Secret,
    /// Whether `audit_chain_key` was generated at start.
    pub audit_chain_key_generated: bool,
    /// `TOTP_ENCRYPTION_KEY`: seals the TOTP secrets at rest; generated in development when missing.
    pub totp_encryption_key: Secret,
    /// Whether `totp_encryption_key` was generated at start.
    pub totp_encryption_key_generated: bool,
    /// `TOTP_ENCRYPTION_KEY_PREVIOUS`: the key before a rotation; secrets it sealed still open, and are sealed
    /// again with the current key on their next use.
    pub totp_encryption_key_previous: Option<Secret>,
    /// `HEALTH_STATUS_TOKEN`.
    pub health_status_token: Option<Secret>,
    /// `INTEGRITY_AUDIT_INTERVAL`.
    pub integrity_audit_interval: Duration,
    /// `RETENTION_YEARS`.
    pub retention_years: u32,
    /// `MAX_BODY_SIZE` in bytes.
    pub max_body_size: usize,
    /// `LOG_LEVEL`, a `tracing` filter directive.
    pub log_level: String,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `RATE_LIMIT_PER_MINUTE`.
    pub rate_limit_per_minute: u32,
    /// `RATE_LIMIT_BURST`, the per-minute quota when unset.
    pub rate_limit_burst: u32,
    /// `RATE_LIMIT_POLICY`.
    pub rate_limit_policy: Option<PathBuf>,
    /// `RATE_LIMIT_DISABLED`.
    pub rate_limit_disabled: bool,
    /// `TRUSTED_PROXIES`, as CIDR strings checked for syntax.
    pub trusted_proxies: Vec<String>,
    /// `QUERY_CACHE_DISABLED`.
    pub query_cache_disabled: bool,
    /// `ENABLE_AUDIT_LOGGING`.
    pub enable_audit_logging: bool,
    /// `CORS_ALLOWED_ORIGINS`.
    pub cors_allowed_origins: Vec<String>,
    /// `REQUEST_TIMEOUT`.
    pub request_timeout: Duration,
    /// `SHUTDOWN_DRAIN`.
    pub shutdown_drain: Duration,
    /// `SENTRY_DSN`.
    pub sentry_dsn: Option<Secret>,
    /// `SENTRY_TRACES_SAMPLE_RATE`, between 0 and 1.
    pub sentry_traces_sample_rate: f32,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otel_exporter_otlp_endpoint: Option<String>,
}

/// One variable at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The environment variable's name.
    pub variable: &'static str,
    /// What is wrong with its value, in words an operator can act on.
    pub problem: String,
}

/// Every variable at fault, in the order of the table in shared/API.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "configuration error: {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads variables, remembering every problem instead of stopping at the first.
struct Reader<'a> {
    vars: &'a HashMap<String, String>,
    errors: Vec<ConfigError>,
}

impl Reader<'_> {
    /// The value of `name`, with surrounding white space removed; `None` when unset or empty.
    fn raw(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn fail(&mut self, variable: &'static str, problem: impl Into<String>) {
        self.errors.push(ConfigError {
            variable,
            problem: problem.into(),
        });
    }

    /// Parses `name` with `parse`, falling back to `default` when unset, and to `default` after recording the
    /// problem when the value is bad (the caller never sees a bad value).
    fn parse<T>(
        &mut self,
        name: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        match self.raw(name).map(parse) {
            None => default,
            Some(Ok(value)) => value,
            Some(Err(problem)) => {
                self.fail(name, problem);
                default
            }
        }
    }

    fn duration(&mut self, name: &'static str, default: Duration) -> Duration {
        self.parse(name, default, parse_duration)
    }

    fn flag(&mut self, name: &'static str, default: bool) -> bool {
        self.parse(name, default, parse_bool)
    }

    fn secret(&self, name: &str) -> Option<Secret> {
        self.raw(name).map(|v| Secret(v.as_bytes().to_vec()))
    }

    /// A key of at least 32 bytes when the variable is set.
    fn optional_key(&mut self, name: &'static str) -> Option<Secret> {
        let key = self.secret(name)?;
        if key.0.len() < 32 {
            self.fail(name, "must be at least 32 bytes");
        }
        Some(key)
    }

    /// A key of at least 32 bytes: required in production, generated for this process elsewhere (the second
    /// value says so, for a warning).
    fn key(&mut self, name: &'static str, environment: Environment) -> (Secret, bool) {
        match self.optional_key(name) {
            Some(key) => (key, false),
            None if environment == Environment::Production => {
                self.fail(name, "is required when ENVIRONMENT=production");
                (Secret(Vec::new()), false)
            }
            None => (Secret::generate(32), true),
        }
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.raw(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    ///
    /// Every variable that is malformed, out of range, or missing where it is required.
    pub fn from_env() -> Result<Self, ConfigErrors> {
        // Non-UTF-8 values are kept as a marker that fails the variable's parse, rather than dropped unseen.
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| {
                let key = k.into_string().ok()?;
                Some((
                    key,
                    v.into_string()
                        .unwrap_or_else(|_| "\u{0}non-UTF-8".to_owned()),
                ))
            })
            .collect();
        Self::from_vars(&vars)
    }

    /// Reads the configuration from a map of variables (tests use this instead of the process environment).
    ///
    /// # Errors
    ///
    /// Every variable that is malformed, out of range, or missing where it is required.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigErrors> {
        let mut r = Reader {
            vars,
            errors: Vec::new(),
        };

        let environment = r.parse("ENVIRONMENT", Environment::Development, |v| match v {
            "development" => Ok(Environment::Development),
            "staging" => Ok(Environment::Staging),
            "production" => Ok(Environment::Production),
            _ => Err("must be development, staging or production".to_owned()),
        });
        let bind_addr = r.parse("BIND_ADDR", SocketAddr::from(([0, 0, 0, 0], 8080)), |v| {
            SocketAddr::from_str(v)
                .map_err(|_| "must be an address and port such as 0.0.0.0:8080".to_owned())
        });
        let database_url = r.parse(
            "DATABASE_URL",
            DatabaseUrl::Sqlite("sqlite://./data/reference.db".to_owned()),
            parse_database_url,
        );
        let db_max_connections = r.parse("DB_MAX_CONNECTIONS", 10, |v| parse_in_range(v, 1, 1000));
        let redis_url = r.raw("REDIS_URL").map(str::to_owned);
        if let Some(url) = &redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            r.fail("REDIS_URL", "must start with redis:// or rediss://");
        }
        let redis_url = redis_url.map(|u| Secret(u.into_bytes()));
        let redis_key_prefix = r.raw("REDIS_KEY_PREFIX").unwrap_or("").to_owned();
        if !redis_key_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        {
            r.fail(
                "REDIS_KEY_PREFIX",
                "may hold letters, digits and - _ . : only",
            );
        }

        let jwt_algorithm = r.parse("JWT_ALGORITHM", JwtAlgorithm::Hs256, |v| match v {
            "HS256" => Ok(JwtAlgorithm::Hs256),
            "HS384" => Ok(JwtAlgorithm::Hs384),
            "HS512" => Ok(JwtAlgorithm::Hs512),
            _ => Err("must be HS256, HS384 or HS512".to_owned()),
        });
        let min_key = jwt_algorithm.min_key_len();
        let (jwt_secret, jwt_secret_generated) = match r.secret("JWT_SECRET") {
            Some(secret) => {
                if secret.0.len() < min_key {
                    r.fail(
                        "JWT_SECRET",
                        format!("must be at least {min_key} bytes for {jwt_algorithm:?}"),
                    );
                }
                (secret, false)
            }
            None if environment == Environment::Production => {
                r.fail("JWT_SECRET", "is required when ENVIRONMENT=production");
                (Secret(Vec::new()), false)
            }
            None => (Secret::generate(min_key.max(32)), true),
        };
        let jwt_secret_previous = r.secret("JWT_SECRET_PREVIOUS");
        if jwt_secret_previous
            .as_ref()
            .is_some_and(|s| s.0.len() < min_key)
        {
            r.fail(
                "JWT_SECRET_PREVIOUS",
                format!("must be at least {min_key} bytes for {jwt_algorithm:?}"),
            );
        }
        let jwt_issuer = r.raw("JWT_ISSUER").unwrap_or("reference-server").to_owned();
        let access_token_ttl = r.duration("ACCESS_TOKEN_TTL", Duration::from_secs(15 * 60));
        let session_idle_timeout = r.duration("SESSION_IDLE_TIMEOUT", Duration::from_secs(30 * 60));
        let one_session_per_user = r.flag("ONE_SESSION_PER_USER", false);
        let (audit_chain_key, audit_chain_key_generated) = r.key("AUDIT_CHAIN_KEY", environment);
        let (totp_encryption_key, totp_encryption_key_generated) =
            r.key("TOTP_ENCRYPTION_KEY", environment);
        let totp_encryption_key_previous = r.optional_key("TOTP_ENCRYPTION_KEY_PREVIOUS");
        let health_status_token = r.secret("HEALTH_STATUS_TOKEN");
        let integrity_audit_interval =
            r.duration("INTEGRITY_AUDIT_INTERVAL", Duration::from_secs(24 * 3600));
        let retention_years = r.parse("RETENTION_YEARS", 7, |v| parse_in_range(v, 1, 100));
        let max_body_size = r.parse("MAX_BODY_SIZE", 1 << 20, parse_size);
        let log_level = r.raw("LOG_LEVEL").unwrap_or("info").to_owned();
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&log_level) {
            r.fail("LOG_LEVEL", format!("is not a tracing filter: {e}"));
        }
        let log_format = r.parse("LOG_FORMAT", LogFormat::Json, |v| match v {
            "json" => Ok(LogFormat::Json),
            "pretty" => Ok(LogFormat::Pretty),
            _ => Err("must be json or pretty".to_owned()),
        });
        let rate_limit_per_minute = r.parse("RATE_LIMIT_PER_MINUTE", 60, |v| {
            parse_in_range(v, 1, 1_000_000)
        });
        let rate_limit_burst = r.parse("RATE_LIMIT_BURST", rate_limit_per_minute, |v| {
            parse_in_range(v, 1, 1_000_000)
        });
        let rate_limit_policy = r.raw("RATE_LIMIT_POLICY").map(PathBuf::from);
        if let Some(path) = &rate_limit_policy
            && !path.is_file()
        {
            r.fail(
                "RATE_LIMIT_POLICY",
                format!("{} is not a readable file", path.display()),
            );
        }
        let rate_limit_disabled = r.flag("RATE_LIMIT_DISABLED", false);
        let trusted_proxies = r.list("TRUSTED_PROXIES");
        for cidr in &trusted_proxies {
            if !is_cidr(cidr) {
                r.fail(
                    "TRUSTED_PROXIES",
                    format!("{cidr:?} is not an IP address or CIDR block"),
                );
            }
        }
        let query_cache_disabled = r.flag("QUERY_CACHE_DISABLED", false);
        let enable_audit_logging = r.flag("ENABLE_AUDIT_LOGGING", true);
        if !enable_audit_logging && environment == Environment::Production {
            r.fail(
                "ENABLE_AUDIT_LOGGING",
                "cannot be turned off when ENVIRONMENT=production",
            );
        }
        let cors_allowed_origins = r.list("CORS_ALLOWED_ORIGINS");
        for origin in &cors_allowed_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://"))
                || origin.ends_with('/')
            {
                r.fail(
                    "CORS_ALLOWED_ORIGINS",
                    format!("{origin:?} is not an origin such as https://app.example"),
                );
            }
        }
        let request_timeout = r.duration("REQUEST_TIMEOUT", Duration::from_secs(30));
        let shutdown_drain = r.duration("SHUTDOWN_DRAIN", Duration::from_secs(5));
        let sentry_dsn = r.secret("SENTRY_DSN");
        let sentry_traces_sample_rate = r.parse("SENTRY_TRACES_SAMPLE_RATE", 0.1, |v| {
            match v.parse::<f32>() {
                Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
                _ => Err("must be a number from 0 to 1".to_owned()),
            }
        });
        let otel_exporter_otlp_endpoint = r.raw("OTEL_EXPORTER_OTLP_ENDPOINT").map(str::to_owned);

        if !r.errors.is_empty() {
            return Err(ConfigErrors(r.errors));
        }
        Ok(Self {
            environment,
            bind_addr,
            database_url,
            db_max_connections,
            redis_url,
            redis_key_prefix,
            jwt_secret,
            jwt_secret_generated,
            jwt_secret_previous,
            jwt_algorithm,
            jwt_issuer,
            access_token_ttl,
            session_idle_timeout,
            one_session_per_user,
            audit_chain_key,
            audit_chain_key_generated,
            totp_encryption_key,
            totp_encryption_key_generated,
            totp_encryption_key_previous,
            health_status_token,
            integrity_audit_interval,
            retention_years,
            max_body_size,
            log_level,
            log_format,
            rate_limit_per_minute,
            rate_limit_burst,
            rate_limit_policy,
            rate_limit_disabled,
            trusted_proxies,
            query_cache_disabled,
            enable_audit_logging,
            cors_allowed_origins,
            request_timeout,
            shutdown_drain,
            sentry_dsn,
            sentry_traces_sample_rate,
            otel_exporter_otlp_endpoint,
        })
    }
}

fn parse_database_url(value: &str) -> Result<DatabaseUrl, String> {
    use sqlx::postgres::PgConnectOptions;
    use sqlx::sqlite::SqliteConnectOptions;
    // The value may hold a password, so problems never quote it.
    if value.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(value)
            .map(|_| DatabaseUrl::Sqlite(value.to_owned()))
            .map_err(|_| "is not a valid sqlite:// URL".to_owned())
    } else if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        PgConnectOptions::from_str(value)
            .map(|_| DatabaseUrl::Postgres(value.to_owned()))
            .map_err(|_| "is not a valid postgres:// URL".to_owned())
    } else {
        Err("must be a sqlite://... or postgres://... URL".to_owned())
    }
}

fn parse_in_range<T>(value: &str, min: T, max: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
{
    match value.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(format!("must be a whole number from {min} to {max}")),
    }
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("must be true or false".to_owned()),
    }
}

/// Parses `500ms`, `30s`, `15m`, `1h`, `7d` (one number, one unit).
///
/// # Errors
///
/// When the value is not a whole number followed by one of the units, or is zero.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let problem = || "must be a duration such as 30s, 15m or 1h".to_owned();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(problem)?;
    let (number, unit) = value.split_at(split);
    let n: u64 = number.parse().map_err(|_| problem())?;
    let per_unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(problem()),
    };
    let ms = n
        .checked_mul(per_unit_ms)
        .ok_or_else(|| "is too long".to_owned())?;
    if ms == 0 {
        return Err("must be longer than zero".to_owned());
    }
    Ok(Duration::from_millis(ms))
}

/// Parses `1048576`, `512KiB`, `1MiB`, `1MB`, `2GiB`.
fn parse_size(value: &str) -> Result<usize, String> {
    let problem = || "must be a size such as 1MiB, 512KiB or 1048576".to_owned();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let n: usize = number.parse().map_err(|_| problem())?;
    let multiplier: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(problem()),
    };
    match n.checked_mul(multiplier) {
        Some(0) => Err("must be larger than zero".to_owned()),
        Some(bytes) => Ok(bytes),
        None => Err("is too large".to_owned()),
    }
}

fn is_cidr(value: &str) -> bool {
    let (addr, prefix) = value
        .split_once('/')
        .map_or((value, None), |(a, p)| (a, Some(p)));
    let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_start_a_development_server_on_sqlite() {
        let config = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(config.environment, Environment::Development);
        assert_eq!(config.bind_addr.port(), 8080);
        assert_eq!(
            config.database_url,
            DatabaseUrl::Sqlite("sqlite://./data/reference.db".into())
        );
        assert!(config.jwt_secret_generated);
        assert!(config.jwt_secret.expose().len() >= 32);
        assert_eq!(config.rate_limit_burst, 60);
        assert_eq!(config.max_body_size, 1 << 20);
        assert_eq!(config.shutdown_drain, Duration::from_secs(5));
    }

    #[test]
    fn production_without_secrets_names_each_missing_variable() {
        let errors = Config::from_vars(&vars(&[("ENVIRONMENT", "production")])).unwrap_err();
        let named: Vec<_> = errors.0.iter().map(|e| e.variable).collect();
        assert_eq!(
            named,
            ["JWT_SECRET", "AUDIT_CHAIN_KEY", "TOTP_ENCRYPTION_KEY"]
        );
    }

    #[test]
    fn a_short_previous_totp_key_is_refused() {
        let errors =
            Config::from_vars(&vars(&[("TOTP_ENCRYPTION_KEY_PREVIOUS", "short")])).unwrap_err();
        let named: Vec<_> = errors.0.iter().map(|e| e.variable).collect();
        assert_eq!(named, ["TOTP_ENCRYPTION_KEY_PREVIOUS"]);
        let ok = Config::from_vars(&vars(&[(
            "TOTP_ENCRYPTION_KEY_PREVIOUS",
            "an old key of thirty-two bytes or more",
        )]))
        .unwrap();
        assert!(ok.totp_encryption_key_previous.is_some());
    }

    #[test]
    fn every_bad_variable_is_reported_not_just_the_first() {
        let errors = Config::from_vars(&vars(&[
            ("DATABASE_URL", "nonsense"),
            ("BIND_ADDR", "localhost"),
            ("REQUEST_TIMEOUT", "soon"),
            ("LOG_FORMAT", "xml"),
        ]))
        .unwrap_err();
        let named: Vec<_> = errors.0.iter().map(|e| e.variable).collect();
        assert_eq!(
            named,
            ["BIND_ADDR", "DATABASE_URL", "LOG_FORMAT", "REQUEST_TIMEOUT"]
        );
        assert_eq!(errors.to_string().lines().count(), 4);
    }

    #[test]
    fn short_jwt_secret_is_refused_for_the_algorithm() {
        let secret = "x".repeat(40);
        assert!(Config::from_vars(&vars(&[("JWT_SECRET", &secret)])).is_ok());
        let errors = Config::from_vars(&vars(&[
            ("JWT_SECRET", &secret),
            ("JWT_ALGORITHM", "HS384"),
        ]))
        .unwrap_err();
        assert_eq!(errors.0[0].variable, "JWT_SECRET");
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        let url = "postgres://app:hunter2-password@db/app";
        let config = Config::from_vars(&vars(&[
            ("DATABASE_URL", url),
            ("JWT_SECRET", &"s3cr3t".repeat(8)),
        ]))
        .unwrap();
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cr3t"),
            "{shown}"
        );

        let errors =
            Config::from_vars(&vars(&[("DATABASE_URL", "mysql://u:hunter2@db/app")])).unwrap_err();
        assert!(!errors.to_string().contains("hunter2"));
    }

    #[test]
    fn durations_and_sizes_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert!(parse_size("1 parsec").is_err());
    }

    #[test]
    fn trusted_proxies_must_be_cidrs() {
        assert!(
            Config::from_vars(&vars(&[("TRUSTED_PROXIES", "10.0.0.0/8, ::1, fd00::/8")])).is_ok()
        );
        let errors = Config::from_vars(&vars(&[("TRUSTED_PROXIES", "10.0.0.0/33")])).unwrap_err();
        assert_eq!(errors.0[0].variable, "TRUSTED_PROXIES");
    }
}
