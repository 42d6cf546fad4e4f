//! The load test of the reference server (shared/ARCHITECTURE.md, "Load test").
//!
//! Seeds organizations through the HTTP API (users, accounts, invoices, some of them issued), signs every
//! virtual user in, then runs the request mix with no think time for the measured window and reports
//! throughput and p50/p95/p99 per request kind, on stdout and as JSON. Any status other than the one a request
//! expects (a 429, a 5xx, a 4xx) counts as an error, and any error makes the exit status 1.
//!
//! That is the closed loop. With `--rate` the window is an open loop instead: requests start on a fixed
//! schedule (the rate spread evenly over the virtual users, each from a random phase) whether or not earlier
//! ones were answered, and each latency runs from its scheduled start, so a server or client that falls behind
//! is charged for it (no coordinated omission). The report says how far the client kept to the schedule.
//!
//! `benches/loadtest/run.sh` builds the release server, starts it on PostgreSQL and Redis with
//! `RATE_LIMIT_POLICY=benches/loadtest/policy.toml` and runs this twice, with the query cache and without.
//!
//! ```sh
//! cargo run --release -p benches --bin loadtest -- --base-url http://127.0.0.1:18080 --out cache.json
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Every seeded user's password.
const PASSWORD: &str = "load test password 2026";
/// Error bodies kept per request kind, to show what went wrong.
const SAMPLES_PER_KIND: usize = 3;

#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    about = "Load test of the reference server: seed over HTTP, sign every virtual user in, then run the \
             mix (dashboard 40 %, invoice list 25 %, invoice create 15 %, payment 10 %, invoice read 10 %) \
             with no think time (closed loop) or at a fixed offered rate (open loop, --rate) and report \
             throughput and p50/p95/p99 per request kind"
)]
struct Args {
    /// The server's base URL (no trailing slash).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base_url: String,
    /// The measured window: seconds, or a number with `s` or `m`.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Concurrent virtual users in the window, spread over the organizations' users round robin.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    users: u32,
    /// Organizations to seed.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    orgs: u32,
    /// Users per organization: the owner and accountants.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    users_per_org: u32,
    /// Accounts per organization (the default chart topped up to this many).
    #[arg(long, default_value_t = 100)]
    accounts: u32,
    /// Invoices seeded per organization.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    invoices: u32,
    /// Percent of the seeded invoices that are issued, so payments have something to pay; the rest stay drafts.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100))]
    issued_percent: u32,
    /// Seeding requests in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    seed_concurrency: u32,
    /// Threads of this client's runtime (the server and the databases share the machine with it).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    client_threads: u32,
    /// How long to wait for `/health/ready` before giving up.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    ready_timeout: Duration,
    /// A name for this run in the output (`cache`, `no-cache`).
    #[arg(long, default_value = "run")]
    label: String,
    /// Where to write the results as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Open loop: start this many requests per second in all, on a fixed schedule, whether or not earlier
    /// ones have been answered (each virtual user at `rate / users` per second from a random phase), and
    /// measure each latency from its scheduled start. Without it, closed loop: each user sends its next
    /// request when the last one is answered.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
}

/// A positive, finite number of requests per second.
fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of requests per second"))?;
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err(format!("{text:?}: the rate must be a positive number"))
    }
}

/// The time between two requests of one virtual user when `users` share `rate` requests per second evenly.
fn user_interval(rate: f64, users: u32) -> Duration {
    Duration::from_secs_f64(f64::from(users.max(1)) / rate).max(Duration::from_nanos(1))
}

/// When tick `k` of a virtual user is due, from the start of the window: its phase plus `k` intervals (exact
/// integer nanoseconds, so the schedule does not drift however long the window).
fn tick_offset(phase: Duration, interval: Duration, k: u64) -> Duration {
    let nanos = phase.as_nanos() + interval.as_nanos() * u128::from(k);
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    let sub = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Duration::new(secs, sub)
}

/// How many ticks of a schedule fall in a window of `window`: those due strictly before its end.
fn ticks_in(phase: Duration, interval: Duration, window: Duration) -> u64 {
    if phase >= window {
        return 0;
    }
    let spare = (window - phase).as_nanos();
    let step = interval.as_nanos().max(1);
    u64::try_from(spare.div_ceil(step)).unwrap_or(u64::MAX)
}

/// `60`, `60s` or `2m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 60s or 2m"))?;
    match unit {
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        _ => Err(format!("{text:?}: the unit must be s or m")),
    }
}

/// Why the load test could not run (not an error counted in the window).
#[derive(Debug)]
enum Failure {
    /// No answer: refused, reset, timed out.
    Transport(String),
    /// An answer with a status the step did not expect.
    Status {
        what: String,
        status: StatusCode,
        body: String,
    },
    /// An answer without a field the step needs.
    Body(String),
    /// The results could not be written.
    Output(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(e) => write!(f, "request failed: {e}"),
            Self::Status { what, status, body } => write!(f, "{what}: {status}: {body}"),
            Self::Body(e) => write!(f, "unexpected answer: {e}"),
            Self::Output(e) => write!(f, "cannot write the results: {e}"),
        }
    }
}

impl std::error::Error for Failure {}

/// An answer: its status and whole body.
struct Reply {
    status: StatusCode,
    body: Bytes,
}

impl Reply {
    /// The body as JSON when the status is `expected`, else a [`Failure::Status`] naming `what`.
    fn json(self, what: &str, expected: StatusCode) -> Result<Value, Failure> {
        if self.status != expected {
            return Err(Failure::Status {
                what: what.to_owned(),
                status: self.status,
                body: snippet(&self.body),
            });
        }
        serde_json::from_slice(&self.body).map_err(|e| Failure::Body(format!("{what}: {e}")))
    }
}

/// The start of a body, for messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars().take(400).collect()
}

/// The HTTP client: one pool of keep-alive HTTP/1.1 connections shared by every task.
#[derive(Clone)]
struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base: Arc<str>,
}

impl Api {
    fn new(base: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(300))
            .build(connector);
        Self {
            client,
            base: Arc::from(base.trim_end_matches('/')),
        }
    }

    /// Sends one request and reads the whole answer.
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(value) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(value.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request
            .body(body)
            .map_err(|e| Failure::Transport(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| Failure::Transport(format!("{path}: {e:?}")))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Failure::Transport(format!("{path}: {e}")))?
            .to_bytes();
        Ok(Reply { status, body })
    }
}

/// A small deterministic generator (SplitMix64): enough for picking request kinds and amounts.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is negligible for the small ranges used here.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// An index into a slice of `len` items.
    fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(u64::try_from(len).unwrap_or(u64::MAX))).unwrap_or(0)
    }
}

/// `YYYY-MM-DD`.
fn iso(date: time::Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// An amount in minor units (cents) as the API writes money: `"12.34"`.
fn money(minor: u64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// Minor units from the API's `{"amount": "12.34", "currency": "AUD"}`.
fn parse_minor(value: Option<&Value>) -> Option<u64> {
    let amount = value?.get("amount")?.as_str()?;
    let (units, cents) = amount.split_once('.').unwrap_or((amount, "0"));
    let cents = match cents.len() {
        1 => cents.parse::<u64>().ok()?.checked_mul(10)?,
        2 => cents.parse::<u64>().ok()?,
        _ => return None,
    };
    units
        .parse::<u64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(cents)
}

fn text_field(value: &Value, field: &str, what: &str) -> Result<String, Failure> {
    value
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Failure::Body(format!("{what}: no {field:?}")))
}

/// One seeded organization as the window uses it.
struct Org {
    /// Sign-in emails; the first is the owner's.
    emails: Vec<String>,
    /// Every seeded invoice, for reads.
    invoices: Vec<String>,
    /// The issued invoices and what each still owes, in minor units, for payments.
    payable: Vec<(String, u64)>,
}

/// The seeding plan shared by the organizations' tasks.
struct Plan {
    api: Api,
    run: String,
    users_per_org: u32,
    accounts: u32,
    invoices: u32,
    issued_percent: u32,
    gate: Arc<Semaphore>,
    today: time::Date,
}

impl Plan {
    /// Sends one seeding request once a slot is free.
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        let _slot = self
            .gate
            .acquire()
            .await
            .map_err(|e| Failure::Transport(e.to_string()))?;
        self.api.send(method, path, token, body).await
    }

    fn email(&self, org: u32, user: u32) -> String {
        format!("o{org}u{user}-{}@loadtest.example", self.run)
    }
}

/// Registers organization `org` with its owner, adds its accountants and accounts, creates its invoices and
/// issues some of them.
async fn seed_org(plan: Arc<Plan>, org: u32) -> Result<Org, Failure> {
    let owner_email = plan.email(org, 0);
    let tokens = plan
        .send(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(&json!({
                "organization_name": format!("Load test org {org} {}", plan.run),
                "name": format!("Owner {org}"),
                "email": owner_email,
                "password": PASSWORD,
            })),
        )
        .await?
        .json("register", StatusCode::CREATED)?;
    let token: Arc<str> = Arc::from(text_field(&tokens, "access_token", "register")?);

    let mut emails = vec![owner_email];
    let mut tasks = JoinSet::new();
    for user in 1..plan.users_per_org {
        let (plan, token) = (Arc::clone(&plan), Arc::clone(&token));
        let email = plan.email(org, user);
        emails.push(email.clone());
        tasks.spawn(async move {
            let body = json!({
                "email": email,
                "name": format!("Accountant {org}.{user}"),
                "role": "accountant",
                "password": PASSWORD,
            });
            plan.send(Method::POST, "/api/v1/users", Some(&token), Some(&body))
                .await?
                .json("create user", StatusCode::CREATED)
                .map(drop)
        });
    }
    join_all(&mut tasks).await?;

    let chart = plan
        .send(Method::GET, "/api/v1/accounts", Some(&token), None)
        .await?
        .json("list accounts", StatusCode::OK)?;
    let existing = chart["items"].as_array().map_or(0, Vec::len);
    let kinds = ["asset", "liability", "equity", "income", "expense"];
    for n in u32::try_from(existing).unwrap_or(u32::MAX)..plan.accounts {
        let (plan, token) = (Arc::clone(&plan), Arc::clone(&token));
        let kind = kinds[usize::try_from(n).unwrap_or(0) % kinds.len()];
        tasks.spawn(async move {
            let body = json!({
                "code": format!("{}", 6000 + n),
                "name": format!("Load test account {n}"),
                "kind": kind,
            });
            plan.send(Method::POST, "/api/v1/accounts", Some(&token), Some(&body))
                .await?
                .json("create account", StatusCode::CREATED)
                .map(drop)
        });
    }
    join_all(&mut tasks).await?;

    let mut invoice_tasks = JoinSet::new();
    for n in 0..plan.invoices {
        let (plan, token) = (Arc::clone(&plan), Arc::clone(&token));
        invoice_tasks.spawn(async move { seed_invoice(&plan, &token, org, n).await });
    }
    let mut invoices = Vec::new();
    let mut payable = Vec::new();
    while let Some(joined) = invoice_tasks.join_next().await {
        let (id, owed) = joined.map_err(|e| Failure::Transport(e.to_string()))??;
        if let Some(owed) = owed.filter(|o| *o > 0) {
            payable.push((id.clone(), owed));
        }
        invoices.push(id);
    }
    Ok(Org {
        emails,
        invoices,
        payable,
    })
}

/// Creates invoice `n` of `org` (four in five sales, the rest purchases; dated over the last year so the
/// dashboard's ageing and months have data) and issues it when its turn says so. Returns its id and, when
/// issued, what it owes.
async fn seed_invoice(
    plan: &Plan,
    token: &str,
    org: u32,
    n: u32,
) -> Result<(String, Option<u64>), Failure> {
    let mut rng = Rng(u64::from(org) << 32 | u64::from(n));
    let age_days = i64::from(n % 365);
    let issue_date = plan
        .today
        .checked_sub(time::Duration::days(age_days))
        .unwrap_or(plan.today);
    let due_date = issue_date
        .checked_add(time::Duration::days(30))
        .unwrap_or(issue_date);
    let kind = if n % 5 == 4 { "purchase" } else { "sales" };
    let lines: Vec<Value> = (0..=rng.below(2))
        .map(|line| {
            json!({
                "description": format!("Item {line}"),
                "quantity": format!("{}", 1 + rng.below(5)),
                "net_price": money(1000 + rng.below(99_000)),
                "tax_category": "S",
                "tax_rate": "10",
            })
        })
        .collect();
    let body = json!({
        "kind": kind,
        "number": format!("S-{n:06}"),
        "counterparty": format!("Counterparty {}", rng.below(50)),
        "issue_date": iso(issue_date),
        "due_date": iso(due_date),
        "currency": "AUD",
        "lines": lines,
    });
    let created = plan
        .send(Method::POST, "/api/v1/invoices", Some(token), Some(&body))
        .await?
        .json("create invoice", StatusCode::CREATED)?;
    let id = text_field(&created, "id", "create invoice")?;
    if u64::from(n) * 7919 % 100 >= u64::from(plan.issued_percent) {
        return Ok((id, None));
    }
    let issued = plan
        .send(
            Method::POST,
            &format!("/api/v1/invoices/{id}/issue"),
            Some(token),
            None,
        )
        .await?
        .json("issue invoice", StatusCode::OK)?;
    let owed = parse_minor(issued.get("outstanding"))
        .ok_or_else(|| Failure::Body("issue invoice: no outstanding amount".into()))?;
    Ok((id, Some(owed)))
}

async fn join_all(tasks: &mut JoinSet<Result<(), Failure>>) -> Result<(), Failure> {
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| Failure::Transport(e.to_string()))??;
    }
    Ok(())
}

/// The request kinds of the mix, with their weights in percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dashboard,
    InvoiceList,
    InvoiceCreate,
    Payment,
    InvoiceRead,
}

impl Kind {
    const ALL: [Self; 5] = [
        Self::Dashboard,
        Self::InvoiceList,
        Self::InvoiceCreate,
        Self::Payment,
        Self::InvoiceRead,
    ];

    fn weight(self) -> u64 {
        match self {
            Self::Dashboard => 40,
            Self::InvoiceList => 25,
            Self::InvoiceCreate => 15,
            Self::Payment | Self::InvoiceRead => 10,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Dashboard => "dashboard",
            Self::InvoiceList => "invoice_list",
            Self::InvoiceCreate => "invoice_create",
            Self::Payment => "payment",
            Self::InvoiceRead => "invoice_read",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Dashboard => 0,
            Self::InvoiceList => 1,
            Self::InvoiceCreate => 2,
            Self::Payment => 3,
            Self::InvoiceRead => 4,
        }
    }

    /// A kind drawn by the weights.
    fn pick(rng: &mut Rng) -> Self {
        let mut roll = rng.below(100);
        for kind in Self::ALL {
            if roll < kind.weight() {
                return kind;
            }
            roll -= kind.weight();
        }
        Self::InvoiceRead
    }
}

/// What one virtual user (or all of them, merged) saw of one request kind.
#[derive(Default)]
struct Tally {
    /// Latencies of the answers with the expected status, in microseconds.
    micros: Vec<u32>,
    /// Answers with another status (0: no answer), by status.
    errors: BTreeMap<u16, u64>,
    /// The first few error answers.
    samples: Vec<String>,
    /// Payments not sent because this user's invoices were all paid.
    skipped: u64,
}

impl Tally {
    fn merge(&mut self, other: Self) {
        self.micros.extend(other.micros);
        for (status, n) in other.errors {
            *self.errors.entry(status).or_default() += n;
        }
        for sample in other.samples {
            if self.samples.len() < SAMPLES_PER_KIND {
                self.samples.push(sample);
            }
        }
        self.skipped += other.skipped;
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Counts one answer (or the failure to get one) to a request of `kind` to `path` that took `micros`.
    fn record(
        &mut self,
        kind: Kind,
        path: &str,
        expected: StatusCode,
        outcome: Result<Reply, Failure>,
        micros: u32,
    ) {
        match outcome {
            Ok(reply) if reply.status == expected => self.micros.push(micros),
            Ok(reply) => {
                *self.errors.entry(reply.status.as_u16()).or_default() += 1;
                if self.samples.len() < SAMPLES_PER_KIND {
                    self.samples.push(format!(
                        "{} {path}: {}: {}",
                        kind.name(),
                        reply.status,
                        snippet(&reply.body)
                    ));
                }
            }
            Err(e) => {
                *self.errors.entry(0).or_default() += 1;
                if self.samples.len() < SAMPLES_PER_KIND {
                    self.samples.push(format!("{} {path}: {e}", kind.name()));
                }
            }
        }
    }
}

/// A start later than this after its scheduled time counts as late (the timer's resolution is 1 ms).
const LATE_AFTER: Duration = Duration::from_millis(2);

/// How well the client kept to an open-loop schedule.
#[derive(Debug, Default, Clone, Copy)]
struct Lag {
    /// Ticks due in the window.
    ticks: u64,
    /// Requests sent more than [`LATE_AFTER`] after their scheduled start.
    late: u64,
    /// The longest delay between a scheduled start and the actual send, in microseconds.
    max_micros: u32,
    /// Request tasks that ended without handing back their answer (an error of the run).
    lost: u64,
}

impl Lag {
    fn merge(&mut self, other: Self) {
        self.ticks += other.ticks;
        self.late += other.late;
        self.max_micros = self.max_micros.max(other.max_micros);
        self.lost += other.lost;
    }

    fn note(&mut self, lag: Duration) {
        if lag > LATE_AFTER {
            self.late += 1;
        }
        self.max_micros = self
            .max_micros
            .max(u32::try_from(lag.as_micros()).unwrap_or(u32::MAX));
    }
}

/// Requests in flight across every virtual user (open loop), and the most there were at once.
#[derive(Default)]
struct InFlight {
    now: AtomicU64,
    peak: AtomicU64,
}

impl InFlight {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One request a virtual user is about to send.
struct Planned {
    kind: Kind,
    method: Method,
    path: String,
    body: Option<Value>,
    expected: StatusCode,
    /// The invoice a payment pays, kept from other payments of this user until it is answered.
    paying: Option<String>,
}

/// An open-loop request's answer, back at its virtual user.
struct Sent {
    kind: Kind,
    path: String,
    expected: StatusCode,
    paying: Option<String>,
    outcome: Result<Reply, Failure>,
    /// From the scheduled start to the whole answer.
    micros: u32,
    /// From the scheduled start to the send.
    lag: Duration,
}

/// What one virtual user brings back from the window.
struct UserOutcome {
    tallies: [Tally; 5],
    stopped: Instant,
    lag: Lag,
}

/// One signed-in virtual user with its share of its organization's payable invoices.
struct VirtualUser {
    number: u32,
    api: Api,
    token: String,
    org: Arc<Org>,
    /// Only this user pays these (so two users never pay one invoice at once), with what each still owes.
    payable: Vec<(String, u64)>,
    /// Invoices this user's payments still in flight pay (open loop); none of them is paid again meanwhile.
    paying: HashSet<String>,
    rng: Rng,
    run: String,
    today: String,
    created: u64,
}

impl VirtualUser {
    /// Closed loop: sends requests back to back until `deadline`; returns the tallies by kind and when it
    /// stopped.
    async fn run(mut self, deadline: Instant) -> UserOutcome {
        let mut tallies: [Tally; 5] = Default::default();
        while Instant::now() < deadline {
            let kind = Kind::pick(&mut self.rng);
            let tally = &mut tallies[kind.index()];
            let Some(planned) = self.next_request(kind) else {
                tally.skipped += 1;
                continue;
            };
            let started = Instant::now();
            let outcome = self
                .api
                .send(
                    planned.method,
                    &planned.path,
                    Some(&self.token),
                    planned.body.as_ref(),
                )
                .await;
            let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
            tally.record(kind, &planned.path, planned.expected, outcome, micros);
        }
        UserOutcome {
            tallies,
            stopped: Instant::now(),
            lag: Lag::default(),
        }
    }

    /// Open loop: starts a request at every tick of this user's schedule (`phase` after `start`, then every
    /// `interval`) due before `start + window`, whether or not the earlier ones have been answered, then waits
    /// for every answer. Latency runs from the scheduled start, so a late send counts against it.
    async fn run_open(
        mut self,
        start: Instant,
        window: Duration,
        phase: Duration,
        interval: Duration,
        in_flight: Arc<InFlight>,
    ) -> UserOutcome {
        let mut tallies: [Tally; 5] = Default::default();
        let mut lag = Lag {
            ticks: ticks_in(phase, interval, window),
            ..Lag::default()
        };
        let token: Arc<str> = Arc::from(self.token.as_str());
        let mut sending: JoinSet<Sent> = JoinSet::new();
        let mut tick = 0;
        while tick < lag.ticks {
            let due = start + tick_offset(phase, interval, tick);
            let due_tokio = tokio::time::Instant::from_std(due);
            // Take in answers until the tick is due (`join_next` loses nothing when the timeout wins).
            if !sending.is_empty()
                && let Ok(Some(joined)) =
                    tokio::time::timeout_at(due_tokio, sending.join_next()).await
            {
                self.finish(joined, &mut tallies, &mut lag);
                continue;
            }
            tokio::time::sleep_until(due_tokio).await;
            tick += 1;
            let kind = Kind::pick(&mut self.rng);
            let Some(planned) = self.next_request(kind) else {
                tallies[kind.index()].skipped += 1;
                continue;
            };
            if let Some(id) = &planned.paying {
                self.paying.insert(id.clone());
            }
            let (api, token, in_flight) =
                (self.api.clone(), Arc::clone(&token), Arc::clone(&in_flight));
            sending.spawn(async move {
                let lag = due.elapsed();
                in_flight.enter();
                let outcome = api
                    .send(
                        planned.method,
                        &planned.path,
                        Some(&token),
                        planned.body.as_ref(),
                    )
                    .await;
                in_flight.leave();
                Sent {
                    kind: planned.kind,
                    path: planned.path,
                    expected: planned.expected,
                    paying: planned.paying,
                    outcome,
                    micros: u32::try_from(due.elapsed().as_micros()).unwrap_or(u32::MAX),
                    lag,
                }
            });
        }
        while let Some(joined) = sending.join_next().await {
            self.finish(joined, &mut tallies, &mut lag);
        }
        UserOutcome {
            tallies,
            stopped: Instant::now(),
            lag,
        }
    }

    /// Counts an open-loop answer and frees the invoice its payment paid.
    fn finish(
        &mut self,
        joined: Result<Sent, tokio::task::JoinError>,
        tallies: &mut [Tally; 5],
        lag: &mut Lag,
    ) {
        match joined {
            Ok(sent) => {
                if let Some(id) = &sent.paying {
                    self.paying.remove(id);
                }
                lag.note(sent.lag);
                tallies[sent.kind.index()].record(
                    sent.kind,
                    &sent.path,
                    sent.expected,
                    sent.outcome,
                    sent.micros,
                );
            }
            // A request task that panicked or was cancelled: an error without an answer. Its invoice stays
            // out of this user's payments (what it owes is no longer known).
            Err(e) => {
                lag.lost += 1;
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "error: a request task failed: {e}"
                );
            }
        }
    }

    /// The request for `kind`, or `None` for a payment when nothing of this user's is left to pay (or, in the
    /// open loop, all that is left is being paid by requests still in flight).
    fn next_request(&mut self, kind: Kind) -> Option<Planned> {
        let mut paying = None;
        let (method, path, body, expected) = match kind {
            Kind::Dashboard => (
                Method::GET,
                "/api/v1/dashboard".to_owned(),
                None,
                StatusCode::OK,
            ),
            Kind::InvoiceList => (
                Method::GET,
                "/api/v1/invoices?limit=50".to_owned(),
                None,
                StatusCode::OK,
            ),
            Kind::InvoiceRead => {
                let id = &self.org.invoices[self.rng.index(self.org.invoices.len())];
                (
                    Method::GET,
                    format!("/api/v1/invoices/{id}"),
                    None,
                    StatusCode::OK,
                )
            }
            Kind::InvoiceCreate => {
                self.created += 1;
                let body = json!({
                    "kind": "sales",
                    "number": format!("L-{}-{}-{}", self.run, self.number, self.created),
                    "counterparty": format!("Walk-in {}", self.rng.below(50)),
                    "issue_date": self.today,
                    "due_date": self.today,
                    "currency": "AUD",
                    "lines": [{
                        "description": "Room service",
                        "quantity": format!("{}", 1 + self.rng.below(3)),
                        "net_price": money(500 + self.rng.below(20_000)),
                        "tax_category": "S",
                        "tax_rate": "10",
                    }],
                });
                (
                    Method::POST,
                    "/api/v1/invoices".to_owned(),
                    Some(body),
                    StatusCode::CREATED,
                )
            }
            Kind::Payment => {
                // A part of an invoice still owing: never more than it owes (what it owes is taken down
                // when the payment is planned, before it is sent), so no payment is refused; and never an
                // invoice a payment still in flight pays.
                self.payable.retain(|(_, owed)| *owed > 0);
                let free: Vec<usize> = (0..self.payable.len())
                    .filter(|&i| !self.paying.contains(&self.payable[i].0))
                    .collect();
                if free.is_empty() {
                    return None;
                }
                let at = free[self.rng.index(free.len())];
                let want = 100 + self.rng.below(1_900);
                let (id, owed) = &mut self.payable[at];
                let amount = want.min(*owed);
                *owed -= amount;
                paying = Some(id.clone());
                let body = json!({
                    "amount": {"amount": money(amount), "currency": "AUD"},
                    "paid_on": self.today,
                });
                (
                    Method::POST,
                    format!("/api/v1/invoices/{id}/payments"),
                    Some(body),
                    StatusCode::OK,
                )
            }
        };
        Some(Planned {
            kind,
            method,
            path,
            body,
            expected,
            paying,
        })
    }
}

/// The nearest-rank percentile `p` (0 to 100) of sorted values.
fn percentile(sorted: &[u32], p: usize) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Microseconds as milliseconds with two decimals.
fn ms(micros: u32) -> String {
    format!("{}.{:02}", micros / 1000, (micros % 1000) / 10)
}

fn ms_value(micros: u32) -> f64 {
    f64::from(micros) / 1000.0
}

async fn wait_ready(api: &Api, timeout: Duration) -> Result<(), Failure> {
    let until = Instant::now() + timeout;
    loop {
        match api.send(Method::GET, "/health/ready", None, None).await {
            Ok(reply) if reply.status == StatusCode::OK => return Ok(()),
            Ok(reply) if Instant::now() >= until => {
                return Err(Failure::Status {
                    what: "/health/ready".into(),
                    status: reply.status,
                    body: snippet(&reply.body),
                });
            }
            Err(e) if Instant::now() >= until => return Err(e),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

fn say(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

async fn run(args: Args) -> Result<bool, Failure> {
    let api = Api::new(&args.base_url);
    wait_ready(&api, args.ready_timeout).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // Unique names per run, so a run against a database used before does not collide with its data.
    let run_id = format!("{:x}", now.as_secs());
    let today = time::OffsetDateTime::now_utc().date();

    let seeding = Instant::now();
    let plan = Arc::new(Plan {
        api: api.clone(),
        run: run_id.clone(),
        users_per_org: args.users_per_org,
        accounts: args.accounts,
        invoices: args.invoices,
        issued_percent: args.issued_percent,
        gate: Arc::new(Semaphore::new(
            usize::try_from(args.seed_concurrency).unwrap_or(1),
        )),
        today,
    });
    let mut org_tasks = JoinSet::new();
    for org in 0..args.orgs {
        let plan = Arc::clone(&plan);
        org_tasks.spawn(async move { (org, seed_org(plan, org).await) });
    }
    let mut orgs = Vec::new();
    while let Some(joined) = org_tasks.join_next().await {
        let (index, org) = joined.map_err(|e| Failure::Transport(e.to_string()))?;
        orgs.push((index, Arc::new(org?)));
    }
    orgs.sort_by_key(|(index, _)| *index);
    let orgs: Vec<Arc<Org>> = orgs.into_iter().map(|(_, org)| org).collect();
    let issued: usize = orgs.iter().map(|o| o.payable.len()).sum();
    say(&format!(
        "[{}] seeded {} organizations x {} users, {} accounts, {} invoices ({issued} issued in all) in {:.1} s",
        args.label,
        args.orgs,
        args.users_per_org,
        args.accounts,
        args.invoices,
        seeding.elapsed().as_secs_f64()
    ));

    // Sign every virtual user in before the window. User `v` works in organization `v % orgs` as its
    // `(v / orgs) % users_per_org`-th user and pays only its own share of that organization's issued invoices.
    let signing = Instant::now();
    let orgs_n = usize::try_from(args.orgs).unwrap_or(1);
    let users_n = usize::try_from(args.users).unwrap_or(1);
    let mut logins = JoinSet::new();
    for v in 0..users_n {
        let org = Arc::clone(&orgs[v % orgs_n]);
        let email = org.emails[(v / orgs_n) % org.emails.len()].clone();
        let plan = Arc::clone(&plan);
        logins.spawn(async move {
            let body = json!({"email": email, "password": PASSWORD});
            let tokens = plan
                .send(Method::POST, "/api/v1/auth/login", None, Some(&body))
                .await?
                .json("login", StatusCode::OK)?;
            Ok::<_, Failure>((v, text_field(&tokens, "access_token", "login")?))
        });
    }
    let mut tokens = vec![String::new(); users_n];
    while let Some(joined) = logins.join_next().await {
        let (v, token) = joined.map_err(|e| Failure::Transport(e.to_string()))??;
        tokens[v] = token;
    }
    say(&format!(
        "[{}] signed in {} virtual users in {:.1} s",
        args.label,
        users_n,
        signing.elapsed().as_secs_f64()
    ));

    let today_text = iso(today);
    let mut users = Vec::with_capacity(users_n);
    for (v, token) in tokens.into_iter().enumerate() {
        let org = Arc::clone(&orgs[v % orgs_n]);
        let rank = v / orgs_n;
        let peers = users_n / orgs_n + usize::from(v % orgs_n < users_n % orgs_n);
        let payable = org
            .payable
            .iter()
            .enumerate()
            .filter(|(i, _)| i % peers.max(1) == rank)
            .map(|(_, p)| p.clone())
            .collect();
        users.push(VirtualUser {
            number: u32::try_from(v).unwrap_or(u32::MAX),
            api: api.clone(),
            token,
            org,
            payable,
            paying: HashSet::new(),
            rng: Rng(0x5EED_0000 ^ u64::try_from(v).unwrap_or(0)),
            run: run_id.clone(),
            today: today_text.clone(),
            created: 0,
        });
    }

    // The wall-clock start, to find the window in the server's log.
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    match args.rate {
        None => say(&format!(
            "[{}] running the mix closed loop with {} virtual users for {} s from {started_at}",
            args.label,
            users_n,
            args.duration.as_secs()
        )),
        Some(rate) => say(&format!(
            "[{}] running the mix open loop at {rate} req/s offered ({} virtual users at {:.3} req/s each) for {} s \
             from {started_at}",
            args.label,
            users_n,
            rate / f64::from(args.users),
            args.duration.as_secs()
        )),
    }
    let in_flight = Arc::new(InFlight::default());
    let start = Instant::now();
    let deadline = start + args.duration;
    let mut window = JoinSet::new();
    for mut user in users {
        match args.rate {
            None => window.spawn(user.run(deadline)),
            Some(rate) => {
                let interval = user_interval(rate, args.users);
                let span = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
                let phase = Duration::from_nanos(user.rng.below(span));
                window.spawn(user.run_open(
                    start,
                    args.duration,
                    phase,
                    interval,
                    Arc::clone(&in_flight),
                ))
            }
        };
    }
    let mut tallies: [Tally; 5] = Default::default();
    let mut lag = Lag::default();
    let mut end = start;
    while let Some(joined) = window.join_next().await {
        let theirs = joined.map_err(|e| Failure::Transport(e.to_string()))?;
        for (mine, theirs) in tallies.iter_mut().zip(theirs.tallies) {
            mine.merge(theirs);
        }
        lag.merge(theirs.lag);
        end = end.max(theirs.stopped);
    }
    let elapsed = end.duration_since(start).as_secs_f64().max(f64::EPSILON);
    let open = args.rate.map(|rate| OpenLoop {
        rate,
        lag,
        peak_in_flight: in_flight.peak.load(Ordering::Relaxed),
    });

    let mut report = report(&args, &run_id, &mut tallies, elapsed, issued, open.as_ref());
    report["window_started_at"] = json!(started_at);
    if let Some(path) = &args.out {
        let text =
            serde_json::to_string_pretty(&report).map_err(|e| Failure::Output(e.to_string()))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| Failure::Output(format!("{}: {e}", path.display())))?;
        say(&format!("[{}] wrote {}", args.label, path.display()));
    }
    Ok(tallies.iter().all(|t| t.error_count() == 0) && lag.lost == 0)
}

/// What the report says of an open-loop window.
struct OpenLoop {
    /// The offered rate, requests per second.
    rate: f64,
    lag: Lag,
    /// The most requests in flight at once.
    peak_in_flight: u64,
}

/// Prints the table and the targets, and returns the JSON of the results.
fn report(
    args: &Args,
    run_id: &str,
    tallies: &mut [Tally; 5],
    elapsed: f64,
    issued: usize,
    open: Option<&OpenLoop>,
) -> Value {
    let mut rows = Vec::new();
    let mut kinds = Vec::new();
    let mut all = Vec::new();
    let (mut total_errors, mut total_skipped) = (0, 0);
    for kind in Kind::ALL {
        let tally = &mut tallies[kind.index()];
        tally.micros.sort_unstable();
        all.extend_from_slice(&tally.micros);
        let count = tally.micros.len();
        let errors = tally.error_count();
        total_errors += errors;
        total_skipped += tally.skipped;
        let [p50, p95, p99] = [50, 95, 99].map(|p| percentile(&tally.micros, p));
        let max = tally.micros.last().copied().unwrap_or(0);
        let rps = count as f64 / elapsed;
        rows.push(format!(
            "{:<15} {:>8} {:>9.1} {:>9} {:>9} {:>9} {:>9} {:>7}",
            kind.name(),
            count,
            rps,
            ms(p50),
            ms(p95),
            ms(p99),
            ms(max),
            errors
        ));
        let by_status: serde_json::Map<String, Value> = tally
            .errors
            .iter()
            .map(|(status, n)| (status.to_string(), json!(n)))
            .collect();
        kinds.push(json!({
            "kind": kind.name(),
            "weight_percent": kind.weight(),
            "count": count,
            "rps": rps,
            "p50_ms": ms_value(p50),
            "p95_ms": ms_value(p95),
            "p99_ms": ms_value(p99),
            "max_ms": ms_value(max),
            "errors": errors,
            "errors_by_status": by_status,
            "skipped": tally.skipped,
        }));
    }
    all.sort_unstable();
    let total = all.len();
    let [p50, p95, p99] = [50, 95, 99].map(|p| percentile(&all, p));
    let max = all.last().copied().unwrap_or(0);
    let total_rps = total as f64 / elapsed;

    let mode = match open {
        None => format!("closed loop, {} virtual users", args.users),
        Some(open) => format!(
            "open loop at {} req/s offered, {} virtual users, latency from the scheduled start",
            open.rate, args.users
        ),
    };
    say(&format!(
        "\n[{}] {mode}, {:.1} s window, {}",
        args.label, elapsed, args.base_url
    ));
    say(&format!(
        "{:<15} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "kind", "count", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"
    ));
    for row in &rows {
        say(row);
    }
    say(&format!(
        "{:<15} {:>8} {:>9.1} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "all",
        total,
        total_rps,
        ms(p50),
        ms(p95),
        ms(p99),
        ms(max),
        total_errors
    ));
    if total_skipped > 0 {
        say(&format!(
            "{total_skipped} payments skipped: their users' invoices were all paid{} (seed more, or issue more)",
            if open.is_some() {
                " or being paid by payments in flight"
            } else {
                ""
            }
        ));
    }
    if let Some(open) = open {
        let sent = open.lag.ticks.saturating_sub(total_skipped);
        say(&format!(
            "schedule: {} ticks ({:.1} req/s), {sent} sent; {} sent more than {} ms late (the client behind its \
             schedule), latest {} ms behind; at most {} in flight",
            open.lag.ticks,
            open.lag.ticks as f64 / args.duration.as_secs_f64().max(f64::EPSILON),
            open.lag.late,
            LATE_AFTER.as_millis(),
            ms(open.lag.max_micros),
            open.peak_in_flight
        ));
        if open.lag.lost > 0 {
            say(&format!(
                "{} request tasks lost their answers (counted as errors of the run)",
                open.lag.lost
            ));
        }
    }
    for tally in tallies.iter() {
        for sample in &tally.samples {
            let _ = writeln!(std::io::stderr().lock(), "error: {sample}");
        }
    }

    let dashboard_p95 = percentile(&tallies[Kind::Dashboard.index()].micros, 95);
    let create_p95 = percentile(&tallies[Kind::InvoiceCreate.index()].micros, 95);
    let targets = json!({
        "zero_errors": total_errors == 0,
        "dashboard_p95_under_20_ms": dashboard_p95 < 20_000,
        "invoice_create_p95_under_50_ms": create_p95 < 50_000,
    });
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    say(&format!(
        "targets: zero errors {}; dashboard p95 {} ms < 20 {}; invoice create p95 {} ms < 50 {}",
        verdict(total_errors == 0),
        ms(dashboard_p95),
        verdict(dashboard_p95 < 20_000),
        ms(create_p95),
        verdict(create_p95 < 50_000)
    ));

    let schedule = open.map(|open| {
        json!({
            "ticks": open.lag.ticks,
            "sent": open.lag.ticks.saturating_sub(total_skipped),
            "late_after_ms": LATE_AFTER.as_millis(),
            "late": open.lag.late,
            "max_lag_ms": ms_value(open.lag.max_micros),
            "peak_in_flight": open.peak_in_flight,
            "lost": open.lag.lost,
        })
    });
    json!({
        "label": args.label,
        "run": run_id,
        "mode": if open.is_some() { "open" } else { "closed" },
        "offered_rate": open.map(|open| open.rate),
        "schedule": schedule,
        "base_url": args.base_url,
        "virtual_users": args.users,
        "window_secs": elapsed,
        "client_threads": args.client_threads,
        "seed": {
            "organizations": args.orgs,
            "users_per_organization": args.users_per_org,
            "accounts_per_organization": args.accounts,
            "invoices_per_organization": args.invoices,
            "issued_invoices": issued,
        },
        "kinds": kinds,
        "total": {
            "count": total,
            "rps": total_rps,
            "p50_ms": ms_value(p50),
            "p95_ms": ms_value(p95),
            "p99_ms": ms_value(p99),
            "max_ms": ms_value(max),
            "errors": total_errors,
            "skipped": total_skipped,
        },
        "targets": targets,
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::try_from(args.client_threads).unwrap_or(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "loadtest: no runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "loadtest: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_the_nearest_rank() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 50), 50);
        assert_eq!(percentile(&values, 95), 95);
        assert_eq!(percentile(&values, 99), 99);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[], 50), 0);
    }

    #[test]
    fn money_round_trips_through_the_api_format() {
        assert_eq!(money(15_389), "153.89");
        assert_eq!(money(5), "0.05");
        let wire = json!({"amount": "153.89", "currency": "AUD"});
        assert_eq!(parse_minor(Some(&wire)), Some(15_389));
        assert_eq!(
            parse_minor(Some(&json!({"amount": "12.5", "currency": "AUD"}))),
            Some(1_250)
        );
        assert_eq!(
            parse_minor(Some(&json!({"amount": "-1.00", "currency": "AUD"}))),
            None
        );
    }

    #[test]
    fn the_mix_follows_the_weights() {
        let mut rng = Rng(1);
        let mut counts = [0u32; 5];
        for _ in 0..100_000 {
            counts[Kind::pick(&mut rng).index()] += 1;
        }
        for kind in Kind::ALL {
            let expected = u32::try_from(kind.weight()).unwrap() * 1_000;
            let got = counts[kind.index()];
            assert!(
                got.abs_diff(expected) < 1_000,
                "{kind:?}: {got} of 100000, expected about {expected}"
            );
        }
    }

    #[test]
    fn the_schedule_spreads_the_rate_over_the_users() {
        // 200 req/s over 100 users: every user every 500 ms.
        let interval = user_interval(200.0, 100);
        assert_eq!(interval, Duration::from_millis(500));
        let phase = Duration::from_millis(123);
        assert_eq!(tick_offset(phase, interval, 0), phase);
        assert_eq!(
            tick_offset(phase, interval, 3),
            Duration::from_millis(1_623)
        );
        // Exact however far out: a million ticks of 1/3 s land on 333 333.333 s, not drifted.
        let third = user_interval(3.0, 1);
        assert_eq!(third, Duration::new(0, 333_333_333));
        assert_eq!(
            tick_offset(Duration::ZERO, third, 1_000_000),
            Duration::new(333_333, 333_000_000)
        );
        // Only the ticks due before the end of the window.
        let window = Duration::from_secs(15);
        assert_eq!(ticks_in(phase, interval, window), 30);
        assert_eq!(ticks_in(Duration::ZERO, interval, window), 30);
        assert_eq!(ticks_in(Duration::from_millis(499), interval, window), 30);
        assert_eq!(ticks_in(window, interval, window), 0);
        let last = ticks_in(phase, interval, window) - 1;
        assert!(tick_offset(phase, interval, last) < window);
        assert!(tick_offset(phase, interval, last + 1) >= window);
        // Over every user and any phases within an interval, the offered rate times the window.
        let mut rng = Rng(7);
        let total: u64 = (0..100)
            .map(|_| {
                let phase = Duration::from_nanos(rng.below(500_000_000));
                ticks_in(phase, interval, window)
            })
            .sum();
        assert_eq!(total, 3_000);
    }

    #[test]
    fn rates_are_positive_numbers() {
        assert_eq!(parse_rate("200"), Ok(200.0));
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-5").is_err());
        assert!(parse_rate("inf").is_err());
        assert!(parse_rate("fast").is_err());
    }

    fn user_paying(payable: Vec<(String, u64)>) -> VirtualUser {
        VirtualUser {
            number: 0,
            api: Api::new("http://127.0.0.1:1"),
            token: String::new(),
            org: Arc::new(Org {
                emails: vec![],
                invoices: vec!["r".into()],
                payable: vec![],
            }),
            payable,
            paying: HashSet::new(),
            rng: Rng(3),
            run: "t".into(),
            today: "2026-12-01".into(),
            created: 0,
        }
    }

    #[test]
    fn an_invoice_being_paid_is_not_paid_again_until_answered() {
        let mut user = user_paying(vec![("a".into(), 1_000_000), ("b".into(), 1_000_000)]);
        let first = user.next_request(Kind::Payment).unwrap().paying.unwrap();
        user.paying.insert(first.clone());
        // While the first is in flight, every payment goes to the other invoice.
        for _ in 0..20 {
            let next = user.next_request(Kind::Payment).unwrap();
            assert_ne!(next.paying.as_deref(), Some(first.as_str()));
            assert!(next.path.ends_with("/payments"));
        }
        // Both in flight: the payment is skipped.
        let other = if first == "a" { "b" } else { "a" };
        user.paying.insert(other.into());
        assert!(user.next_request(Kind::Payment).is_none());
        // Answered: payable again.
        user.paying.remove(&first);
        let again = user.next_request(Kind::Payment).unwrap();
        assert_eq!(again.paying.as_deref(), Some(first.as_str()));
    }

    #[test]
    fn payments_never_exceed_what_is_owed() {
        let mut user = user_paying(vec![("a".into(), 250)]);
        let mut paid = 0;
        while let Some(planned) = user.next_request(Kind::Payment) {
            let amount = planned
                .body
                .as_ref()
                .and_then(|b| parse_minor(b.get("amount")));
            paid += amount.unwrap();
        }
        assert_eq!(paid, 250);
        assert!(user.payable.is_empty());
    }

    #[test]
    fn durations_take_seconds_or_minutes() {
        assert_eq!(parse_duration("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("s").is_err());
    }
}
