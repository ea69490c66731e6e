//! Lambda `worker`: the SQS event source hands it batches of sync jobs; it
//! answers with the records that failed (`ReportBatchItemFailures`), so Lambda
//! deletes the rest and only the failures come back.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    bridge_aws::init_lambda_tracing();
    // Clients, config and the connectors' HTTP pool once per cold start.
    let wiring = bridge_aws::wiring_from_env().await?;
    let worker = wiring.worker();
    let (worker, queue) = (&worker, wiring.queue.as_ref());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        // Failures are per record in the response, never an invocation error:
        // that would make Lambda retry the whole batch.
        Ok::<SqsBatchResponse, Error>(
            bridge_aws::lambda::handle_sqs_batch(worker, queue, event).await,
        )
    }))
    .await
}
