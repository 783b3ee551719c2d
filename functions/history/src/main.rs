use lambda_http::{Error, run, service_fn, tracing};
use users_core::{HistoryRepository, Metrics, required_env};
use users_http::{Operation, count_answer};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let metrics = Metrics::from_env("user-history");
    metrics.cold_start();
    let aws = users_core::load_aws_config().await;
    let history = HistoryRepository::new(
        aws_sdk_dynamodb::Client::new(&aws),
        required_env("HISTORY_TABLE"),
    );
    run(service_fn(|request| {
        let (history, metrics) = (&history, &metrics);
        async move {
            let response = user_history::handle(history, request).await?;
            count_answer(metrics, Operation::Read, &response);
            Ok::<_, Error>(response)
        }
    }))
    .await
}
