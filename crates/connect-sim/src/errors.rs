//! Connect's error vocabulary and how it goes on the wire.
//!
//! REST-JSON errors carry the error code in the `x-amzn-ErrorType` header and the message in
//! a JSON body `{"Message": "..."}`; the HTTP status is the one the service model assigns.

/// The error shapes the simulator answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    InvalidRequest,
    InvalidParameter,
    ServiceQuotaExceeded,
    AccessDenied,
    ResourceNotFound,
    Throttling,
    InternalService,
    /// The request body is not the JSON the operation expects.
    Serialization,
    /// No Connect operation lives at this method and path.
    UnknownOperation,
}

impl ErrorKind {
    /// The HTTP status code from the Connect service model.
    pub(crate) fn status(self) -> u16 {
        match self {
            Self::InvalidRequest | Self::InvalidParameter | Self::Serialization => 400,
            Self::ServiceQuotaExceeded => 402,
            Self::AccessDenied => 403,
            Self::ResourceNotFound | Self::UnknownOperation => 404,
            Self::Throttling => 429,
            Self::InternalService => 500,
        }
    }

    /// The error code (`x-amzn-ErrorType`).
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "InvalidRequestException",
            Self::InvalidParameter => "InvalidParameterException",
            Self::ServiceQuotaExceeded => "ServiceQuotaExceededException",
            Self::AccessDenied => "AccessDeniedException",
            Self::ResourceNotFound => "ResourceNotFoundException",
            Self::Throttling => "ThrottlingException",
            Self::InternalService => "InternalServiceException",
            Self::Serialization => "SerializationException",
            Self::UnknownOperation => "UnknownOperationException",
        }
    }
}

/// A Connect error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    pub(crate) fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }

    pub(crate) fn service_quota_exceeded(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ServiceQuotaExceeded, message)
    }

    pub(crate) fn resource_not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceNotFound, message)
    }

    pub(crate) fn instance_not_found(id: &str) -> Self {
        Self::resource_not_found(format!("Instance {id} not found."))
    }

    pub(crate) fn throttled() -> Self {
        Self::new(ErrorKind::Throttling, "Rate exceeded")
    }

    pub(crate) fn access_denied() -> Self {
        Self::new(
            ErrorKind::AccessDenied,
            "User is not authorized to perform this action (simulated by the Connect simulator).",
        )
    }

    pub(crate) fn internal() -> Self {
        Self::new(
            ErrorKind::InternalService,
            "Request processing failed due to an internal error. Try again later.",
        )
    }
}
