//! The users domain shared by every function: the `User` model and its validation, the table
//! layout, DynamoDB access, the HTTP contract and the decoding of stream records.
//!
//! Functions never touch raw `AttributeValue` maps or attribute names: they go through the
//! repositories here and get typed values back.

pub mod error;
pub mod history;
pub mod http;
pub mod stream;
pub mod table;
pub mod user;
pub mod users;

pub use error::Error;
pub use history::{HistoryEntry, HistoryRepository};
pub use stream::{ChangeEvent, UserChange};
pub use table::TableNames;
pub use user::{Email, Timestamp, User, UserId};
pub use users::UserRepository;
