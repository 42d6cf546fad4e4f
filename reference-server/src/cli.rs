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
        .map_err(|e| {
            StartError::Db(crate::db::DbError::Query(sqlx::Error::Protocol(
                e.to_string(),
            )))
        })?;
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
