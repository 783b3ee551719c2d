use lambda_http::{Error, run, service_fn, tracing};
use users_core::{TableNames, UserRepository, required_env};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let aws = users_core::load_aws_config().await;
    let users = UserRepository::new(aws_sdk_dynamodb::Client::new(&aws), TableNames::from_env())
        .with_erasure_markers(required_env("HISTORY_TABLE"));
    run(service_fn(|request| delete_user::handle(&users, request))).await
}
