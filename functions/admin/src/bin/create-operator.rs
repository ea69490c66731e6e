//! `create-operator`: creates the admin console's first operator (or another
//! one) in the deployed stack's DynamoDB table.
//!
//! ```text
//! TABLE_NAME=psa-bridge-prod AWS_REGION=eu-west-1 create-operator ops@example.com
//! ```
//!
//! Reads the table, region, credentials and endpoint (`AWS_ENDPOINT_URL`)
//! from the environment as the Lambdas do. The password comes from
//! `PSA_BRIDGE_OPERATOR_PASSWORD` or else the first line of stdin, never
//! from the command line, where other users and shell history would see it.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context};
use clap::Parser;

const PASSWORD_VAR: &str = "PSA_BRIDGE_OPERATOR_PASSWORD";

/// Create an admin console operator in the stack's DynamoDB table.
#[derive(Debug, Parser)]
#[command(
    name = "create-operator",
    after_help = "Environment: TABLE_NAME (the stack's TableName output), AWS_REGION, \
                  AWS credentials as the AWS SDK finds them, optional AWS_ENDPOINT_URL. \
                  The password: PSA_BRIDGE_OPERATOR_PASSWORD, or else the first line of stdin."
)]
struct Args {
    /// The operator's email address (their login).
    email: String,
}

/// The password from the environment, or else the first line of stdin.
fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var(PASSWORD_VAR) {
        if !password.is_empty() {
            return Ok(password);
        }
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        // No echo control without another dependency: say so.
        eprint!("Password (visible as you type; or set {PASSWORD_VAR}): ");
        std::io::stderr().flush().ok();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password: set {PASSWORD_VAR} or pass it on stdin");
    }
    Ok(password)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = bridge_aws::console::operator_cli_config_from_env()?;
    let password = read_password()?;
    let sdk = bridge_aws::aws_config(None).await;
    // No mail is sent, so the console URL in mails does not matter here.
    let accounts = bridge_aws::console::admin_accounts(
        &sdk,
        &settings,
        settings.console_url.as_deref().unwrap_or_default(),
    );
    accounts
        .create_operator(&args.email, &password)
        .await
        .with_context(|| format!("creating operator {}", args.email))?;
    println!(
        "operator {} created in table {}; sign in at <ApiBaseUrl>/admin/login",
        args.email, settings.table_name
    );
    Ok(())
}
