//! `/v1/admin/webhooks` (admin): the receivers of events
//! (`docs/events.md`). The signing secret is answered once, at creation.

use actix_web::middleware::from_fn;
use actix_web::{delete, get, post, web, HttpResponse};
use claimcheck::db::{Endpoint, EventType, WebhookStore};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::{
    auth::{self, Caller},
    error::ApiError,
    startup::AppState,
};

/// Registers the routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(show)
        .service(remove)
        .service(retry);
}

/// `POST /v1/admin/webhooks`'s body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where events are POSTed (http or https).
    url: String,
    /// Event types (`upload.completed`, ...), or `*` for all.
    events: Vec<String>,
    /// What it is, for people.
    description: Option<String>,
}

/// A receiver, as answered.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookBody {
    /// Its id.
    id: Uuid,
    /// Where events are POSTed.
    url: String,
    /// The event types it gets, or `*`.
    events: Vec<String>,
    /// What it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// When it was registered.
    created_at: chrono::DateTime<chrono::Utc>,
    /// The signing secret (`whsec_...`): answered at creation only.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl WebhookBody {
    fn of(e: Endpoint, secret: Option<String>) -> Self {
        Self {
            id: e.id,
            url: e.url,
            events: e.events,
            description: e.description,
            created_at: e.created_at,
            secret,
        }
    }
}

/// `POST /v1/admin/webhooks`: registers a receiver.
#[utoipa::path(
    post,
    path = "/v1/admin/webhooks",
    request_body = WebhookRequest,
    responses(
        (status = 201, body = WebhookBody, description = "With its secret, shown this once"),
        (status = 400, body = crate::wire::Problem),
        (status = 401, body = crate::wire::Problem),
        (status = 403, body = crate::wire::Problem),
        (status = 503, body = crate::wire::Problem),
    ),
)]
#[post("/v1/admin/webhooks", wrap = "from_fn(auth::admin)")]
pub(crate) async fn create(
    caller: Caller,
    state: web::Data<AppState>,
    body: web::Json<WebhookRequest>,
) -> Result<HttpResponse, ApiError> {
    let WebhookRequest {
        url,
        events,
        description,
    } = body.into_inner();
    check_url(&url)?;
    check_events(&events)?;
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 500)
    {
        return Err(ApiError::InvalidRequest(
            "description: at most 500 characters".into(),
        ));
    }
    let (endpoint, secret) = WebhookStore::new(state.pool.clone())
        .create(&url, &events, description.as_deref(), &caller.actor())
        .await?;
    Ok(HttpResponse::Created().json(WebhookBody::of(endpoint, Some(secret))))
}

/// `GET /v1/admin/webhooks`: every receiver (no secrets).
#[utoipa::path(
    get,
    path = "/v1/admin/webhooks",
    responses(
        (status = 200, body = Vec<WebhookBody>),
        (status = 401, body = crate::wire::Problem),
        (status = 403, body = crate::wire::Problem),
    ),
)]
#[get("/v1/admin/webhooks", wrap = "from_fn(auth::admin)")]
pub(crate) async fn list(
    _caller: Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let all = WebhookStore::new(state.pool.clone()).list().await?;
    let bodies: Vec<WebhookBody> = all.into_iter().map(|e| WebhookBody::of(e, None)).collect();
    Ok(HttpResponse::Ok().json(bodies))
}

/// `GET /v1/admin/webhooks/{id}`: one receiver (no secret).
#[utoipa::path(
    get,
    path = "/v1/admin/webhooks/{id}",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = WebhookBody),
        (status = 401, body = crate::wire::Problem),
        (status = 403, body = crate::wire::Problem),
        (status = 404, body = crate::wire::Problem),
    ),
)]
#[get("/v1/admin/webhooks/{id}", wrap = "from_fn(auth::admin)")]
pub(crate) async fn show(
    _caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = endpoint_id(&id)?;
    match WebhookStore::new(state.pool.clone()).get(id).await? {
        Some(e) => Ok(HttpResponse::Ok().json(WebhookBody::of(e, None))),
        None => Err(ApiError::not_found("no such webhook")),
    }
}

/// `DELETE /v1/admin/webhooks/{id}`: removes a receiver and its deliveries.
#[utoipa::path(
    delete,
    path = "/v1/admin/webhooks/{id}",
    params(("id" = Uuid, Path)),
    responses(
        (status = 204),
        (status = 401, body = crate::wire::Problem),
        (status = 403, body = crate::wire::Problem),
        (status = 404, body = crate::wire::Problem),
    ),
)]
#[delete("/v1/admin/webhooks/{id}", wrap = "from_fn(auth::admin)")]
pub(crate) async fn remove(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = endpoint_id(&id)?;
    match WebhookStore::new(state.pool.clone())
        .delete(id, &caller.actor())
        .await?
    {
        true => Ok(HttpResponse::NoContent().finish()),
        false => Err(ApiError::not_found("no such webhook")),
    }
}

/// `POST /v1/admin/webhooks/{id}/retry`: its dead deliveries go again.
#[utoipa::path(
    post,
    path = "/v1/admin/webhooks/{id}/retry",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "How many went back: {\"retried\": n}"),
        (status = 401, body = crate::wire::Problem),
        (status = 403, body = crate::wire::Problem),
        (status = 404, body = crate::wire::Problem),
    ),
)]
#[post("/v1/admin/webhooks/{id}/retry", wrap = "from_fn(auth::admin)")]
pub(crate) async fn retry(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = endpoint_id(&id)?;
    let store = WebhookStore::new(state.pool.clone());
    if store.get(id).await?.is_none() {
        return Err(ApiError::not_found("no such webhook"));
    }
    let retried = store.retry_dead(Some(id), &caller.actor()).await?;
    Ok(HttpResponse::Ok().json(json!({"retried": retried})))
}

fn endpoint_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found("no such webhook"))
}

fn check_url(raw: &str) -> Result<(), ApiError> {
    let url = url::Url::parse(raw).map_err(|e| ApiError::InvalidRequest(format!("url: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || raw.len() > 2000 {
        return Err(ApiError::InvalidRequest(
            "url: an http or https URL with a host, at most 2000 characters".into(),
        ));
    }
    Ok(())
}

fn check_events(events: &[String]) -> Result<(), ApiError> {
    if events.is_empty() {
        return Err(ApiError::InvalidRequest(
            "events: name at least one type, or \"*\"".into(),
        ));
    }
    for e in events {
        if e != "*" && EventType::parse(e).is_none() {
            return Err(ApiError::InvalidRequest(format!(
                "events: unknown type `{e}`"
            )));
        }
    }
    Ok(())
}
