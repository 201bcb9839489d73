//! The upload page (`web/`: Uppy's Dashboard and tus plugin, bundled by
//! esbuild into static files): served at `/` by `dev`, and by `serve` only
//! when `CLAIMCHECK_WEB_DIR` names the build.
//!
//! The files are read once at start and served from memory: a handful of
//! small files, no path from a request ever reaches the filesystem, and a
//! directory that was never built answers a page saying how to build it
//! instead of failing the start.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use actix_web::{
    http::{header, StatusCode},
    web, HttpResponse, HttpResponseBuilder,
};
use bytes::Bytes;

use crate::error::ApiError;

/// Every answer of the page's routes carries it. Scripts and styles come
/// from this origin only (the build inlines none), and so do connections
/// (the page talks to `/v1/tus` and `/v1/uploads` on the API that served
/// it; it never PUTs to presigned S3 URLs, so the store's origin is not
/// needed). `blob:`/`data:` images are Uppy's thumbnails and icons.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// One built file, kept in memory.
pub struct Asset {
    content_type: &'static str,
    body: Bytes,
}

/// The page as found at start.
pub enum WebPage {
    /// `index.html` and the files under `assets/`.
    Built {
        /// The page itself.
        index: Bytes,
        /// `assets/{name}` by name.
        assets: HashMap<String, Asset>,
    },
    /// The directory holds no build: `/` says how to make one.
    Missing {
        /// The directory looked in.
        dir: PathBuf,
        /// What was wrong with it.
        why: String,
    },
}

impl WebPage {
    /// Reads the build in `dir` (`index.html`, `assets/*.{js,css,map}`).
    pub fn load(dir: &Path) -> Self {
        match Self::read(dir) {
            Ok(page) => page,
            Err(e) => WebPage::Missing {
                dir: dir.to_owned(),
                why: e.to_string(),
            },
        }
    }

    fn read(dir: &Path) -> std::io::Result<Self> {
        let index = Bytes::from(std::fs::read(dir.join("index.html"))?);
        let mut assets = HashMap::new();
        for entry in std::fs::read_dir(dir.join("assets"))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(content_type) = content_type(&name) else {
                continue;
            };
            if entry.file_type()?.is_file() {
                let body = Bytes::from(std::fs::read(entry.path())?);
                assets.insert(name, Asset { content_type, body });
            }
        }
        Ok(WebPage::Built { index, assets })
    }
}

/// The types of what esbuild writes; anything else is not served.
fn content_type(name: &str) -> Option<&'static str> {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !plain || name.starts_with('.') {
        return None;
    }
    match name.rsplit_once('.')?.1 {
        "js" => Some("text/javascript; charset=utf-8"),
        "css" => Some("text/css; charset=utf-8"),
        "map" => Some("application/json"),
        _ => None,
    }
}

/// Registers `/` and `/assets/{name}` for `page`.
pub fn configure(cfg: &mut web::ServiceConfig, page: web::Data<WebPage>) {
    cfg.app_data(page)
        .route("/", web::get().to(index))
        .route("/assets/{name}", web::get().to(asset));
}

/// The headers every answer of the page carries: the CSP, `nosniff` (a
/// script is run only when it is served as one), no framing, no referrer
/// (the page's URL may still hold a token fragment when it loads), and a
/// revalidation on each load so a rebuilt page is picked up.
fn secured(status: StatusCode, content_type: &str) -> HttpResponseBuilder {
    let mut res = HttpResponse::build(status);
    res.content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    res
}

async fn index(page: web::Data<WebPage>) -> HttpResponse {
    match page.get_ref() {
        WebPage::Built { index, .. } => {
            secured(StatusCode::OK, "text/html; charset=utf-8").body(index.clone())
        }
        WebPage::Missing { dir, why } => {
            secured(StatusCode::SERVICE_UNAVAILABLE, "text/html; charset=utf-8")
                .body(not_built_page(dir, why))
        }
    }
}

async fn asset(page: web::Data<WebPage>, name: web::Path<String>) -> HttpResponse {
    let found = match page.get_ref() {
        WebPage::Built { assets, .. } => assets.get(name.as_str()),
        WebPage::Missing { .. } => None,
    };
    match found {
        Some(a) => secured(StatusCode::OK, a.content_type).body(a.body.clone()),
        None => actix_web::ResponseError::error_response(&ApiError::not_found("no such asset")),
    }
}

/// The page served in place of a build that is not there.
fn not_built_page(dir: &Path, why: &str) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>claimcheck: upload page not built</title></head><body>\
         <h1>The upload page has not been built</h1>\
         <p>claimcheck-api looked for it in <code>{dir}</code> ({why}).</p>\
         <p>Build it with <code>scripts/dev</code>, which runs <code>npm ci</code> \
         and <code>node web/build.mjs</code> (Node.js 18 or later, packages from the \
         npm registry), or by hand: <code>cd web &amp;&amp; npm ci &amp;&amp; node \
         build.mjs</code>; then restart. <code>CLAIMCHECK_WEB_DIR</code> names \
         another build.</p>\
         <p>The API itself works without it: <code>/v1/uploads</code>, \
         <code>/v1/tus</code>, <code>/openapi.json</code>.</p></body></html>\n",
        dir = escape(&dir.display().to_string()),
        why = escape(why),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_of_built_types_are_served() {
        assert_eq!(
            content_type("app.js"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(content_type("app.css"), Some("text/css; charset=utf-8"));
        for refused in ["app.html", ".env.js", "a b.js", "../x.js", "app", "x.svg"] {
            assert_eq!(content_type(refused), None, "{refused}");
        }
    }

    #[test]
    fn a_directory_without_a_build_is_missing_not_an_error() {
        let dir = std::env::temp_dir().join(format!("cc-web-{}", uuid::Uuid::new_v4()));
        assert!(matches!(WebPage::load(&dir), WebPage::Missing { .. }));
        std::fs::create_dir_all(dir.join("assets")).unwrap();
        std::fs::write(dir.join("index.html"), "<!doctype html>").unwrap();
        std::fs::write(dir.join("assets/app.js"), "export {}").unwrap();
        std::fs::write(dir.join("assets/notes.txt"), "not served").unwrap();
        let WebPage::Built { assets, .. } = WebPage::load(&dir) else {
            panic!("built")
        };
        assert_eq!(assets.keys().collect::<Vec<_>>(), ["app.js"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_not_built_page_escapes_what_it_names() {
        let page = not_built_page(Path::new("/tmp/<x>"), "No such file & more");
        assert!(page.contains("/tmp/&lt;x&gt;"));
        assert!(page.contains("No such file &amp; more"));
    }
}
