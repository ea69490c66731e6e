//! The end-to-end tests over the whole pipeline, as one test binary
//! (`cargo test -p psa-bridge-e2e --test e2e`; a filter picks modules, e.g.
//! `--test e2e chaos_aws`). The cases shared by the backends
//! (`pipeline_cases`, `concurrency_cases`, `chaos_cases`) run once on the
//! embedded adapters (`pipeline`, `chaos`) and once on the AWS adapters
//! against the local emulator (`pipeline_aws`, `chaos_aws`, over
//! `aws_backend`), which need `AWS_ENDPOINT_URL` (`bash infra/test.sh` sets it)
//! and fail saying so without it. `--skip aws` leaves those out.

mod assets;
mod aws_backend;
mod browser;
mod chaos;
mod chaos_aws;
mod chaos_cases;
mod concurrency_cases;
mod connectwise;
mod contract;
mod ingest_events;
mod ingest_rejections;
mod no_secrets_in_logs;
mod pipeline;
mod pipeline_aws;
mod pipeline_cases;
mod reconcile;
mod support;
