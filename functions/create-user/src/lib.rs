//! `POST /create {"email": ...}`: registers a user and answers 201 with it.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use std::convert::Infallible;
use users_core::{Email, Error, Timestamp, User, UserRepository, http};

/// The Lambda handler. Every outcome, error or not, is an HTTP response; the handler itself
/// never fails, so the runtime never turns a client's mistake into an invocation error.
pub async fn handle(
    users: &UserRepository,
    clock: fn() -> Timestamp,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    Ok(http::respond(
        StatusCode::CREATED,
        create_user(users, clock, &request).await,
    ))
}

async fn create_user(
    users: &UserRepository,
    clock: fn() -> Timestamp,
    request: &Request,
) -> Result<User, Error> {
    let fields = http::json_object_body(request)?;
    let email = Email::parse(&http::only_string_field(fields, "email")?)?;
    let user = User::register(email, clock());
    users.create(&user).await?;
    tracing::info!(user_id = %user.id, "user created");
    Ok(user)
}
