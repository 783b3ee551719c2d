//! `POST /create {"email": ...}`: registers a user and answers 201 with it.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use std::convert::Infallible;
use users_core::{Email, Timestamp, User, UserRepository};
use users_http::ApiError;

/// The Lambda handler. Every outcome, error or not, is an HTTP response; the handler itself
/// never fails, so the runtime never turns a client's mistake into an invocation error.
pub async fn handle(
    users: &UserRepository,
    clock: fn() -> Timestamp,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    Ok(users_http::respond(
        StatusCode::CREATED,
        create_user(users, clock, &request).await,
    ))
}

async fn create_user(
    users: &UserRepository,
    clock: fn() -> Timestamp,
    request: &Request,
) -> Result<User, ApiError> {
    users_http::require_method(request, Method::POST)?;
    users_http::log_caller(request);
    let fields = users_http::json_object_body(request)?;
    let email = Email::parse(&users_http::only_string_field(fields, "email")?)?;
    let user = User::register(email, clock());
    users_http::deadline_of(request)
        .bound(users.create(&user))
        .await?;
    tracing::info!(user_id = %user.id, "user created");
    Ok(user)
}
