//! TOTP second factor (RFC 6238): enrolment, sign-in with a code, replay refused, and an organization that
//! requires it. On SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)] // a failure is a failed test

mod support;

use axum::http::StatusCode;
use serde_json::json;
use support::{Backend, PASSWORD, call, on_both_backends, owner, server};
use totp_rs::{Builder, Secret};

/// The code an authenticator app shows for `secret` at `unix` seconds.
fn code(secret: &str, unix: i64) -> String {
    Builder::new()
        .with_secret(Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap()
        .generate(u64::try_from(unix).unwrap())
        .to_string()
}

async fn login(
    s: &reference_server::AppState,
    email: &str,
    totp: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut body = json!({"email": email, "password": PASSWORD});
    if let Some(totp) = totp {
        body["totp"] = json!(totp);
    }
    call(s, "POST", "/api/v1/auth/login", None, Some(body)).await
}

async fn enrol(s: &reference_server::AppState, token: &str) -> String {
    let (status, enrolment) = call(s, "POST", "/api/v1/users/me/totp", Some(token), None).await;
    assert_eq!(status, StatusCode::CREATED, "{enrolment}");
    assert!(
        enrolment["otpauth_url"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    // The database holds the secret sealed (TOTP_ENCRYPTION_KEY), never as the user saw it.
    let stored: Vec<Option<String>> = reference_server::with_pool!(s.db(), |pool| {
        sqlx::query_scalar("SELECT totp_secret FROM users WHERE totp_secret IS NOT NULL")
            .fetch_all(pool)
            .await
    })
    .unwrap();
    assert!(!stored.is_empty());
    for stored in stored.iter().flatten() {
        assert!(
            stored.starts_with("v1:") && !stored.contains(&secret),
            "{stored}"
        );
    }
    // A wrong code does not confirm it.
    let (status, _) = call(
        s,
        "POST",
        "/api/v1/users/me/totp/confirm",
        Some(token),
        Some(json!({"code": "000000"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // The code of 90 s ago neither: one step of skew, no more.
    let now = s.clock().unix();
    let stale = code(&secret, now - 90);
    if stale != code(&secret, now)
        && stale != code(&secret, now - 30)
        && stale != code(&secret, now + 30)
    {
        let (status, _) = call(
            s,
            "POST",
            "/api/v1/users/me/totp/confirm",
            Some(token),
            Some(json!({"code": stale})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let (status, body) = call(
        s,
        "POST",
        "/api/v1/users/me/totp/confirm",
        Some(token),
        Some(json!({"code": code(&secret, now)})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    secret
}

async fn second_factor(backend: Backend) {
    let server = test_support::require!(server(backend, &[("RATE_LIMIT_DISABLED", "true")]).await);
    let s = &server.state;
    let owner_token = owner(&server, "Acme", "olive@acme.example").await;
    let secret = enrol(s, &owner_token).await;
    // Enrolled: the password alone, or with a wrong code, is refused like a wrong password.
    let (status, body) = login(s, "olive@acme.example", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["type"], "/problems/unauthorized");
    let (status, _) = login(s, "olive@acme.example", Some("123456")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The code of the next step is accepted (the step used to confirm is spent), and only once.
    let next = code(&secret, s.clock().unix() + 30);
    let (status, body) = login(s, "olive@acme.example", Some(&next)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = login(s, "olive@acme.example", Some(&next)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a code is accepted once");
    // A secret stored before sealing existed still signs in, and is sealed from then on.
    let sealed_before: String = reference_server::with_pool!(s.db(), |pool| {
        sqlx::query_scalar("SELECT totp_secret FROM users WHERE email = 'olive@acme.example'")
            .fetch_one(pool)
            .await
    })
    .unwrap();
    reference_server::with_pool!(s.db(), |pool| {
        sqlx::query("UPDATE users SET totp_secret = $1 WHERE email = 'olive@acme.example'")
            .bind(&secret)
            .execute(pool)
            .await
            .map(drop)
    })
    .unwrap();
    s.clock().advance(std::time::Duration::from_secs(60));
    let later = code(&secret, s.clock().unix());
    let (status, body) = login(s, "olive@acme.example", Some(&later)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sealed_after: String = reference_server::with_pool!(s.db(), |pool| {
        sqlx::query_scalar("SELECT totp_secret FROM users WHERE email = 'olive@acme.example'")
            .fetch_one(pool)
            .await
    })
    .unwrap();
    assert!(sealed_after.starts_with("v1:") && !sealed_after.contains(&secret));
    assert_ne!(
        sealed_after, sealed_before,
        "sealed again, with a fresh nonce"
    );
    // Enrolling again is a conflict, not a silent reset of the second factor.
    let (status, _) = call(s, "POST", "/api/v1/users/me/totp", Some(&owner_token), None).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The owner requires it of everyone: a member without it may only enrol.
    let (status, _) = call(
        s,
        "POST",
        "/api/v1/users",
        Some(&owner_token),
        Some(json!({
            "email": "sam@acme.example", "name": "Sam", "role": "staff", "password": PASSWORD, "pin": "2468",
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = call(
        s,
        "PUT",
        "/api/v1/organization/totp-requirement",
        Some(&owner_token),
        Some(json!({"require_totp": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, tokens) = login(s, "sam@acme.example", None).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let sam = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, body) = call(s, "GET", "/api/v1/invoices", Some(&sam), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["type"], "/problems/totp-enrolment-required");
    let (status, _) = call(s, "GET", "/api/v1/users/me", Some(&sam), None).await;
    assert_eq!(status, StatusCode::OK);
    let sam_secret = enrol(s, &sam).await;
    // The same session is whole once the factor is set up.
    let (status, body) = call(s, "GET", "/api/v1/invoices", Some(&sam), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = login(s, "sam@acme.example", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A PIN does not stand in for the second factor.
    let pin = |totp: Option<String>| {
        let mut body = json!({"email": "sam@acme.example", "pin": "2468"});
        if let Some(code) = totp {
            body["totp"] = json!(code);
        }
        call(s, "POST", "/api/v1/auth/pin", None, Some(body))
    };
    assert_eq!(pin(None).await.0, StatusCode::UNAUTHORIZED);
    let next = code(&sam_secret, s.clock().unix() + 30);
    let (status, body) = pin(Some(next)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The changes are in the audit trail, which still verifies.
    let (_, events) = call(
        s,
        "GET",
        "/api/v1/audit-events?limit=200",
        Some(&owner_token),
        None,
    )
    .await;
    let actions: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "user.totp_enable").count(),
        2,
        "{actions:?}"
    );
    assert!(actions.contains(&"organization.require_totp"));
}

on_both_backends!(second_factor, a_rotated_key_still_opens_and_seals_again);

async fn a_rotated_key_still_opens_and_seals_again(backend: Backend) {
    const OLD: &str = "the key before rotation, 32 bytes or more";
    const NEW: &str = "the key after the rotation, 32 bytes or more";
    let before = [
        ("RATE_LIMIT_DISABLED", "true"),
        ("TOTP_ENCRYPTION_KEY", OLD),
    ];
    let server = test_support::require!(server(backend, &before).await);
    let token = owner(&server, "Acme", "olive@acme.example").await;
    let secret = enrol(&server.state, &token).await;
    let url = server.state.config().database_url.as_str().to_owned();
    // Each instance below is the server restarted with other keys, on the same database; a minute on, so
    // the code is of a step not used yet.
    let restarted = |vars: &'static [(&'static str, &'static str)]| {
        let url = url.clone();
        async move {
            let instance = support::server_at(&url, vars, None, None).await;
            instance
                .state
                .clock()
                .advance(std::time::Duration::from_secs(60));
            instance
        }
    };
    let sign_in = |s: &reference_server::AppState| {
        let now = code(&secret, s.clock().unix());
        let s = s.clone();
        async move { login(&s, "olive@acme.example", Some(&now)).await.0 }
    };

    // The new key alone does not open what the old one sealed.
    let new_only = restarted(&[
        ("RATE_LIMIT_DISABLED", "true"),
        ("TOTP_ENCRYPTION_KEY", NEW),
    ])
    .await;
    assert_eq!(sign_in(&new_only.state).await, StatusCode::UNAUTHORIZED);
    // With the old one as the previous key it does, and the row is sealed with the new key from then on.
    let rotated = restarted(&[
        ("RATE_LIMIT_DISABLED", "true"),
        ("TOTP_ENCRYPTION_KEY", NEW),
        ("TOTP_ENCRYPTION_KEY_PREVIOUS", OLD),
    ])
    .await;
    assert_eq!(sign_in(&rotated.state).await, StatusCode::OK);
    new_only
        .state
        .clock()
        .advance(std::time::Duration::from_secs(60));
    assert_eq!(
        sign_in(&new_only.state).await,
        StatusCode::OK,
        "sealed again with the new key"
    );
}
