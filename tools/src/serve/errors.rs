//! Errors as OpenAI sends them: a status code and `{"error": {"message", "type", "param",
//! "code"}}`, so OpenAI clients raise their usual exceptions (`BadRequestError` for 400,
//! `AuthenticationError` for 401...). Every message says what was wrong and what to send
//! instead; none repeats the request's text.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The request field at fault, e.g. `input`.
    pub param: Option<&'static str>,
    /// A machine-readable code, e.g. `invalid_api_key`.
    pub code: Option<&'static str>,
    /// Seconds for a `Retry-After` header (503 when the queue is full).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400: the request cannot be served as sent.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 400 blaming one field.
    pub fn bad_param(param: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            param: Some(param),
            ..ApiError::bad_request(message)
        }
    }

    /// 401: no or wrong API key.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError {
            code: Some("invalid_api_key"),
            ..ApiError::new(StatusCode::UNAUTHORIZED, message)
        }
    }

    /// 404: no such route.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 405: the route exists with another method.
    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, message)
    }

    /// 413: the body is over `--max-request-bytes`.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the request body is over the server's limit of {limit} bytes (--max-request-bytes); send fewer or shorter inputs per request"))
    }

    /// 503 with `Retry-After`: the queue is full or the server is stopping.
    pub fn overloaded(message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(1),
            code: Some("overloaded"),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// 408: the request took longer than `--request-timeout` (a slow body, or a long queue).
    pub fn timeout(limit: std::time::Duration) -> ApiError {
        ApiError::new(StatusCode::REQUEST_TIMEOUT, format!("the request was not complete within the server's {} s (--request-timeout); send it faster, or fewer inputs per request", limit.as_secs_f64()))
    }

    /// 500: a failure that is not the client's fault.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// OpenAI's `type` for this status.
    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            500..=599 => "server_error",
            _ => "invalid_request_error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"message": self.message, "type": self.kind(), "param": self.param, "code": self.code}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
