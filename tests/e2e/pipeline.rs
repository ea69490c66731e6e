//! The end-to-end cases on the embedded adapters (SQLite store and queue).

use testkit::world::{World, WorldOptions};

use crate::concurrency_cases as concurrency;
use crate::pipeline_cases as cases;

async fn world() -> World {
    World::start(cases::tenants(), WorldOptions::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mapped_field_follows_each_tenants_own_tables() {
    cases::every_mapped_field_follows_each_tenants_own_tables(world().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_flow_both_ways_exactly_once_over_three_round_trips() {
    cases::comments_flow_both_ways_exactly_once_over_three_round_trips(world().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_and_reordered_webhooks_yield_one_ticket_and_one_note_each() {
    cases::repeated_and_reordered_webhooks_yield_one_ticket_and_one_note_each(world().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_id_resolves_to_the_configuration_items_company_or_is_reported() {
    cases::cluster_id_resolves_to_the_configuration_items_company_or_is_reported(world().await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psa_status_and_priority_reach_zendesk_through_the_reverse_tables_only_from_the_noc_queue()
{
    let world = World::start(cases::noc_tenant(), WorldOptions::default())
        .await
        .unwrap();
    cases::psa_status_and_priority_reach_zendesk_through_the_reverse_tables_only_from_the_noc_queue(world).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_costs_at_most_two_autotask_calls_and_an_echo_none() {
    // Concurrency slots kept far longer than the test, so the count does not
    // depend on the machine's pace between changes; the default hold's
    // figures are the benchmark's (`psa-bridge-bench --only cost`).
    let defaults = WorldOptions::default();
    let options = WorldOptions {
        autotask_budget: bridge::connectors::budget::AutotaskBudget {
            slot_idle_hold: std::time::Duration::from_secs(600),
            ..defaults.autotask_budget.clone()
        },
        ..defaults
    };
    let world = World::start(cases::tenants(), options).await.unwrap();
    cases::a_change_costs_at_most_two_autotask_calls_and_an_echo_none(world).await;
}

async fn concurrency_world() -> World {
    World::start(concurrency::spec(), concurrency::options())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_that_both_listed_before_writing_write_each_note_once() {
    concurrency::two_workers_that_both_listed_before_writing_write_each_note_once(
        concurrency_world().await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_died_after_a_write_is_replayed_without_duplicates() {
    concurrency::a_worker_that_died_after_a_write_is_replayed_without_duplicates(
        concurrency_world().await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stalled_past_its_lease_stops_before_its_next_write() {
    concurrency::a_worker_stalled_past_its_lease_stops_before_its_next_write(
        concurrency_world().await,
    )
    .await;
}
