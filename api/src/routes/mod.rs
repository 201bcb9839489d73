//! HTTP routes, one module per resource. Handlers stay thin: they parse,
//! call the library, and map the outcome to a response.

pub mod health;
