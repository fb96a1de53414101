//! The error vocabulary of Connect and STS and how it goes on the wire.
//!
//! Connect (REST-JSON) errors carry the error code in the `x-amzn-ErrorType` header and the
//! message in a JSON body `{"Message": "..."}`; STS (query protocol) errors are an XML
//! `ErrorResponse`. The HTTP status is the one the service model assigns.

/// The wire protocol of a request, which decides how its errors are spelt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Connect: REST-JSON.
    RestJson,
    /// STS: the query protocol with XML answers.
    Query,
}

/// The error shapes the simulator answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    InvalidRequest,
    InvalidParameter,
    ServiceQuotaExceeded,
    AccessDenied,
    ResourceNotFound,
    /// Connect: what the request would create already exists.
    ResourceConflict,
    /// Connect: the resource is not in a state the operation can work with yet.
    ResourceNotReady,
    Throttling,
    InternalService,
    /// The request body is not the JSON the operation expects.
    Serialization,
    /// No Connect operation lives at this method and path.
    UnknownOperation,
    /// The request carries no SigV4 authentication (only with `requireAuthentication`).
    MissingAuthenticationToken,
    /// An `Authorization` header that names no credential.
    IncompleteSignature,
    /// STS: a parameter breaks its constraints.
    Validation,
    /// STS: the session policy is not a JSON policy document.
    MalformedPolicyDocument,
    /// STS: an `Action` the simulator does not serve.
    InvalidAction,
    /// STS: no `Action` at all.
    MissingAction,
}

impl ErrorKind {
    /// The HTTP status code and error code in `protocol`.
    pub(crate) fn wire(self, protocol: Protocol) -> (u16, &'static str) {
        match protocol {
            Protocol::RestJson => (self.status(), self.code()),
            Protocol::Query => match self {
                Self::AccessDenied => (403, "AccessDenied"),
                Self::Throttling => (400, "Throttling"),
                Self::InternalService => (500, "InternalFailure"),
                Self::MissingAuthenticationToken => (403, "MissingAuthenticationToken"),
                Self::IncompleteSignature => (400, "IncompleteSignature"),
                Self::Validation
                | Self::InvalidRequest
                | Self::InvalidParameter
                | Self::Serialization => (400, "ValidationError"),
                Self::MalformedPolicyDocument => (400, "MalformedPolicyDocument"),
                Self::InvalidAction | Self::UnknownOperation => (400, "InvalidAction"),
                Self::MissingAction => (400, "MissingAction"),
                Self::ServiceQuotaExceeded => (400, "LimitExceeded"),
                Self::ResourceNotFound => (404, "NoSuchEntity"),
                Self::ResourceConflict | Self::ResourceNotReady => (409, "EntityAlreadyExists"),
            },
        }
    }

    /// The HTTP status code from the Connect service model.
    pub(crate) fn status(self) -> u16 {
        match self {
            Self::InvalidRequest
            | Self::InvalidParameter
            | Self::Serialization
            | Self::IncompleteSignature
            | Self::Validation
            | Self::MalformedPolicyDocument
            | Self::InvalidAction
            | Self::MissingAction => 400,
            Self::ServiceQuotaExceeded => 402,
            Self::AccessDenied | Self::MissingAuthenticationToken => 403,
            Self::ResourceNotFound | Self::UnknownOperation => 404,
            Self::ResourceConflict | Self::ResourceNotReady => 409,
            Self::Throttling => 429,
            Self::InternalService => 500,
        }
    }

    /// The Connect error code (`x-amzn-ErrorType`).
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "InvalidRequestException",
            Self::InvalidParameter => "InvalidParameterException",
            Self::ServiceQuotaExceeded => "ServiceQuotaExceededException",
            Self::AccessDenied => "AccessDeniedException",
            Self::ResourceNotFound => "ResourceNotFoundException",
            Self::ResourceConflict => "ResourceConflictException",
            Self::ResourceNotReady => "ResourceNotReadyException",
            Self::Throttling => "ThrottlingException",
            Self::InternalService => "InternalServiceException",
            Self::Serialization => "SerializationException",
            Self::UnknownOperation => "UnknownOperationException",
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::IncompleteSignature => "IncompleteSignatureException",
            Self::Validation => "ValidationException",
            Self::MalformedPolicyDocument => "MalformedPolicyDocument",
            Self::InvalidAction => "InvalidAction",
            Self::MissingAction => "MissingAction",
        }
    }
}

/// A Connect or STS error answer.
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

    pub(crate) fn resource_conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceConflict, message)
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

    /// What AWS answers a request without any authentication.
    pub(crate) fn missing_authentication(protocol: Protocol) -> Self {
        let message = match protocol {
            Protocol::RestJson => "Missing Authentication Token",
            Protocol::Query => "Request is missing Authentication Token",
        };
        Self::new(ErrorKind::MissingAuthenticationToken, message)
    }
}
