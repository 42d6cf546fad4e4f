//! `reference-server`: serves the finance backend (the default), or runs one of its maintenance commands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use reference_server::config::Config;

/// The reference finance backend. Configuration comes from the environment (see the README).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (what runs when no command is given).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Create an organization and its owner (the password is read from standard input, never from arguments).
    CreateOwner {
        /// The organization's name.
        #[arg(long)]
        organization: String,
        /// The owner's name.
        #[arg(long)]
        name: String,
        /// The owner's email (their sign-in name).
        #[arg(long)]
        email: String,
    },
    /// The integrity audit of invoices and journals.
    Integrity {
        #[command(subcommand)]
        command: IntegrityCommand,
    },
    /// Retention: expired idempotency records and ended sessions, counterparties of closed invoices older
    /// than RETENTION_YEARS (financial records themselves are kept).
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
}

#[derive(Debug, Subcommand)]
enum RetentionCommand {
    /// Apply retention now (the server also does it daily) and print what was done.
    Run,
}

#[derive(Debug, Subcommand)]
enum IntegrityCommand {
    /// Audit every organization now, store the runs; exit 1 if any deviation is open.
    Run,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute every organization's audit chain with AUDIT_CHAIN_KEY; exit 1 if any was tampered with.
    Verify,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let _logs = match reference_server::logging::init(&config) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: cannot set up logging: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => reference_server::run(config)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Migrate => reference_server::open_database(&config)
                .await
                .map(|_| ExitCode::SUCCESS)
                .map_err(Into::into),
            Command::Audit {
                command: AuditCommand::Verify,
            } => reference_server::cli::audit_verify(&config).await,
            Command::CreateOwner {
                organization,
                name,
                email,
            } => reference_server::cli::create_owner(config, organization, name, email).await,
            Command::Integrity {
                command: IntegrityCommand::Run,
            } => reference_server::cli::integrity_run(config).await,
            Command::Retention {
                command: RetentionCommand::Run,
            } => reference_server::cli::retention_run(config).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %e, "stopped with an error");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
