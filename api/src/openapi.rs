//! The OpenAPI 3 description served at `/openapi.json`, generated from the
//! handlers' annotations and the types they exchange.

use actix_web::{get, HttpResponse};
use claimcheck::{
    domain::{Claim, ClaimStatus, RegistryObject},
    tokens::{MintedToken, Scope, TokenInfo},
    uploads::{InitMultipart, PartReceipt},
};
use serde::Serialize;
use utoipa::{
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
    Modify, OpenApi, ToSchema,
};

use crate::routes::{
    admin,
    adoption::{self, downloads},
    health, multipart, tokens, uploads,
};

/// An error (RFC 9457 problem details) with claimcheck's stable `code`.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    pub r#type: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// Stable: invalid_request, unauthorized, forbidden, not_found, conflict,
    /// expired, length_required, too_large, unsupported_media_type,
    /// checksum_mismatch, too_many_pending_uploads, unavailable.
    pub code: String,
    /// What went wrong, for people.
    pub detail: String,
    /// 409 at complete: the parts still missing.
    pub missing_parts: Option<Vec<u32>>,
    /// 404 at consume: the keys not found.
    pub missing: Option<Vec<String>>,
    /// The request's id (its `X-Request-Id`), under which the API logged
    /// the cause of a 5xx.
    pub request_id: Option<String>,
}

/// A claim with the parts received so far.
#[derive(Serialize, ToSchema)]
pub struct ClaimWithParts {
    /// The claim.
    #[serde(flatten)]
    pub claim: Claim,
    /// Parts received, by number.
    pub parts: Vec<PartReceipt>,
}

/// A page of the caller's uploads.
#[derive(Serialize, ToSchema)]
pub struct ClaimPage {
    /// Newest first.
    pub items: Vec<Claim>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Where to PUT a part straight to S3.
#[derive(Serialize, ToSchema)]
pub struct PresignedPart {
    /// The URL, signature included.
    pub url: String,
    /// Always PUT.
    pub method: String,
    /// Headers to send as they are.
    pub headers: std::collections::BTreeMap<String, String>,
    /// When the URL stops working.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Every token's record.
#[derive(Serialize, ToSchema)]
pub struct TokenPage {
    /// Newest first.
    pub items: Vec<TokenInfo>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "claimcheck", description = "Horizontally scaled uploads with claims, adoption and a durable delete queue."),
    paths(
        health::healthz,
        health::readyz,
        uploads::create,
        uploads::list,
        uploads::show,
        uploads::discard,
        multipart::init,
        multipart::put_part,
        multipart::presign,
        multipart::complete,
        tokens::mint,
        tokens::list,
        tokens::revoke,
        adoption::consume,
        adoption::show_object,
        adoption::schedule_deletes,
        downloads::download_url,
        downloads::serve_file,
        openapi_json,
        admin::queue,
        admin::retry_dead,
        admin::metrics,
    ),
    components(schemas(
        Problem, Claim, ClaimStatus, ClaimWithParts, ClaimPage, PartReceipt, InitMultipart,
        PresignedPart, TokenInfo, MintedToken, TokenPage, Scope, tokens::MintRequest,
        RegistryObject, adoption::ConsumeRequest, adoption::ConsumedObjects, adoption::DeleteItem,
        adoption::DeleteRequest, adoption::DeletesAccepted, downloads::DownloadUrlRequest,
        downloads::DownloadUrl
    )),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/openapi.json", security(()), responses((status = 200, description = "The OpenAPI 3 description")))]
#[get("/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
