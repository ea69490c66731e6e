//! The chaos scenario (`chaos_cases.rs`) on the AWS adapters against the
//! local emulator: DynamoDB conditional writes, SQS FIFO receives and
//! visibility, Secrets Manager. Smaller than the embedded run (the emulator
//! answers each call in milliseconds, not microseconds) but with every fault
//! and the worker kill. Its counts go to `target/tmp/chaos-aws-report.txt`.
//! Run with `bash infra/test.sh -p psa-bridge-e2e --test e2e chaos_aws`.

use std::time::Duration;

use crate::aws_backend::AwsBackend;
use crate::chaos_cases as cases;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converges_exactly_once_after_chaos_and_one_sweep_on_aws() {
    // A killed worker's messages come back after 4 s; a fifth of all calls
    // failing needs room for a few dozen receives before the DLQ.
    let backend = AwsBackend::with_queue(40, Duration::from_secs(4));
    cases::converges_exactly_once_after_chaos_and_one_sweep(
        &backend,
        cases::Scale {
            tenants: 2,
            tickets_per_tenant: 9,
            comments_per_ticket: 3,
        },
        "chaos-aws-report.txt",
    )
    .await;
}
