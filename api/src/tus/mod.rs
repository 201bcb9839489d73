//! `/v1/tus`: the tus 1.0.0 resumable-upload protocol, a front-end over the
//! upload core like the REST routes. A tus upload is an upload claim
//! (`Uploads::start_resumable`), its bytes are appends at an offset
//! (`Uploads::append`), and its offset lives in PostgreSQL, so any pod
//! serves any request.
//!
//! Every request goes through [`gate`]: `X-HTTP-Method-Override`, the
//! protocol version (412), the token (401, 403; not for `OPTIONS`), and
//! `Tus-Resumable` on every answer. Errors are problem+json as elsewhere,
//! with tus's statuses (423 `locked`, 460 `checksum_mismatch`).

pub(crate) mod create;
pub mod headers;
pub(crate) mod upload;

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::{header::HeaderValue, Method},
    middleware::{from_fn, Next},
    web, Error, HttpResponse, ResponseError,
};
use claimcheck::uploads::ChecksumAlgorithm;

use crate::{auth, error::ApiError, startup::AppState};

/// The protocol version served.
pub const TUS_VERSION: &str = "1.0.0";
/// The extensions served.
pub const TUS_EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination,concatenation";

/// Registers `/v1/tus` and `/v1/tus/{id}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1/tus")
            .wrap(from_fn(gate))
            .service(
                web::resource("")
                    .route(web::post().to(create::create))
                    .route(web::method(Method::OPTIONS).to(options)),
            )
            .service(
                web::resource("/{id}")
                    .route(web::head().to(upload::head))
                    .route(web::patch().to(upload::patch))
                    .route(web::delete().to(upload::terminate))
                    .route(web::method(Method::OPTIONS).to(options)),
            ),
    );
}

/// What every tus request passes: the method override, the version check,
/// the token, and `Tus-Resumable` on the answer.
async fn gate(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    // For clients behind proxies that allow only GET and POST.
    if req.method() == Method::POST {
        let wanted = crate::body::header(req.request(), "x-http-method-override")
            .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok());
        if let Some(method) =
            wanted.filter(|m| [Method::PATCH, Method::HEAD, Method::DELETE].contains(m))
        {
            req.head_mut().method = method;
        }
    }
    let mut res = if req.method() == Method::OPTIONS {
        next.call(req).await?.map_into_boxed_body()
    } else if crate::body::header(req.request(), "tus-resumable") != Some(TUS_VERSION) {
        let refused = ApiError::PreconditionFailed(format!(
            "this server speaks tus {TUS_VERSION}: send `Tus-Resumable: {TUS_VERSION}`"
        ));
        let mut answer = refused.error_response();
        answer
            .headers_mut()
            .insert(name("tus-version"), HeaderValue::from_static(TUS_VERSION));
        req.into_response(answer).map_into_boxed_body()
    } else {
        auth::upload(req, next).await?.map_into_boxed_body()
    };
    res.headers_mut()
        .insert(name("tus-resumable"), HeaderValue::from_static(TUS_VERSION));
    Ok(res)
}

/// `OPTIONS /v1/tus`: what this server supports (no token needed).
#[utoipa::path(
    options,
    path = "/v1/tus",
    tag = "tus",
    security(()),
    responses((
        status = 204,
        description = "Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm",
    )),
)]
pub(crate) async fn options(state: web::Data<AppState>) -> HttpResponse {
    let algorithms: Vec<&str> = ChecksumAlgorithm::ALL.iter().map(|a| a.name()).collect();
    HttpResponse::NoContent()
        .insert_header(("Tus-Version", TUS_VERSION))
        .insert_header(("Tus-Extension", TUS_EXTENSIONS))
        .insert_header((
            "Tus-Max-Size",
            state.uploads.limits().max_upload_size.to_string(),
        ))
        .insert_header(("Tus-Checksum-Algorithm", algorithms.join(",")))
        .finish()
}

fn name(n: &'static str) -> actix_web::http::header::HeaderName {
    actix_web::http::header::HeaderName::from_static(n)
}

/// The URL of upload `id`: under `CLAIMCHECK_API_PUBLIC_URL` when set,
/// else the path alone (never built from the request's `Host`).
fn upload_url(state: &AppState, id: uuid::Uuid) -> String {
    let base = state
        .api_public_url
        .as_ref()
        .map(|u| u.as_str().trim_end_matches('/'))
        .unwrap_or("");
    format!("{base}/v1/tus/{id}")
}
