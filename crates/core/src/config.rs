//! Configuration, read once at start-up from the environment: the physical table names, which
//! CloudFormation chooses and the template passes to each function.

/// The tables the HTTP functions use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub users: String,
    pub emails: String,
}

impl TableNames {
    /// Reads `USERS_TABLE` and `EMAILS_TABLE`.
    ///
    /// # Panics
    /// At start-up, if either variable is missing: the function cannot work without them.
    pub fn from_env() -> Self {
        Self {
            users: required_env("USERS_TABLE"),
            emails: required_env("EMAILS_TABLE"),
        }
    }
}

/// Reads a configuration variable that must be set; for use at start-up only.
///
/// # Panics
/// If the variable is missing or empty, naming it.
pub fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!("environment variable {name} must be set"),
    }
}
