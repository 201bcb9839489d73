//! Bearer-token authentication and scopes, checked before anything else.
//!
//! actix polls a handler's extractors together: a `web::Json` or `web::Query`
//! that fails would answer 400 while the token is still being looked up, and a
//! scope checked inside the handler comes after every extractor. So each
//! protected route is wrapped in one of the middlewares here ([`upload`],
//! [`consume`], [`admin`]), which authenticate the token and check the scope
//! before the route's extractors run: 401, then 403, then the request.
//! The handler gets the result as the [`Caller`] extractor.

use std::future::{ready, Ready};

use actix_web::{
    body::{EitherBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::header,
    middleware::Next,
    web, Error, FromRequest, HttpMessage, HttpRequest, ResponseError,
};
use claimcheck::tokens::{Scope, TokenInfo};

use crate::{error::ApiError, startup::AppState};

/// The authenticated caller, holding the scope its route requires.
#[derive(Debug, Clone)]
pub struct Caller(pub TokenInfo);

impl Caller {
    /// The caller's owner id.
    pub fn owner(&self) -> &str {
        &self.0.owner
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    /// The caller a middleware of this module authorized; a route without
    /// one is a bug, answered 500 rather than served unauthenticated.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(req.extensions().get::<Caller>().cloned().ok_or_else(|| {
            ApiError::Internal(format!("route {} has no authorization", req.path()))
        }))
    }
}

/// Requires a token with the `upload` scope.
pub async fn upload(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    authorize(Scope::Upload, req, next).await
}

/// Requires a token with the `consume` scope.
pub async fn consume(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    authorize(Scope::Consume, req, next).await
}

/// Requires a token with the `admin` scope.
pub async fn admin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    authorize(Scope::Admin, req, next).await
}

/// Authenticates the bearer token and checks `scope`; answers 401 or 403
/// itself, else stores the [`Caller`] and calls the route.
async fn authorize<B: MessageBody + 'static>(
    scope: Scope,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    match caller(&req, scope).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            Ok(next.call(req).await?.map_into_left_body())
        }
        // Answered here, inside the request's span and request id.
        Err(e) => Ok(req.into_response(e.error_response()).map_into_right_body()),
    }
}

async fn caller(req: &ServiceRequest, scope: Scope) -> Result<Caller, ApiError> {
    let raw = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))?;
    let info = state
        .tokens
        .authenticate(raw)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if !info.has(scope) {
        return Err(ApiError::Forbidden(scope.as_str()));
    }
    Ok(Caller(info))
}
