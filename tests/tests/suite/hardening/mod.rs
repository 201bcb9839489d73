//! The hardening issue's items, one test (or more) each; `docs/reliability.md`
//! says which test shows which item.

mod audit_bound;
mod deletes;
mod edges;
mod races;
mod timeouts;
