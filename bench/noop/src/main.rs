//! The floor of the benchmark: what any Rust function on lambda_runtime costs before it does
//! any work of its own. Answers every event with `{}`.

use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    run(service_fn(|_event: LambdaEvent<Value>| async {
        Ok::<_, Error>(json!({}))
    }))
    .await
}
