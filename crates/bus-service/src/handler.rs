//! What a handler returns: an outcome, or an error that decides the
//! failure policy.

use std::fmt;

use bus_core::DecodeError;

/// What happened to a delivery once its handler returned successfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outcome {
    /// Processed: the runtime acks the delivery once every message the
    /// handler published is confirmed by the broker.
    #[default]
    Done,
    /// Kept for later: the service acks or nacks it itself with
    /// [`Context::ack`](crate::Context::ack) or
    /// [`Context::nack`](crate::Context::nack).
    Deferred,
}

/// Why a handler failed. It decides what happens to the delivery:
///
/// - [`HandlerError::InvalidPayload`]: dead-lettered at once, with an
///   EMERGENCY log, because a retry cannot fix it.
/// - [`HandlerError::Failed`] (and a panic): requeued once with an ALERT
///   log; on the redelivery, dead-lettered with an EMERGENCY "Giving up" log.
///
/// Any `std::error::Error` converts into `Failed` with `?`. Like
/// `anyhow::Error`, this type does not implement `std::error::Error` itself,
/// which is what makes that conversion possible.
pub enum HandlerError {
    /// The payload does not fit what the handler expects.
    InvalidPayload(DecodeError),
    /// Processing failed; it may succeed on a retry.
    Failed(Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl HandlerError {
    /// A processing failure with a message.
    pub fn msg(message: impl fmt::Display) -> HandlerError {
        HandlerError::Failed(message.to_string().into())
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> HandlerError {
        HandlerError::Failed(Box::new(error))
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerError::InvalidPayload(e) => write!(f, "invalid payload: {e}"),
            HandlerError::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerError::InvalidPayload(e) => f.debug_tuple("InvalidPayload").field(e).finish(),
            HandlerError::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

/// The result of a handler.
pub type HandlerResult = Result<Outcome, HandlerError>;

/// Anything a handler may return: `()`, an [`Outcome`], or a `Result` of
/// either with an error that converts into [`HandlerError`].
pub trait IntoHandlerResult {
    /// Converts into the runtime's handler result.
    fn into_handler_result(self) -> HandlerResult;
}

impl IntoHandlerResult for () {
    fn into_handler_result(self) -> HandlerResult {
        Ok(Outcome::Done)
    }
}

impl IntoHandlerResult for Outcome {
    fn into_handler_result(self) -> HandlerResult {
        Ok(self)
    }
}

impl<E: Into<HandlerError>> IntoHandlerResult for Result<(), E> {
    fn into_handler_result(self) -> HandlerResult {
        self.map(|()| Outcome::Done).map_err(Into::into)
    }
}

impl<E: Into<HandlerError>> IntoHandlerResult for Result<Outcome, E> {
    fn into_handler_result(self) -> HandlerResult {
        self.map_err(Into::into)
    }
}
