//! Extractors whose rejections use the error shape (400, 413, 415, 422), never a bare body.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// JSON body.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = is_json(&req);
        let bytes = body_bytes(req, state).await?;
        check_json_body(is_json, &bytes)?;
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(r) => Err(json_rejection(&r)),
        }
    }
}

fn is_json(req: &Request) -> bool {
    req.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
        ct.starts_with("application/json") || (ct.starts_with("application/") && ct.contains("+json"))
    })
}

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<axum::body::Bytes, ApiError> {
    axum::body::Bytes::from_request(req, state).await.map_err(|r| {
        let status = r.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "bad_request" };
        ApiError::new(status, code, r.body_text())
    })
}

/// A JSON body's media type, and no NUL in its text.
fn check_json_body(is_json: bool, bytes: &[u8]) -> Result<(), ApiError> {
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected `Content-Type: application/json`",
        ));
    }
    refuse_nul(bytes)
}

/// Text may not hold NUL (U+0000), whatever the field: PostgreSQL cannot store it, and SQL
/// functions see a SQLite string only up to it. In JSON a NUL is always the escape `\u0000`
/// (raw control characters are not allowed in strings); one preceded by an even number of
/// backslashes is that escape, not an escaped backslash followed by `u0000`.
fn refuse_nul(bytes: &[u8]) -> Result<(), ApiError> {
    let nul = bytes.windows(6).enumerate().any(|(i, w)| {
        w == b"\\u0000" && bytes[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0
    });
    if nul {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "invalid body: text may not contain NUL (U+0000)",
        ));
    }
    Ok(())
}

fn json_rejection(r: &JsonRejection) -> ApiError {
    let status = r.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        _ => "bad_request",
    };
    ApiError::new(status, code, r.body_text())
}

/// Path parameters.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(Self(v)),
            Err(r) => Err(path_rejection(&r)),
        }
    }
}

fn path_rejection(r: &PathRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", r.body_text())
}

/// Query parameters.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Self(v)),
            Err(r) => Err(query_rejection(&r)),
        }
    }
}

fn query_rejection(r: &QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", r.body_text())
}

/// An optional JSON body: no body at all, or `null`, means `T::default()`.
pub struct ApiJsonOrDefault<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for ApiJsonOrDefault<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = is_json(&req);
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        check_json_body(is_json, &bytes)?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error(&mut de) {
            Ok(v) => Ok(Self(v)),
            Err(e) if e.is_syntax() || e.is_eof() => {
                Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_request", format!("malformed JSON: {e}")))
            }
            Err(e) => {
                Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", format!("invalid body: {e}")))
            }
        }
    }
}

fn serde_path_to_error<T: DeserializeOwned + Default>(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
) -> Result<T, serde_json::Error> {
    // The document describes these bodies as optional and nullable: `null` is "not given".
    let v = Option::<T>::deserialize(&mut *de)?.unwrap_or_default();
    de.end()?;
    Ok(v)
}

/// The name of the header carrying the permit an agent's write is made under.
pub const PERMIT_HEADER: &str = "codeframe-permit";

/// The `Codeframe-Permit: <permit id>` header, if present: the permit an agent's write (context,
/// flash save) is made under, which lets it through while a pause drains.
pub struct PermitHeader(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for PermitHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(PERMIT_HEADER) else { return Ok(Self(None)) };
        value.to_str().ok().and_then(|v| v.trim().parse::<i64>().ok()).map(|id| Self(Some(id))).ok_or_else(
            || {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "Codeframe-Permit must be a permit id (an integer)",
                )
            },
        )
    }
}
