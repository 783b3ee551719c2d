//! `GET /users/{id}/history[?limit=N][&next=TOKEN]`: the changes the stream function recorded
//! for a user, oldest first, a page at a time. It still answers after the user was deleted:
//! keeping what happened is the point of the view. An unknown user has an empty history.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use std::convert::Infallible;
use users_core::{
    EpochSeconds, EventName, HistoryCursor, HistoryEntry, HistoryImage, HistoryRepository, UserId,
};
use users_http::{ApiError, RequestError};

/// Entries per page when the request does not say.
pub const DEFAULT_LIMIT: usize = 20;
/// The most entries one page may hold.
pub const MAX_LIMIT: usize = 100;

/// One page, as the API answers it.
#[derive(Debug, Serialize)]
pub struct HistoryPageBody {
    pub items: Vec<HistoryItem>,
    /// The token for the next page, or `null` on the last one.
    pub next: Option<String>,
}

/// One recorded change.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryItem {
    pub event_name: EventName,
    /// The stream record's sequence number, as DynamoDB Streams wrote it.
    pub sequence_number: String,
    /// When DynamoDB made the change: whole seconds since the Unix epoch (the stream's
    /// precision; a user's `timestamp` is in milliseconds).
    pub changed_at: EpochSeconds,
    /// The user before and after the change; once the user is deleted, without its email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_image: Option<HistoryImage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_image: Option<HistoryImage>,
}

impl From<HistoryEntry> for HistoryItem {
    fn from(entry: HistoryEntry) -> Self {
        // Stored zero-padded so that the sort key orders numerically; shown as the stream has it.
        let unpadded = entry.sequence_number.trim_start_matches('0');
        Self {
            event_name: entry.event_name,
            sequence_number: if unpadded.is_empty() {
                "0".into()
            } else {
                unpadded.into()
            },
            changed_at: entry.changed_at,
            old_image: entry.old_image,
            new_image: entry.new_image,
        }
    }
}

/// The Lambda handler. Every outcome, error or not, is an HTTP response.
pub async fn handle(
    history: &HistoryRepository,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    Ok(users_http::respond(
        StatusCode::OK,
        user_history(history, &request).await,
    ))
}

async fn user_history(
    history: &HistoryRepository,
    request: &Request,
) -> Result<HistoryPageBody, ApiError> {
    users_http::require_method(request, Method::GET)?;
    users_http::log_caller(request);
    let id = UserId::parse(&users_http::path_parameter(request, "id")?)?;
    let limit = match users_http::query_parameter(request, "limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or(RequestError::InvalidParameter {
                name: "limit",
                expected: "an integer from 1 to 100",
            })?,
    };
    let after = users_http::query_parameter(request, "next")
        .map(|token| {
            HistoryCursor::parse(&token).ok_or(RequestError::InvalidParameter {
                name: "next",
                expected: "the `next` token of a previous page",
            })
        })
        .transpose()?;
    let page = users_http::deadline_of(request)
        .bound(history.page(id, limit, after.as_ref()))
        .await?;
    Ok(HistoryPageBody {
        items: page.entries.into_iter().map(HistoryItem::from).collect(),
        next: page.next.map(|cursor| cursor.as_str().to_owned()),
    })
}
