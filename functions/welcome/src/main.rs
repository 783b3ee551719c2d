use lambda_runtime::{Error, run, service_fn, tracing};
use users_core::{IdempotencyStore, Metrics, UserReader, required_env};
use welcome_user::{Mailer, Welcomer};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let metrics = Metrics::from_env("welcome-user");
    metrics.cold_start();
    let aws = users_core::load_aws_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let welcomer = Welcomer {
        users: UserReader::new(dynamodb.clone(), required_env("USERS_TABLE")),
        welcomes: IdempotencyStore::new(dynamodb, required_env("IDEMPOTENCY_TABLE")),
        mailer: Mailer::from_conf(&aws, &required_env("SENDER_ADDRESS")),
        metrics,
    };
    run(service_fn(|event| welcome_user::handle(&welcomer, event))).await
}
