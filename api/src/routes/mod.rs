//! HTTP routes, one module per resource. Handlers stay thin: they parse,
//! call the library, and map the outcome to a response.

pub mod admin;
pub mod adoption;
pub mod audit;
pub mod health;
pub mod multipart;
pub mod owners;
pub mod tokens;
pub mod uploads;
pub mod webhooks;

use actix_web::web;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Multipart first: `/v1/uploads/multipart` must not be taken for an id.
    cfg.configure(health::configure)
        .configure(multipart::configure)
        .configure(uploads::configure)
        .configure(tokens::configure)
        .configure(admin::configure)
        .configure(webhooks::configure)
        .configure(owners::configure)
        .configure(audit::configure)
        .configure(adoption::configure)
        .configure(crate::tus::configure)
        .service(crate::openapi::openapi_json);
}
