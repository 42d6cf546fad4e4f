//! The integrity audit finds rows changed behind the server's back, keeps each deviation open until a later
//! run no longer finds it, and reports clean books as clean. On SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)] // helpers of tests: a failure is a failed test

mod support;

use axum::http::StatusCode;
use reference_server::with_pool;
use serde_json::{Value, json};
use support::{Backend, TestServer, call, count, server};

support::on_both_backends!(
    tampered_rows_are_reported_and_closed_when_repaired,
    tampered_monthly_totals_are_reported_and_closed_when_repaired,
    the_scheduled_audit_runs_once_per_period_across_instances,
);

async fn run(server: &TestServer, token: &str) -> Value {
    let (status, run) = call(
        &server.state,
        "POST",
        "/api/v1/integrity/runs",
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    run
}

/// Runs the audit and checks it found nothing and left no event open; the run.
async fn clean_run(server: &TestServer, token: &str) -> Value {
    let clean = run(server, token).await;
    assert_eq!(clean["status"], "clean", "{clean}");
    assert_eq!(open_records(server, token).await, vec![]);
    clean
}

async fn open_records(server: &TestServer, token: &str) -> Vec<(String, Vec<String>)> {
    let (status, events) = call(
        &server.state,
        "GET",
        "/api/v1/integrity/events",
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let mut found: Vec<(String, Vec<String>)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let violations: Value =
                serde_json::from_str(e["violations"].as_str().unwrap()).unwrap();
            let codes = violations
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["code"].as_str().unwrap().to_owned())
                .collect();
            (e["record_kind"].as_str().unwrap().to_owned(), codes)
        })
        .collect();
    found.sort();
    found
}

/// Creates a sales invoice of `quantity` rooms at 150.00 plus 10 % GST, issued on `issued`, and issues it
/// (which posts it to the ledger); its id.
async fn issued_invoice(
    server: &TestServer,
    token: &str,
    number: &str,
    issued: &str,
    quantity: &str,
) -> String {
    let invoice = json!({
        "kind": "sales", "number": number, "counterparty": "Hotel", "issue_date": issued,
        "due_date": "2026-11-30", "currency": "AUD",
        "lines": [{"description": "Rooms", "quantity": quantity, "net_price": "150.00", "tax_category": "S", "tax_rate": "10"}],
    });
    let (status, created) = call(
        &server.state,
        "POST",
        "/api/v1/invoices",
        Some(token),
        Some(invoice),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, issued) = call(
        &server.state,
        "POST",
        &format!("/api/v1/invoices/{id}/issue"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    id
}

async fn execute(server: &TestServer, sql: &'static str) {
    with_pool!(server.state.db(), |pool| sqlx::query(sql)
        .execute(pool)
        .await
        .map(drop))
    .unwrap();
}

async fn tampered_rows_are_reported_and_closed_when_repaired(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let token = &support::owner(&server, "Acme", "o@acme.example").await;
    let id = &issued_invoice(&server, token, "INV-1", "2026-11-01", "3").await;
    let payment =
        json!({"amount": {"amount": "100.00", "currency": "AUD"}, "paid_on": "2026-11-05"});
    assert_eq!(
        call(
            &server.state,
            "POST",
            &format!("/api/v1/invoices/{id}/payments"),
            Some(token),
            Some(payment)
        )
        .await
        .0,
        StatusCode::OK
    );

    let clean = clean_run(&server, token).await;

    // Behind the server's back: an invoice's amount due, and one journal line.
    execute(
        &server,
        "UPDATE invoices SET payable_amount = payable_amount + 1",
    )
    .await;
    execute(&server, "UPDATE journal_lines SET amount_minor = amount_minor + 100 WHERE side = 'debit' AND currency = 'AUD' AND line_no = 0 AND entry_id IN (SELECT entry_id FROM payments)").await;
    let found = run(&server, token).await;
    assert_eq!(found["status"], "deviations", "{found}");
    let open = open_records(&server, token).await;
    let kinds: Vec<&str> = open.iter().map(|(k, _)| k.as_str()).collect();
    // The changed line no longer adds up to its month's stored totals either.
    assert_eq!(
        kinds,
        ["account", "account_month", "invoice", "journal_entry"],
        "{open:?}"
    );
    assert!(
        open.iter()
            .any(|(k, codes)| k == "invoice" && codes.iter().any(|c| c == "BR-CO-16")),
        "{open:?}"
    );
    assert!(
        open.iter()
            .any(|(k, codes)| k == "journal_entry" && codes.iter().any(|c| c == "UNBALANCED")),
        "{open:?}"
    );
    assert!(
        open.iter()
            .any(|(k, codes)| k == "account" && codes.iter().any(|c| c == "BALANCE-DRIFT")),
        "{open:?}"
    );

    // The same deviations found again stay one event each.
    run(&server, token).await;
    assert_eq!(open_records(&server, token).await.len(), 4);

    // Repair the invoice: its event closes on the next run; the journal's stay open.
    execute(
        &server,
        "UPDATE invoices SET payable_amount = payable_amount - 1",
    )
    .await;
    run(&server, token).await;
    let kinds: Vec<String> = open_records(&server, token)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kinds, ["account", "account_month", "journal_entry"]);

    let (status, runs) = call(
        &server.state,
        "GET",
        "/api/v1/integrity/runs",
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(runs["items"].as_array().unwrap().len(), 4);
    assert_eq!(runs["next_cursor"], Value::Null);

    // Pages of three, newest first: the second holds the oldest run and says there is no more.
    let (_, first) = call(
        &server.state,
        "GET",
        "/api/v1/integrity/runs?limit=3",
        Some(token),
        None,
    )
    .await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = call(
        &server.state,
        "GET",
        &format!("/api/v1/integrity/runs?limit=3&cursor={cursor}"),
        Some(token),
        None,
    )
    .await;
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all: Vec<String> = ids(&first).into_iter().chain(ids(&second)).collect();
    assert_eq!(all, ids(&runs), "the pages are the whole list, in order");
    assert_eq!(second["next_cursor"], Value::Null);
    assert_eq!(
        all[3], clean["id"],
        "newest first: the first run comes last"
    );
}

/// The open events' record ids of one kind, sorted.
async fn open_ids(server: &TestServer, token: &str, kind: &str) -> Vec<String> {
    let (_, events) = call(
        &server.state,
        "GET",
        "/api/v1/integrity/events",
        Some(token),
        None,
    )
    .await;
    let mut ids: Vec<String> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["record_kind"] == kind)
        .map(|e| e["record_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

async fn tampered_monthly_totals_are_reported_and_closed_when_repaired(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let token = &support::owner(&server, "Acme", "o@acme.example").await;
    for (number, issued) in [("INV-1", "2026-10-20"), ("INV-2", "2026-11-03")] {
        issued_invoice(&server, token, number, issued, "2").await;
    }
    let clean = run(&server, token).await;
    assert_eq!(clean["status"], "clean", "{clean}");
    let summary: Value = serde_json::from_str(clean["summary"].as_str().unwrap()).unwrap();
    assert_eq!(summary["account_months_deviating"], 0, "{summary}");
    let months = count(&server.state, "SELECT COUNT(*) FROM account_months").await;
    assert!(
        months >= 4,
        "two months of receivables, income and GST rows: {months}"
    );

    // Behind the server's back: every stored monthly credit total, then one whole row.
    execute(&server, "UPDATE account_months SET credits = credits + 7").await;
    let found = run(&server, token).await;
    assert_eq!(found["status"], "deviations", "{found}");
    assert_eq!(found["deviations"], months, "{found}");
    let summary: Value = serde_json::from_str(found["summary"].as_str().unwrap()).unwrap();
    assert_eq!(summary["account_months_deviating"], months, "{summary}");
    let open = open_records(&server, token).await;
    assert_eq!(open.len(), usize::try_from(months).unwrap(), "{open:?}");
    for (kind, codes) in &open {
        assert_eq!(kind, "account_month");
        assert_eq!(codes, &["BALANCE-DRIFT"], "only the credits moved");
    }
    let ids = open_ids(&server, token, "account_month").await;
    assert!(ids.iter().any(|id| id.ends_with("/2026-10")), "{ids:?}");
    assert!(ids.iter().any(|id| id.ends_with("/2026-11")), "{ids:?}");
    for id in &ids {
        let (account, month) = id.split_once('/').unwrap();
        assert!(
            uuid::Uuid::parse_str(account).is_ok() && month.len() == 7,
            "{id}"
        );
    }

    execute(&server, "UPDATE account_months SET credits = credits - 7").await;
    clean_run(&server, token).await;

    // A lost row is a month whose lines no longer add up to anything stored.
    execute(
        &server,
        "DELETE FROM account_months WHERE month = '2026-10' AND credits > 0",
    )
    .await;
    let lost = run(&server, token).await;
    assert_eq!(lost["status"], "deviations", "{lost}");
    let ids = open_ids(&server, token, "account_month").await;
    assert!(
        !ids.is_empty() && ids.iter().all(|id| id.ends_with("/2026-10")),
        "{ids:?}"
    );
}

async fn the_scheduled_audit_runs_once_per_period_across_instances(backend: Backend) {
    use reference_server::domain::integrity::{Scheduled, run_scheduled};
    const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

    let server = test_support::require!(server(backend, &[]).await);
    support::owner(&server, "Acme", "o@acme.example").await;
    support::owner(&server, "Globex", "o@globex.example").await;
    // A second instance on the same database.
    let url = server.state.config().database_url.as_str().to_owned();
    let other = support::server_at(&url, &[], None, None).await;

    let (a, b) = match backend {
        // Both at once: the advisory lock lets one in.
        Backend::Postgres => tokio::join!(
            run_scheduled(&server.state, HOUR),
            run_scheduled(&other.state, HOUR)
        ),
        // One file, one instance at a time: the second finds the first one's runs.
        Backend::Sqlite => (
            run_scheduled(&server.state, HOUR).await,
            run_scheduled(&other.state, HOUR).await,
        ),
    };
    let outcomes = [a.unwrap(), b.unwrap()];
    let ran: Vec<usize> = outcomes
        .iter()
        .filter_map(|o| match o {
            Scheduled::Ran(runs) => Some(runs.len()),
            _ => None,
        })
        .collect();
    assert_eq!(
        ran,
        [2],
        "exactly one instance audits both organizations: {outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, Scheduled::Busy | Scheduled::RanRecently)),
        "{outcomes:?}"
    );
    let runs = count(&server.state, "SELECT COUNT(*) FROM integrity_runs").await;
    assert_eq!(runs, 2, "one run per organization");

    // Within the period nobody runs it again; a period that has passed lets it run.
    assert!(matches!(
        run_scheduled(&other.state, HOUR).await.unwrap(),
        Scheduled::RanRecently
    ));
    assert!(matches!(
        run_scheduled(&server.state, std::time::Duration::ZERO)
            .await
            .unwrap(),
        Scheduled::Ran(_)
    ));
    assert_eq!(
        count(&server.state, "SELECT COUNT(*) FROM integrity_runs").await,
        4
    );

    // Each organization is due on its own: a new one is audited at once, and one tenant's manual run
    // puts off only its own scheduled audit.
    let initech = support::owner(&server, "Initech", "o@initech.example").await;
    let (status, manual) = call(
        &server.state,
        "POST",
        "/api/v1/integrity/runs",
        Some(&initech),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{manual}");
    assert!(matches!(
        run_scheduled(&server.state, HOUR).await.unwrap(),
        Scheduled::RanRecently
    ));
    support::owner(&server, "Globex Two", "o@globex2.example").await;
    match run_scheduled(&other.state, HOUR).await.unwrap() {
        Scheduled::Ran(runs) => {
            assert_eq!(runs.len(), 1, "only the organization never audited");
            assert_ne!(
                runs[0].organization_id.to_string(),
                manual["organization_id"]
            );
        }
        outcome => panic!("{outcome:?}"),
    }
    assert_eq!(
        count(&server.state, "SELECT COUNT(*) FROM integrity_runs").await,
        6
    );

    if let reference_server::db::Db::Postgres(pool) = other.state.db() {
        // While another session holds the lock, the audit is left to it, whatever the period says.
        let mut held = pool.begin().await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(reference_server::domain::integrity::AUDIT_LOCK)
            .execute(&mut *held)
            .await
            .unwrap();
        assert!(matches!(
            run_scheduled(&server.state, std::time::Duration::ZERO)
                .await
                .unwrap(),
            Scheduled::Busy
        ));
        held.rollback().await.unwrap();
        assert!(matches!(
            run_scheduled(&server.state, std::time::Duration::ZERO)
                .await
                .unwrap(),
            Scheduled::Ran(_)
        ));
    }
}
