//! `template.yaml` against the limits exactly-once rests on (`bridge::timing`):
//! a change to a timeout on either side that breaks the chain fails here, not
//! in production as a message handed to two workers at once.

use std::time::Duration;

use bridge::reconcile::SweepOptions;
use bridge::timing::{MAX_JOB_DURATION, PAIR_LEASE, REQUEST_TIMEOUT};
use yaml_rust2::{Yaml, YamlLoader};

/// How long Autotask and Zendesk wait for a webhook's answer.
const CALLER_TIMEOUT: Duration = Duration::from_secs(10);

fn template() -> Yaml {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml beside the workspace");
    YamlLoader::load_from_str(&text)
        .expect("template.yaml parses")
        .remove(0)
}

fn seconds(value: &Yaml, what: &str) -> Duration {
    let secs = value
        .as_i64()
        .unwrap_or_else(|| panic!("{what} is not a number of seconds: {value:?}"));
    Duration::from_secs(secs as u64)
}

/// A function's own `Timeout`, or the template's global one.
fn function_timeout(t: &Yaml, function: &str) -> Duration {
    let own = &t["Resources"][function]["Properties"]["Timeout"];
    if own.is_badvalue() {
        seconds(
            &t["Globals"]["Function"]["Timeout"],
            "Globals.Function.Timeout",
        )
    } else {
        seconds(own, function)
    }
}

#[test]
fn the_worker_outlives_its_longest_job() {
    let t = template();
    let worker = function_timeout(&t, "WorkerFunction");
    assert!(
        worker >= MAX_JOB_DURATION,
        "WorkerFunction Timeout {worker:?} < the longest job {MAX_JOB_DURATION:?}"
    );
    assert!(worker > REQUEST_TIMEOUT);
}

#[test]
fn the_queue_hides_a_message_longer_than_the_worker_and_the_lease_live() {
    let t = template();
    let worker = function_timeout(&t, "WorkerFunction");
    let visibility = seconds(
        &t["Resources"]["JobQueue"]["Properties"]["VisibilityTimeout"],
        "JobQueue VisibilityTimeout",
    );
    // Lambda's advice for SQS sources: six times the function's timeout, so
    // that retries of a throttled batch do not make the message visible again.
    assert!(
        visibility >= worker * 6,
        "VisibilityTimeout {visibility:?} < 6 × worker Timeout {worker:?}"
    );
    assert!(visibility > PAIR_LEASE + MAX_JOB_DURATION);
}

#[test]
fn ingest_answers_before_its_callers_give_up() {
    let t = template();
    for function in ["ZendeskWebhookFunction", "AutotaskCalloutFunction"] {
        assert!(
            !t["Resources"][function].is_badvalue(),
            "{function} is in the template"
        );
        let timeout = function_timeout(&t, function);
        assert!(
            timeout <= CALLER_TIMEOUT,
            "{function} Timeout {timeout:?} is longer than its callers wait"
        );
    }
}

#[test]
fn a_sweep_ends_before_the_next_one_is_due() {
    let t = template();
    let reconcile = function_timeout(&t, "ReconcileFunction");
    let options = SweepOptions::default();
    assert!(
        reconcile > options.tenant_timeout + REQUEST_TIMEOUT,
        "ReconcileFunction Timeout {reconcile:?} cannot finish a tenant's sweep"
    );
    assert!(
        reconcile < options.interval,
        "ReconcileFunction Timeout {reconcile:?} overlaps the next scheduled sweep"
    );
}

/// The asset function runs every 5 minutes with one slot: an invocation
/// that outlived the interval would make the next one wait or be dropped,
/// and one too short could not write a device before its deadline (its
/// runs stop `invocation_write_deadline`'s reserve before the end).
#[test]
fn an_asset_pass_ends_before_the_next_one_is_due() {
    let t = template();
    let function = &t["Resources"]["AssetSyncFunction"];
    assert_eq!(
        function["Metadata"]["BuildProperties"]["Binary"].as_str(),
        Some("reconcile"),
        "the reconcile binary, invoked with {{\"assets\": true}}"
    );
    let events = function["Properties"]["Events"].as_hash().expect("events");
    let schedules: Vec<_> = events
        .values()
        .map(|e| {
            let p = &e["Properties"];
            (
                p["Schedule"].as_str().unwrap_or_default().to_owned(),
                p["Input"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        schedules,
        [(
            "rate(5 minutes)".to_owned(),
            r#"{"assets": true}"#.to_owned()
        )]
    );
    let timeout = function_timeout(&t, "AssetSyncFunction");
    assert!(
        timeout < Duration::from_secs(300),
        "AssetSyncFunction Timeout {timeout:?} overlaps the next pass"
    );
    let reserve =
        crate::lambda::invocation_write_deadline(timeout.as_millis() as u64).timestamp_millis();
    assert!(
        reserve > 60_000,
        "AssetSyncFunction Timeout {timeout:?} leaves under a minute of writing"
    );
    // The sweep's function no longer carries the asset schedule.
    let sweep_events = t["Resources"]["ReconcileFunction"]["Properties"]["Events"]
        .as_hash()
        .expect("events");
    assert!(sweep_events
        .values()
        .all(|e| e["Properties"]["Input"].is_badvalue()));
}
