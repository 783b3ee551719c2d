use lambda_http::{Error, run, service_fn, tracing};
use users_core::{Metrics, UserReader, required_env};
use users_http::{Operation, count_answer};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let metrics = Metrics::from_env("get-user");
    metrics.cold_start();
    let aws = users_core::load_aws_config().await;
    // Reads the users table only (no EMAILS_TABLE: nothing here uses it).
    let users = UserReader::new(
        aws_sdk_dynamodb::Client::new(&aws),
        required_env("USERS_TABLE"),
    );
    run(service_fn(|request| {
        let (users, metrics) = (&users, &metrics);
        async move {
            let response = get_user::handle(users, request).await?;
            count_answer(metrics, Operation::Read, &response);
            Ok::<_, Error>(response)
        }
    }))
    .await
}
