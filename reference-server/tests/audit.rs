//! The audit trail: every write is recorded, owners and admins can read it, and `audit verify` finds an edited,
//! reordered or deleted event, the newest included. On SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)] // helpers of tests: a failure is a failed test

mod support;

use axum::http::StatusCode;
use reference_server::domain::audit;
use reference_server::with_pool;
use serde_json::{Value, json};
use support::{Backend, TestServer, call, server};

const PASSWORD: &str = "correct horse battery staple";
const KEY: &str = "an-audit-chain-key-of-at-least-32-bytes!";

support::on_both_backends!(
    writes_are_recorded_without_personal_data_and_readable_by_owners_only,
    an_intact_trail_verifies,
    an_edited_event_is_found,
    a_deleted_newest_event_is_found,
    reordered_events_are_found,
    an_inserted_event_is_found,
    a_deleted_head_row_is_found,
);

/// An organization with an owner, a viewer who signed in, and the owner's token.
async fn populated(backend: Backend) -> Option<(TestServer, String, String)> {
    let server = server(backend, &[("AUDIT_CHAIN_KEY", KEY)]).await?;
    let (status, owner) = call(
        &server.state,
        "POST",
        "/api/v1/auth/register",
        None,
        Some(json!({"organization_name": "Acme", "name": "Olive Owner", "email": "olive@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let owner = owner["access_token"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &server.state,
        "POST",
        "/api/v1/users",
        Some(&owner),
        Some(json!({"email": "vic@example.com", "name": "Vic Viewer", "role": "viewer", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, viewer) = call(
        &server.state,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "vic@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let viewer = viewer["access_token"].as_str().unwrap().to_owned();
    Some((server, owner, viewer))
}

async fn execute(server: &TestServer, sql: &'static str) {
    with_pool!(server.state.db(), |pool| sqlx::query(sql)
        .execute(pool)
        .await
        .map(drop))
    .unwrap();
}

async fn problems(server: &TestServer) -> Vec<String> {
    let reports = audit::verify(server.state.db(), KEY.as_bytes())
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    reports.into_iter().flat_map(|r| r.problems).collect()
}

async fn writes_are_recorded_without_personal_data_and_readable_by_owners_only(backend: Backend) {
    let Some((server, owner, viewer)) = populated(backend).await else {
        return;
    };
    let (status, page) = call(
        &server.state,
        "GET",
        "/api/v1/audit-events",
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().unwrap();
    let actions: Vec<&str> = items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "organization.register",
            "user.create",
            "user.create",
            "auth.login"
        ]
    );
    let seqs: Vec<i64> = items.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    let text = page.to_string();
    for personal in [
        "olive@example.com",
        "Olive Owner",
        "vic@example.com",
        "Vic Viewer",
    ] {
        assert!(
            !text.contains(personal),
            "personal data {personal:?} in the trail: {text}"
        );
    }

    let (status, first) = call(
        &server.state,
        "GET",
        "/api/v1/audit-events?limit=3",
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, rest) = call(
        &server.state,
        "GET",
        &format!("/api/v1/audit-events?limit=3&cursor={cursor}"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);

    let (status, problem) = call(
        &server.state,
        "GET",
        "/api/v1/audit-events",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem["type"], "/problems/forbidden");
    assert_eq!(
        call(
            &server.state,
            "GET",
            "/api/v1/audit-events?limit=0",
            Some(&owner),
            None
        )
        .await
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

async fn an_intact_trail_verifies(backend: Backend) {
    let Some((server, _, _)) = populated(backend).await else {
        return;
    };
    assert_eq!(problems(&server).await, Vec::<String>::new());
}

async fn an_edited_event_is_found(backend: Backend) {
    let Some((server, _, _)) = populated(backend).await else {
        return;
    };
    execute(
        &server,
        r#"UPDATE audit_events SET after_value = '{"role":"owner"}' WHERE seq = 3"#,
    )
    .await;
    let found = problems(&server).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("event 3"), "{found:?}");
}

async fn a_deleted_newest_event_is_found(backend: Backend) {
    let Some((server, _, _)) = populated(backend).await else {
        return;
    };
    execute(&server, "DELETE FROM audit_events WHERE seq = 4").await;
    let found = problems(&server).await;
    assert!(
        found
            .iter()
            .any(|p| p.contains("head counts 4 events but the chain has 3")),
        "{found:?}"
    );
}

async fn reordered_events_are_found(backend: Backend) {
    let Some((server, _, _)) = populated(backend).await else {
        return;
    };
    execute(&server, "UPDATE audit_events SET seq = 100 WHERE seq = 2").await;
    execute(&server, "UPDATE audit_events SET seq = 2 WHERE seq = 3").await;
    execute(&server, "UPDATE audit_events SET seq = 3 WHERE seq = 100").await;
    let found = problems(&server).await;
    assert!(found.iter().any(|p| p.contains("event 2")), "{found:?}");
}

async fn an_inserted_event_is_found(backend: Backend) {
    let Some((server, _, _)) = populated(backend).await else {
        return;
    };
    // A copy of event 2 slipped in after the last one, with the head moved on to count it.
    let insert = match backend {
        Backend::Sqlite => {
            "INSERT INTO audit_events (organization_id, seq, id, actor_id, action, entity_type, entity_id, \
             before_value, after_value, occurred_at, hash) SELECT organization_id, 5, randomblob(16), actor_id, \
             action, entity_type, entity_id, before_value, after_value, occurred_at, hash FROM audit_events WHERE seq = 2"
        }
        Backend::Postgres => {
            "INSERT INTO audit_events (organization_id, seq, id, actor_id, action, entity_type, entity_id, \
             before_value, after_value, occurred_at, hash) SELECT organization_id, 5, gen_random_uuid(), actor_id, \
             action, entity_type, entity_id, before_value, after_value, occurred_at, hash FROM audit_events WHERE seq = 2"
        }
    };
    execute(&server, insert).await;
    execute(&server, "UPDATE audit_heads SET count = count + 1").await;
    let found = problems(&server).await;
    assert!(found.iter().any(|p| p.contains("event 5")), "{found:?}");
}

async fn a_deleted_head_row_is_found(backend: Backend) {
    let Some((server, _, _)) = populated(backend).await else {
        return;
    };
    execute(&server, "DELETE FROM audit_events WHERE seq = 4").await;
    execute(&server, "DELETE FROM audit_heads").await;
    let found = problems(&server).await;
    assert!(
        found.iter().any(|p| p.contains("head row is missing")),
        "{found:?}"
    );
}
