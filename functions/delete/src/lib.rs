//! `POST /delete {"id": ...}`: deletes a user and answers 200 with the user as it was.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use std::convert::Infallible;
use users_core::{User, UserId, UserRepository};
use users_http::ApiError;

/// The Lambda handler. Every outcome, error or not, is an HTTP response.
pub async fn handle(
    users: &UserRepository,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    Ok(users_http::respond(
        StatusCode::OK,
        delete_user(users, &request).await,
    ))
}

async fn delete_user(users: &UserRepository, request: &Request) -> Result<User, ApiError> {
    users_http::require_method(request, Method::POST)?;
    users_http::log_caller(request);
    let fields = users_http::json_object_body(request)?;
    let id = UserId::parse(&users_http::only_string_field(fields, "id")?)?;
    let user = users_http::deadline_of(request)
        .bound(users.delete(id))
        .await?;
    tracing::info!(user_id = %user.id, "user deleted");
    Ok(user)
}
