//! Bearer-token authentication: the `Caller` extractor.

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use claimcheck::tokens::{Scope, TokenInfo};

use crate::{error::ApiError, startup::AppState};

/// The authenticated caller: the token's record.
#[derive(Debug, Clone)]
pub struct Caller(pub TokenInfo);

impl Caller {
    /// The caller's owner id if the token grants `scope`; 403 otherwise.
    pub fn require(&self, scope: Scope) -> Result<&str, ApiError> {
        if self.0.has(scope) {
            Ok(&self.0.owner)
        } else {
            Err(ApiError::Forbidden(scope.as_str()))
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let raw = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_owned());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let raw = raw.ok_or(ApiError::Unauthorized)?;
            let state =
                state.ok_or_else(|| ApiError::Internal("application state missing".into()))?;
            match state.tokens.authenticate(&raw).await? {
                Some(info) => Ok(Caller(info)),
                None => Err(ApiError::Unauthorized),
            }
        })
    }
}
