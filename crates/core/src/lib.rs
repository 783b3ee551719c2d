//! The users domain shared by every function: the `User` model and its validation, the table
//! layout, DynamoDB access, and the decoding of stream records into typed changes. It knows
//! nothing of HTTP (that is `users-http`), so the stream function links no HTTP stack.
//!
//! Functions never touch raw `AttributeValue` maps or attribute names: they go through the
//! repositories here and get typed values back. Every item is exported once, from the crate's
//! root; only the attribute names keep their module, [`table`].

mod backoff;
mod config;
mod deadline;
mod error;
mod history;
mod idempotency;
mod metrics;
mod model;
mod repository;
mod stream;
pub mod table;
mod welcome;

pub use backoff::Backoff;
pub use config::{TableNames, dynamodb_timeouts, load_aws_config, required_env};
pub use deadline::{ANSWER_MARGIN, Deadline};
pub use error::{BoxError, Error};
pub use history::{
    HistoryCursor, HistoryEntry, HistoryImage, HistoryPage, HistoryRepository,
    sortable_sequence_number,
};
pub use idempotency::{
    Attempt, Claim, DEFAULT_KEEP_FOR, IDEMPOTENCY_EXPIRES_AT, IDEMPOTENCY_KEY, IdempotencyStore,
};
pub use metrics::{DEFAULT_NAMESPACE, Metrics, Unit};
pub use model::{
    Email, EpochSeconds, InvalidEmail, InvalidUserId, MAX_EMAIL_LEN, Timestamp, User, UserId,
};
pub use repository::{UserReader, UserRepository};
pub use stream::{ChangeEvent, EventName, InvalidRecord, UserChange};
pub use welcome::WelcomeMessage;
