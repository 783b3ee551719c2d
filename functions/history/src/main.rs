use lambda_http::{Error, run, service_fn, tracing};
use users_core::{HistoryRepository, required_env};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let aws = users_core::load_aws_config().await;
    let history = HistoryRepository::new(
        aws_sdk_dynamodb::Client::new(&aws),
        required_env("HISTORY_TABLE"),
    );
    run(service_fn(|request| {
        user_history::handle(&history, request)
    }))
    .await
}
