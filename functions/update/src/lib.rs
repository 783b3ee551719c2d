//! `PATCH /users/{id} {"email": ...}`: changes a user's email, keeping emails unique, and answers
//! 200 with the user as it now is. The users table's stream then carries a MODIFY.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use std::convert::Infallible;
use users_core::{Email, User, UserId, UserRepository};
use users_http::ApiError;

/// The Lambda handler. Every outcome, error or not, is an HTTP response.
pub async fn handle(
    users: &UserRepository,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    Ok(users_http::respond(
        StatusCode::OK,
        update_user(users, &request).await,
    ))
}

async fn update_user(users: &UserRepository, request: &Request) -> Result<User, ApiError> {
    users_http::require_method(request, Method::PATCH)?;
    users_http::log_caller(request);
    let id = UserId::parse(&users_http::path_parameter(request, "id")?)?;
    let fields = users_http::json_object_body(request)?;
    let email = Email::parse(&users_http::only_string_field(fields, "email")?)?;
    let user = users_http::deadline_of(request)
        .bound(users.change_email(id, email))
        .await?;
    tracing::info!(user_id = %user.id, "user updated");
    Ok(user)
}
