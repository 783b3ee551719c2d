use lambda_http::{Error, run, service_fn, tracing};
use users_core::{Metrics, TableNames, Timestamp, UserRepository};
use users_http::{Operation, count_answer};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let metrics = Metrics::from_env("create-user");
    metrics.cold_start();
    let aws = users_core::load_aws_config().await;
    let users = UserRepository::new(aws_sdk_dynamodb::Client::new(&aws), TableNames::from_env());
    run(service_fn(|request| {
        let (users, metrics) = (&users, &metrics);
        async move {
            let response = create_user::handle(users, Timestamp::now, request).await?;
            count_answer(metrics, Operation::Create, &response);
            Ok::<_, Error>(response)
        }
    }))
    .await
}
