//! Two server processes sharing PostgreSQL and Redis: the login limit is one limit across both, and a write
//! on one invalidates the dashboard cached on the other within 100 ms.
#![allow(clippy::unwrap_used)] // helpers of tests: a failure is a failed test

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{PASSWORD, http};

const BIN: &str = env!("CARGO_BIN_EXE_reference-server");

struct Instance {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(dir: &std::path::Path, vars: &[(&str, String)]) -> Instance {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let child = Command::new(BIN)
        .env_clear()
        .current_dir(dir)
        .env("BIND_ADDR", addr.to_string())
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let instance = Instance { child, addr };
    let started = Instant::now();
    while support::http_get(addr, "/health/ready").await.map(|r| r.0) != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "an instance did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    instance
}

#[tokio::test]
async fn two_instances_share_the_login_limit_and_dashboard_invalidations() {
    let db = test_support::require!(test_support::postgres().await);
    let redis = test_support::require!(test_support::redis().await);
    let dir = tempfile::tempdir().unwrap();
    // Keys of this test only (the slice's own prefix carries braces, which a key prefix may not).
    let prefix: String = redis
        .prefix()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let vars = [
        ("DATABASE_URL", db.url().to_owned()),
        ("REDIS_URL", redis.url().to_owned()),
        ("REDIS_KEY_PREFIX", format!("{prefix}:")),
        (
            "JWT_SECRET",
            "a-shared-secret-of-at-least-thirty-two-bytes".to_owned(),
        ),
        (
            "AUDIT_CHAIN_KEY",
            "an-audit-chain-key-of-at-least-32-bytes!".to_owned(),
        ),
        (
            "TOTP_ENCRYPTION_KEY",
            "a-totp-sealing-key-of-at-least-32-bytes!".to_owned(),
        ),
    ];
    let a = start(dir.path(), &vars).await;
    let b = start(dir.path(), &vars).await;

    let (status, owner) = http(a.addr, "POST", "/api/v1/auth/register", None, Some(&json!({
        "organization_name": "Acme", "name": "Owner", "email": "olive@acme.example", "password": PASSWORD,
    })))
    .await;
    assert_eq!(status, 201, "{owner}");
    let token = owner["access_token"].as_str().unwrap().to_owned();

    // The dashboard, read (and cached) on B.
    let (status, board) = http(b.addr, "GET", "/api/v1/dashboard", Some(&token), None).await;
    assert_eq!(status, 200, "{board}");
    assert_eq!(board["cash"]["amount"], "0.00");

    // A write on A.
    let (_, accounts) = http(a.addr, "GET", "/api/v1/accounts", Some(&token), None).await;
    let id = |code: &str| {
        accounts["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["code"] == code)
            .unwrap()["id"]
            .clone()
    };
    let entry = json!({"entry_date": "2026-12-01", "description": "Capital", "lines": [
        {"account_id": id("1000"), "side": "debit", "amount": {"amount": "100.00", "currency": "AUD"}},
        {"account_id": id("3000"), "side": "credit", "amount": {"amount": "100.00", "currency": "AUD"}},
    ]});
    let (status, posted) = http(
        a.addr,
        "POST",
        "/api/v1/journal-entries",
        Some(&token),
        Some(&entry),
    )
    .await;
    assert_eq!(status, 201, "{posted}");
    let written = Instant::now();
    loop {
        let (_, board) = http(b.addr, "GET", "/api/v1/dashboard", Some(&token), None).await;
        if board["cash"]["amount"] == "100.00" {
            break;
        }
        assert!(
            written.elapsed() < Duration::from_secs(2),
            "B still serves the old dashboard: {board}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seen = written.elapsed();
    assert!(
        seen <= Duration::from_millis(100),
        "B saw the write after {seen:?}"
    );

    // Failed sign-ins on both count against one per-account limit.
    let wrong = json!({"email": "olive@acme.example", "password": "not the password at all"});
    for addr in [a.addr, b.addr, a.addr, b.addr, a.addr] {
        assert_eq!(
            http(addr, "POST", "/api/v1/auth/login", None, Some(&wrong))
                .await
                .0,
            401
        );
    }
    let right = json!({"email": "olive@acme.example", "password": PASSWORD});
    assert_eq!(
        http(b.addr, "POST", "/api/v1/auth/login", None, Some(&right))
            .await
            .0,
        429,
        "the sixth attempt, on B, is over the shared limit"
    );
    assert_eq!(
        http(a.addr, "POST", "/api/v1/auth/login", None, Some(&right))
            .await
            .0,
        429
    );
}
