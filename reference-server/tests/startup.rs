//! The real binary: start-up refusals on bad configuration, the zero-set-up default, and draining on SIGTERM.
#![allow(clippy::unwrap_used)] // helpers of tests: a failure is a failed test

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_reference-server");

/// The binary with an empty environment, so the CI's DATABASE_URL and friends do not leak in.
fn command(dir: &std::path::Path, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .current_dir(dir)
        .envs(vars.iter().copied());
    command
}

fn run_to_end(vars: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    command(dir.path(), vars).output().unwrap()
}

fn assert_refused_naming(output: &Output, variable: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "start-up should fail; stderr: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line expected, got: {stderr}");
    assert!(
        lines[0].contains(variable),
        "the line should name {variable}: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "no panic: {stderr}"
    );
}

#[test]
fn production_without_jwt_secret_refuses_to_start_with_one_line() {
    let key = "k".repeat(32);
    let output = run_to_end(&[
        ("ENVIRONMENT", "production"),
        ("AUDIT_CHAIN_KEY", &key),
        ("TOTP_ENCRYPTION_KEY", &key),
    ]);
    assert_refused_naming(&output, "JWT_SECRET");
}

#[test]
fn nonsense_database_url_refuses_to_start_with_one_line() {
    let output = run_to_end(&[("DATABASE_URL", "nonsense")]);
    assert_refused_naming(&output, "DATABASE_URL");
}

#[test]
fn unreachable_database_refuses_to_start_without_a_panic() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let output = run_to_end(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("cannot connect to the database"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

struct Running {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(dir: &std::path::Path, vars: &[(&str, &str)]) -> Running {
    let addr = free_addr();
    let bind = addr.to_string();
    let mut all = vec![("BIND_ADDR", bind.as_str())];
    all.extend_from_slice(vars);
    let child = command(dir, &all)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running { child, addr };
    let start = Instant::now();
    while support::http_get(addr, "/health/live").await.is_none() {
        if let Ok(Some(status)) = running.child.try_wait() {
            panic!("the server exited during start-up: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the server did not start within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running
}

fn sigterm(child: &Child) {
    signal(child, "-TERM");
}

fn signal(child: &Child, which: &str) {
    let status = Command::new("kill")
        .arg(which)
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn with_no_configuration_it_serves_ready_on_sqlite_under_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    assert_eq!(
        support::http_get(server.addr, "/health/ready")
            .await
            .map(|r| r.0),
        Some(200)
    );
    assert!(
        dir.path().join("data/reference.db").is_file(),
        "the SQLite file is created under ./data"
    );
}

#[tokio::test]
async fn with_postgres_it_serves_ready_and_applies_migrations() {
    let db = test_support::require!(test_support::postgres().await);
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[("DATABASE_URL", db.url())]).await;
    assert_eq!(
        support::http_get(server.addr, "/health/ready")
            .await
            .map(|r| r.0),
        Some(200)
    );

    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('organizations', '_sqlx_migrations')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 2);
    pool.close().await;
}

#[tokio::test]
async fn sigterm_turns_ready_503_during_the_drain_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &[("SHUTDOWN_DRAIN", "2s")]).await;
    assert_eq!(
        support::http_get(server.addr, "/health/ready")
            .await
            .map(|r| r.0),
        Some(200)
    );

    let signalled = Instant::now();
    sigterm(&server.child);
    let mut saw_503 = false;
    while signalled.elapsed() < Duration::from_millis(1500) {
        if let Some((503, _)) = support::http_get(server.addr, "/health/ready").await {
            saw_503 = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_503, "readiness should answer 503 while draining");
    assert_eq!(
        support::http_get(server.addr, "/health/live")
            .await
            .map(|r| r.0),
        Some(200)
    );

    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(15),
            "the server did not stop after its drain"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "a drained shutdown exits 0, got {status}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "the listener stays open for the drain period"
    );
}

#[tokio::test]
async fn audit_verify_command_exits_0_on_an_intact_trail_and_1_on_a_tampered_one() {
    let db = test_support::require!(test_support::postgres().await);
    let dir = tempfile::tempdir().unwrap();
    let key = "an-audit-chain-key-of-at-least-32-bytes!";
    let vars = [("DATABASE_URL", db.url()), ("AUDIT_CHAIN_KEY", key)];
    {
        let server = start(dir.path(), &vars).await;
        let body = r#"{"organization_name":"Acme","name":"Olive","email":"olive@example.com","password":"correct horse battery staple"}"#;
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
            .await
            .unwrap();
        let mut response = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response)
            .await
            .unwrap();
        assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    }
    let verify = || {
        command(dir.path(), &vars)
            .args(["audit", "verify"])
            .output()
            .unwrap()
    };
    let intact = verify();
    let stdout = String::from_utf8_lossy(&intact.stdout);
    assert!(
        intact.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&intact.stderr)
    );
    assert!(
        stdout.contains("1 organizations checked, 0 with a broken chain"),
        "{stdout}"
    );

    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    sqlx::query("DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let tampered = verify();
    let stdout = String::from_utf8_lossy(&tampered.stdout);
    assert_eq!(tampered.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("BROKEN"), "{stdout}");
}

#[test]
fn create_owner_reads_the_password_from_stdin_and_the_owner_can_sign_in() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let create = |email: &str, password: &str| {
        let mut child = command(dir.path(), &[])
            .args([
                "create-owner",
                "--organization",
                "Harbour Hotel",
                "--name",
                "Olive",
                "--email",
                email,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let output = create("olive@harbour.example", "correct horse battery staple");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let weak = create("other@harbour.example", "short");
    assert!(!weak.status.success());
    assert!(
        String::from_utf8_lossy(&weak.stderr).contains("password"),
        "{}",
        String::from_utf8_lossy(&weak.stderr)
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let server = start(dir.path(), &[]).await;
        let body = r#"{"email":"olive@harbour.example","password":"correct horse battery staple"}"#;
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    });
}

#[tokio::test]
async fn ctrl_c_drains_like_sigterm_and_logs_are_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let bind = addr.to_string();
    let mut child = command(
        dir.path(),
        &[("BIND_ADDR", bind.as_str()), ("SHUTDOWN_DRAIN", "1s")],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let started = Instant::now();
    while support::http_get(addr, "/health/ready").await.map(|r| r.0) != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        support::http_get(addr, "/no/such/route").await.map(|r| r.0),
        Some(404)
    );
    signal(&child, "-INT");
    let output = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
        (status, out)
    })
    .await
    .unwrap();
    assert!(
        output.0.success(),
        "Ctrl-C drains and exits 0, got {}",
        output.0
    );
    let lines: Vec<serde_json::Value> = output
        .1
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l.to_string().contains("draining")),
        "{}",
        output.1
    );
    assert!(
        lines.iter().all(|l| l.get("level").is_some()),
        "every line is a structured event"
    );
}

#[tokio::test]
async fn log_format_pretty_writes_for_people() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let bind = addr.to_string();
    let mut child = command(
        dir.path(),
        &[
            ("BIND_ADDR", bind.as_str()),
            ("SHUTDOWN_DRAIN", "100ms"),
            ("LOG_FORMAT", "pretty"),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let started = Instant::now();
    while support::http_get(addr, "/health/live").await.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sigterm(&child);
    let out = tokio::task::spawn_blocking(move || {
        child.wait().unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(out.contains("listening"), "{out}");
    assert!(
        out.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_err()),
        "pretty output is not JSON: {out}"
    );
}
