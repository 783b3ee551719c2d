use lambda_runtime::{Error, run, service_fn, tracing};
use user_stream::{StreamConsumer, WelcomeQueue};
use users_core::{HistoryRepository, required_env};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let aws = users_core::load_aws_config().await;
    let history = HistoryRepository::new(
        aws_sdk_dynamodb::Client::new(&aws),
        required_env("HISTORY_TABLE"),
    );
    let mut consumer = StreamConsumer::new(history);
    consumer.metrics.cold_start();
    // Set only when the stack sends welcome emails (a sender address is configured).
    if let Some(url) = std::env::var("WELCOME_QUEUE_URL")
        .ok()
        .filter(|url| !url.is_empty())
    {
        consumer = consumer.with_welcome(WelcomeQueue::new(aws_sdk_sqs::Client::new(&aws), url));
    }
    run(service_fn(|event| user_stream::handle(&consumer, event))).await
}
