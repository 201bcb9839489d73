//! The OpenAPI 3 description served at `/openapi.json`, generated from the
//! handlers' annotations and the types they exchange.

use actix_web::{get, HttpResponse};
use claimcheck::{
    db::{owners::OwnerUsage, ActorKind, AuditEntry, OwnerQuota, Quota, QuotaOverrides, Quotas},
    domain::ClaimStatus,
    tokens::{MintedToken, Scope, TokenInfo},
};
use utoipa::{
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
    Modify, OpenApi,
};

use crate::{
    routes::{
        admin,
        adoption::{self, downloads},
        audit, health, multipart, owners, tokens, uploads, webhooks,
    },
    tus,
    wire::{
        ClaimBody, ClaimPage, ClaimWithParts, InitMultipartRequest, ObjectBody, PartBody,
        PresignedPart, Problem, TokenPage,
    },
};

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
        webhooks::create,
        webhooks::list,
        webhooks::show,
        webhooks::remove,
        webhooks::retry,
        owners::show,
        owners::change,
        audit::list,
        tus::options,
        tus::create::create,
        tus::upload::head,
        tus::upload::patch,
        tus::upload::terminate,
    ),
    components(schemas(
        Problem, ClaimBody, ClaimStatus, ClaimWithParts, ClaimPage, PartBody, InitMultipartRequest,
        PresignedPart, TokenInfo, MintedToken, TokenPage, Scope, tokens::MintRequest,
        ObjectBody, adoption::ConsumeRequest, adoption::ConsumedObjects, adoption::DeleteItem,
        adoption::DeleteRequest, adoption::DeletesAccepted, downloads::DownloadUrlRequest,
        downloads::DownloadUrl, webhooks::WebhookRequest, webhooks::WebhookBody,
        owners::QuotaRequest, OwnerQuota, Quotas, QuotaOverrides, OwnerUsage, Quota,
        audit::AuditPage, AuditEntry, ActorKind
    )),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    security(()),
    responses((status = 200, description = "The OpenAPI 3 description")),
)]
#[get("/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
