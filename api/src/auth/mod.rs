//! Bearer-token authentication and scopes, checked before anything else.
//!
//! actix polls a handler's extractors together: a `web::Json` or `web::Query`
//! that fails would answer 400 while the token is still being looked up, and a
//! scope checked inside the handler comes after every extractor. So each
//! protected route is wrapped in one of the middlewares here ([`upload`],
//! [`consume`], [`admin`]), which authenticate the token and check the scope
//! before the route's extractors run: 401, then 403, then the request.
//! The handler gets the result as the [`Caller`] extractor.
//!
//! A refused token is counted for the audit log ([`refusals`]), per token
//! prefix and minute; an expired token per token and minute.

pub mod refusals;

use std::future::{ready, Ready};

use actix_web::{
    body::{EitherBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::header,
    middleware::Next,
    web, Error, FromRequest, HttpMessage, HttpRequest, ResponseError,
};
use claimcheck::{
    db::{Actor, Adopter, AuditAction},
    tokens::{token_prefix, Authentication, Scope, TokenInfo},
};

use crate::{error::ApiError, observe, startup::AppState};

/// The authenticated caller, holding the scope its route requires.
#[derive(Debug, Clone)]
pub struct Caller(pub TokenInfo);

impl Caller {
    /// The caller's owner id.
    pub fn owner(&self) -> &str {
        &self.0.owner
    }

    /// The caller as the audit log names it, with this request's id.
    pub fn actor(&self) -> Actor {
        Actor::token(self.0.id, &self.0.owner).with_request_id(observe::request_id())
    }

    /// The caller as an adopter: its actor, and the owners it is bound to.
    pub fn adopter(&self) -> Adopter {
        let owners = self.0.owners.as_ref().map(|o| o.iter().cloned().collect());
        Adopter::new(self.actor()).for_owners(owners)
    }

    /// Whether the caller may act for `owner`'s claims and objects.
    pub fn acts_for(&self, owner: &str) -> bool {
        self.0.acts_for(owner)
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
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))?;
    let refused = |target: &str| {
        let actor = Actor::anonymous().with_request_id(observe::request_id());
        state
            .refusals
            .record(AuditAction::AuthRefused, target, actor);
        ApiError::Unauthorized
    };
    let raw = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| refused("(none)"))?;
    let info = match state.tokens.authenticate(raw).await? {
        Authentication::Valid(info) => info,
        Authentication::Expired(info) => {
            let actor = Actor::token(info.id, &info.owner).with_request_id(observe::request_id());
            let target = info.id.to_string();
            state
                .refusals
                .record(AuditAction::ExpiredTokenUsed, &target, actor);
            return Err(ApiError::Unauthorized);
        }
        Authentication::Revoked(_) | Authentication::Unknown => {
            return Err(refused(&token_prefix(raw)))
        }
    };
    if !info.has(scope) {
        return Err(ApiError::Forbidden(scope.as_str()));
    }
    Ok(Caller(info))
}
