//! The maintenance subcommands of the binary.

use std::io::Write;
use std::process::ExitCode;

use crate::config::Config;
use crate::domain::audit;
use crate::{StartError, open_database};

/// `reference-server audit verify`: one line per organization, then a summary; exit 1 if any chain is broken.
///
/// # Errors
///
/// When the database cannot be opened or read.
pub async fn audit_verify(config: &Config) -> Result<ExitCode, StartError> {
    if config.audit_chain_key_generated {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "error: AUDIT_CHAIN_KEY: must be set to verify the chains written with it"
        );
        return Ok(ExitCode::FAILURE);
    }
    let db = open_database(config).await?;
    let reports = audit::verify(&db, config.audit_chain_key.expose())
        .await
        .map_err(crate::db::DbError::Query)?;
    let mut out = std::io::stdout().lock();
    let mut broken = 0usize;
    for report in &reports {
        if report.is_intact() {
            let _ = writeln!(
                out,
                "ok      organization {}: {} events",
                report.organization_id, report.events
            );
        } else {
            broken = broken.saturating_add(1);
            for problem in &report.problems {
                let _ = writeln!(
                    out,
                    "BROKEN  organization {}: {problem}",
                    report.organization_id
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "{} organizations checked, {broken} with a broken chain",
        reports.len()
    );
    db.close().await;
    Ok(if broken == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `reference-server integrity run`: audits every organization, one line each; exit 1 if any deviates.
///
/// # Errors
///
/// When the database cannot be opened or the audit cannot run.
pub async fn integrity_run(config: Config) -> Result<ExitCode, StartError> {
    let db = open_database(&config).await?;
    let state = crate::AppState::new(config, db);
    let runs = crate::domain::integrity::run_all(&state)
        .await
        .map_err(job_failed)?;
    let mut out = std::io::stdout().lock();
    let mut deviating = 0usize;
    for run in &runs {
        if run.status != "clean" {
            deviating = deviating.saturating_add(1);
        }
        let _ = writeln!(
            out,
            "{:<10} organization {}: {} deviations",
            run.status, run.organization_id, run.deviations
        );
    }
    let _ = writeln!(
        out,
        "{} organizations audited, {deviating} with deviations",
        runs.len()
    );
    state.db().close().await;
    Ok(if deviating == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A job that could not run: reported like a database failure (it is one, or a stored row it cannot read).
fn job_failed(e: impl std::fmt::Display) -> StartError {
    StartError::Db(crate::db::DbError::Query(sqlx::Error::Protocol(
        e.to_string(),
    )))
}

/// `reference-server retention run`: applies retention now and prints what it did.
///
/// # Errors
///
/// When the database cannot be opened or retention cannot run.
pub async fn retention_run(config: Config) -> Result<ExitCode, StartError> {
    let db = open_database(&config).await?;
    let state = crate::AppState::new(config, db);
    let report = crate::domain::retention::run(&state)
        .await
        .map_err(job_failed)?;
    let _ = writeln!(
        std::io::stdout().lock(),
        "retention applied: {} idempotency records and {} ended sessions ({} refresh tokens) deleted, \
         {} closed invoices past retention pseudonymized",
        report.idempotency_keys,
        report.sessions,
        report.refresh_tokens,
        report.invoices_pseudonymized
    );
    state.db().close().await;
    Ok(ExitCode::SUCCESS)
}

/// `reference-server create-owner`: registers an organization and its owner, reading the password from the
/// first line of standard input (so it never shows in a process list or a shell history).
///
/// # Errors
///
/// When the database cannot be opened.
pub async fn create_owner(
    config: Config,
    organization_name: String,
    name: String,
    email: String,
) -> Result<ExitCode, StartError> {
    let mut password = String::new();
    if std::io::stdin().read_line(&mut password).is_err() {
        let _ = writeln!(
            std::io::stderr(),
            "error: cannot read the password from standard input"
        );
        return Ok(ExitCode::FAILURE);
    }
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    let db = open_database(&config).await?;
    let state = crate::AppState::new(config, db);
    let registration = crate::domain::identity::Registration {
        organization_name,
        name,
        email,
        password,
    };
    let outcome = crate::domain::identity::register(&state, registration).await;
    state.db().close().await;
    match outcome {
        Ok(_) => {
            let _ = writeln!(
                std::io::stdout(),
                "created the organization and its owner; sign in with POST /api/v1/auth/login"
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(crate::error::AppError::Validation(errors)) => {
            let mut err = std::io::stderr().lock();
            for e in errors {
                let _ = writeln!(
                    err,
                    "error: {} {}",
                    e.path.trim_start_matches('/'),
                    e.message
                );
            }
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
