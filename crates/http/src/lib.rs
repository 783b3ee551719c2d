//! The HTTP contract of the users API, between API Gateway and the domain: how a request's
//! method and body are checked, which errors a request can have, how every error maps to a
//! status code (in one place, [`ApiError::status`]) and how results become JSON responses.

mod error;
mod metrics;
mod request;
mod response;

pub use error::{ApiError, RequestError};
pub use metrics::{Operation, count_answer, metric_of};
pub use request::{
    MAX_BODY_BYTES, caller, deadline_of, json_object_body, log_caller, only_string_field,
    path_parameter, query_parameter, require_method,
};
pub use response::{error_response, respond};
