//! `GET /users/{id}`: answers 200 with the user, read strongly consistent.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use std::convert::Infallible;
use users_core::{Error, User, UserId, UserReader};
use users_http::ApiError;

/// The Lambda handler. Every outcome, error or not, is an HTTP response.
pub async fn handle(users: &UserReader, request: Request) -> Result<Response<Body>, Infallible> {
    Ok(users_http::respond(
        StatusCode::OK,
        get_user(users, &request).await,
    ))
}

async fn get_user(users: &UserReader, request: &Request) -> Result<User, ApiError> {
    users_http::require_method(request, Method::GET)?;
    users_http::log_caller(request);
    let id = UserId::parse(&users_http::path_parameter(request, "id")?)?;
    let user = users_http::deadline_of(request)
        .bound(users.get(id))
        .await?
        .ok_or(Error::UserNotFound(id))?;
    Ok(user)
}
