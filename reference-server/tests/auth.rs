//! Sign-in, sessions and tokens, end to end through the HTTP API, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)] // helpers of tests: a failure is a failed test

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{Backend, TestServer, call, server};

const PASSWORD: &str = "correct horse battery staple";

async fn register(server: &TestServer, org: &str, email: &str) -> Value {
    let (status, body) = call(
        &server.state,
        "POST",
        "/api/v1/auth/register",
        None,
        Some(json!({"organization_name": org, "name": "Olive Owner", "email": email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn login(server: &TestServer, email: &str, password: &str) -> (StatusCode, Value) {
    call(
        &server.state,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

fn refresh_token(tokens: &Value) -> &str {
    tokens["refresh_token"].as_str().unwrap()
}

async fn me(server: &TestServer, token: &str) -> StatusCode {
    call(&server.state, "GET", "/api/v1/users/me", Some(token), None)
        .await
        .0
}

async fn refresh(server: &TestServer, token: &str) -> (StatusCode, Value) {
    call(
        &server.state,
        "POST",
        "/api/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": token})),
    )
    .await
}

support::on_both_backends!(
    register_then_login_gives_tokens_that_open_protected_routes,
    unknown_account_and_wrong_password_get_the_same_answer,
    refresh_rotates_and_a_reused_token_revokes_the_whole_family,
    password_change_ends_the_other_sessions,
    idle_timeout_ends_a_session,
    sixth_pin_attempt_within_15_minutes_is_refused_whatever_the_source_until_the_owner_unlocks,
    logout_ends_this_session_and_logout_all_ends_every_session,
    expired_and_forged_tokens_are_refused,
    bad_bodies_get_problem_answers_and_write_nothing,
    another_tenants_user_is_not_found,
    failed_logins_are_limited_per_account_and_per_client_and_successes_are_free,
    the_account_limit_refuses_new_addresses_with_the_rate_limit_fields,
    refresh_tokens_are_stored_as_hashes_only,
    one_session_per_user_ends_the_older_session,
);

async fn failed_logins_are_limited_per_account_and_per_client_and_successes_are_free(
    backend: Backend,
) {
    let server = test_support::require!(server(backend, &[]).await);
    register(&server, "Acme", "olive@example.com").await;
    // Successful sign-ins charge nothing.
    for _ in 0..6 {
        assert_eq!(
            login(&server, "olive@example.com", PASSWORD).await.0,
            StatusCode::OK
        );
    }
    for _ in 0..5 {
        assert_eq!(
            login(&server, "Olive@Example.com", "wrong password here")
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, problem) = login(&server, "olive@example.com", PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the client has no attempts left, even with the right password"
    );
    assert_eq!(
        problem["type"],
        "https://iana.org/assignments/http-problem-types#quota-exceeded"
    );
    // The client address is spent too: another account from it is refused by the `auth` limit.
    let (status, _) = login(&server, "nobody@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

/// A sign-in from `ip`, as the connection shows it: the status, the headers and the JSON body.
async fn login_from(
    server: &TestServer,
    ip: u8,
    email: &str,
    password: &str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    support::call_from(
        &server.state,
        Some(std::net::SocketAddr::from(([198, 51, 100, ip], 40000))),
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await
}

async fn the_account_limit_refuses_new_addresses_with_the_rate_limit_fields(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    register(&server, "Acme", "olive@example.com").await;
    // Five failures, each from an address of its own: no client limit is reached, the account's is.
    for ip in 1..=5 {
        let (status, _, _) =
            login_from(&server, ip, "olive@example.com", "wrong password here").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, headers, problem) = login_from(&server, 6, "olive@example.com", PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the account has no attempts left, even with the right password from a new address"
    );
    assert_eq!(
        problem["type"],
        "https://iana.org/assignments/http-problem-types#quota-exceeded"
    );
    // The same fields as the limit layer's own 429s, naming the account's limit.
    let field = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert!(
        field("retry-after").is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)),
        "{headers:?}"
    );
    assert_eq!(field("cache-control").as_deref(), Some("no-store"));
    // Every policy that applied: the account's (the handler's), then the layer's.
    assert!(
        field("ratelimit-policy")
            .is_some_and(|p| p.starts_with("\"auth_account\";q=5;w=900, ")
                && p.contains("\"anonymous_minute\"")),
        "{headers:?}"
    );
    assert!(
        field("ratelimit").is_some_and(|r| r.starts_with("\"auth_account\";r=0;t=")),
        "{headers:?}"
    );
}

async fn register_then_login_gives_tokens_that_open_protected_routes(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let registered = register(&server, "Acme Pty Ltd", "Olive@Example.com").await;
    assert_eq!(registered["token_type"], "Bearer");
    assert_eq!(registered["expires_in"], 900);
    assert_eq!(refresh_token(&registered).len(), 64);
    assert_eq!(me(&server, access(&registered)).await, StatusCode::OK);

    let (status, tokens) = login(&server, "olive@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (status, body) = call(
        &server.state,
        "GET",
        "/api/v1/users/me",
        Some(access(&tokens)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["email"], "olive@example.com");
    assert_eq!(body["role"], "owner");

    assert_eq!(
        call(&server.state, "GET", "/api/v1/users/me", None, None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

async fn unknown_account_and_wrong_password_get_the_same_answer(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    register(&server, "Acme", "olive@example.com").await;
    let wrong_password = login(&server, "olive@example.com", "not the password at all").await;
    let unknown = login(&server, "nobody@example.com", PASSWORD).await;
    assert_eq!(wrong_password.0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password, unknown);
    assert_eq!(unknown.1["type"], "/problems/unauthorized");
}

async fn refresh_rotates_and_a_reused_token_revokes_the_whole_family(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let first = register(&server, "Acme", "olive@example.com").await;

    let (status, second) = refresh(&server, refresh_token(&first)).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_ne!(refresh_token(&second), refresh_token(&first));
    let (status, third) = refresh(&server, refresh_token(&second)).await;
    assert_eq!(status, StatusCode::OK);

    // The first token comes back: a thief or a replay. The whole session ends.
    assert_eq!(
        refresh(&server, refresh_token(&first)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&server, refresh_token(&third)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me(&server, access(&third)).await, StatusCode::UNAUTHORIZED);

    // Another session of the same user is untouched.
    let (_, other) = login(&server, "olive@example.com", PASSWORD).await;
    assert_eq!(me(&server, access(&other)).await, StatusCode::OK);
}

async fn password_change_ends_the_other_sessions(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let here = register(&server, "Acme", "olive@example.com").await;
    let (_, elsewhere) = login(&server, "olive@example.com", PASSWORD).await;

    let new_password = "a much longer and newer passphrase";
    let (status, body) = call(
        &server.state,
        "POST",
        "/api/v1/auth/password",
        Some(access(&here)),
        Some(json!({"current_password": PASSWORD, "new_password": new_password})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(me(&server, access(&here)).await, StatusCode::OK);
    assert_eq!(
        me(&server, access(&elsewhere)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&server, refresh_token(&elsewhere)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&server, "olive@example.com", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&server, "olive@example.com", new_password).await.0,
        StatusCode::OK
    );
}

async fn idle_timeout_ends_a_session(backend: Backend) {
    let server = test_support::require!(
        server(
            backend,
            &[("ACCESS_TOKEN_TTL", "1h"), ("SESSION_IDLE_TIMEOUT", "30m")]
        )
        .await
    );
    let tokens = register(&server, "Acme", "olive@example.com").await;
    server.state.clock().advance(Duration::from_secs(29 * 60));
    assert_eq!(
        me(&server, access(&tokens)).await,
        StatusCode::OK,
        "used within the idle timeout"
    );
    server.state.clock().advance(Duration::from_secs(29 * 60));
    assert_eq!(
        me(&server, access(&tokens)).await,
        StatusCode::OK,
        "each use restarts the idle timeout"
    );
    server.state.clock().advance(Duration::from_secs(31 * 60));
    assert_eq!(
        me(&server, access(&tokens)).await,
        StatusCode::UNAUTHORIZED,
        "idle for 31 minutes"
    );
    assert_eq!(
        refresh(&server, refresh_token(&tokens)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn sixth_pin_attempt_within_15_minutes_is_refused_whatever_the_source_until_the_owner_unlocks(
    backend: Backend,
) {
    // Rate limits on, as deployed: each attempt comes from a new address, so the per-address `auth` limit
    // never refuses one, and only the account's lock can refuse the sixth.
    let server = test_support::require!(server(backend, &[("ACCESS_TOKEN_TTL", "1h")]).await);
    let owner = register(&server, "Hotel", "owner@hotel.example").await;
    let (status, staff) = call(
        &server.state,
        "POST",
        "/api/v1/users",
        Some(access(&owner)),
        Some(json!({"email": "sam@hotel.example", "name": "Sam Staff", "role": "staff", "pin": "482913", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{staff}");
    // Every attempt comes from a client address of its own, as the connection shows it.
    let next_ip = std::sync::atomic::AtomicU8::new(1);
    let pin = |pin: &'static str| {
        let state = server.state.clone();
        let ip = next_ip.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            support::call_from(
                &state,
                Some(std::net::SocketAddr::from(([203, 0, 113, ip], 40000))),
                "POST",
                "/api/v1/auth/pin",
                None,
                Some(json!({"email": "sam@hotel.example", "pin": pin})),
            )
            .await
            .0
        }
    };
    assert_eq!(pin("482913").await, StatusCode::OK);
    // The lockout counts per account: the source address plays no part, so a new IP changes nothing.
    for _ in 0..5 {
        assert_eq!(pin("000000").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        pin("482913").await,
        StatusCode::UNAUTHORIZED,
        "the sixth attempt is refused even with the right PIN, from a new address"
    );
    server.state.clock().advance(Duration::from_secs(16 * 60));
    assert_eq!(
        pin("482913").await,
        StatusCode::UNAUTHORIZED,
        "a lock lasts until the owner lifts it"
    );
    assert_eq!(
        login(&server, "sam@hotel.example", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED,
        "the lock holds the account, its password too"
    );

    let staff_id = staff["id"].as_str().unwrap();
    let path = format!("/api/v1/users/{staff_id}/unlock-pin");
    assert_eq!(
        call(&server.state, "POST", &path, Some(access(&owner)), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(pin("482913").await, StatusCode::OK);
    assert_eq!(
        login(&server, "sam@hotel.example", PASSWORD).await.0,
        StatusCode::OK
    );
}

async fn logout_ends_this_session_and_logout_all_ends_every_session(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let a = register(&server, "Acme", "olive@example.com").await;
    let (_, b) = login(&server, "olive@example.com", PASSWORD).await;
    let (_, c) = login(&server, "olive@example.com", PASSWORD).await;

    assert_eq!(
        call(
            &server.state,
            "POST",
            "/api/v1/auth/logout",
            Some(access(&a)),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(me(&server, access(&a)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&server, access(&b)).await, StatusCode::OK);

    let (status, _) = call(
        &server.state,
        "POST",
        "/api/v1/auth/logout",
        Some(access(&b)),
        Some(json!({"all": true})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me(&server, access(&b)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&server, access(&c)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refresh(&server, refresh_token(&c)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn expired_and_forged_tokens_are_refused(backend: Backend) {
    let server = test_support::require!(server(backend, &[("SESSION_IDLE_TIMEOUT", "1h")]).await);
    let tokens = register(&server, "Acme", "olive@example.com").await;
    let token = access(&tokens);

    // Tampered payload with the original signature.
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged_payload = parts[1].chars().rev().collect::<String>();
    parts[1] = &forged_payload;
    assert_eq!(
        me(&server, &parts.join(".")).await,
        StatusCode::UNAUTHORIZED
    );
    // alg none: header {"alg":"none","typ":"at+jwt"} and no signature.
    let none = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.{}.",
        token.split('.').nth(1).unwrap()
    );
    assert_eq!(me(&server, &none).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&server, "not-a-token").await, StatusCode::UNAUTHORIZED);

    assert_eq!(me(&server, token).await, StatusCode::OK);
    server
        .state
        .clock()
        .advance(Duration::from_secs(15 * 60 + 31));
    assert_eq!(
        me(&server, token).await,
        StatusCode::UNAUTHORIZED,
        "expired past the 30 s leeway"
    );
}

async fn bad_bodies_get_problem_answers_and_write_nothing(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let cases = [
        json!({"organization_name": "", "name": "", "email": "no-at-sign", "password": "short"}),
        json!({"organization_name": 42, "name": "x", "email": "a@b.c", "password": PASSWORD}),
        json!({"organization_name": "x".repeat(10_000), "name": "x", "email": "a@b.example", "password": PASSWORD}),
        json!({"unexpected": true}),
        json!([1, 2, 3]),
    ];
    for body in cases {
        let (status, problem) = call(
            &server.state,
            "POST",
            "/api/v1/auth/register",
            None,
            Some(body.clone()),
        )
        .await;
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
            "{body}: {status}"
        );
        assert_eq!(problem["type"], "/problems/validation", "{problem}");
    }
    let (status, problem) = call(
        &server.state,
        "POST",
        "/api/v1/auth/register",
        None,
        Some(json!({"organization_name": "", "name": "", "email": "no-at-sign", "password": "short"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        problem["errors"].as_array().unwrap().len(),
        4,
        "every field at fault is reported: {problem}"
    );

    // Nothing was written: registering the address afterwards works.
    register(&server, "Acme", "a@b.example").await;
}

async fn another_tenants_user_is_not_found(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let a = register(&server, "Org A", "owner@a.example").await;
    let b = register(&server, "Org B", "owner@b.example").await;
    let (_, staff_b) = call(
        &server.state,
        "POST",
        "/api/v1/users",
        Some(access(&b)),
        Some(
            json!({"email": "staff@b.example", "name": "Staff B", "role": "staff", "pin": "1234"}),
        ),
    )
    .await;
    let path = format!(
        "/api/v1/users/{}/unlock-pin",
        staff_b["id"].as_str().unwrap()
    );
    assert_eq!(
        call(&server.state, "POST", &path, Some(access(&a)), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&server.state, "POST", &path, Some(access(&b)), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
}

async fn refresh_tokens_are_stored_as_hashes_only(backend: Backend) {
    let server = test_support::require!(server(backend, &[]).await);
    let tokens = register(&server, "Acme", "olive@example.com").await;
    let raw = refresh_token(&tokens).to_owned();
    let stored: Vec<Vec<u8>> =
        reference_server::with_pool!(server.state.db(), |pool| sqlx::query_scalar(
            "SELECT token_hash FROM refresh_tokens"
        )
        .fetch_all(pool)
        .await)
        .unwrap();
    let expected = {
        use sha2::Digest;
        sha2::Sha256::digest(raw.as_bytes()).to_vec()
    };
    assert_eq!(
        stored,
        vec![expected],
        "only the SHA-256 of the token is kept"
    );
}

async fn one_session_per_user_ends_the_older_session(backend: Backend) {
    let server = test_support::require!(server(backend, &[("ONE_SESSION_PER_USER", "true")]).await);
    let first = register(&server, "Acme", "olive@example.com").await;
    assert_eq!(me(&server, access(&first)).await, StatusCode::OK);
    let (status, second) = login(&server, "olive@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me(&server, access(&first)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&server, access(&second)).await, StatusCode::OK);
}
