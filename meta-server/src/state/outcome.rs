//! What a topic's apply function returns: an answer, a rejection or a
//! storage failure, kept apart so `?` works on both kinds of error.
//!
//! A rejection is a replicated value (every node refuses alike and the
//! command changes nothing); a storage failure stops the state machine.
//! Only `apply` tells them apart (see [`super::apply::apply`]).

use super::commands::{MetaError, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The command is refused: answered as [`Response::Err`].
    #[error(transparent)]
    Rejected(#[from] MetaError),
    /// The DB failed (or held something undecodable).
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

/// What applying one command gives.
pub type Outcome = Result<Response, ApplyError>;

/// Refuses the command with `e`.
pub fn reject<T>(e: MetaError) -> Result<T, ApplyError> {
    Err(ApplyError::Rejected(e))
}

/// Refuses the command as an invalid argument.
pub fn invalid<T>(why: impl Into<String>) -> Result<T, ApplyError> {
    reject(MetaError::InvalidArgument(why.into()))
}

/// Refuses a step of a rotation, saying why.
pub fn refused<T>(why: String) -> Result<T, ApplyError> {
    reject(MetaError::RotationRefused(why))
}
