//! The parameter types of the unnamed mode ([`super::Statements::Unnamed`]):
//! each distinct SQL text is described once per process and its types cached.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use tokio_postgres::{
    types::{ToSql, Type},
    Error, GenericClient,
};

/// The parameter types of every SQL text described so far, by text: the
/// statements are the service's own, a bounded set.
fn type_cache() -> &'static Mutex<HashMap<String, Arc<[Type]>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<[Type]>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

pub(super) fn cached_types(sql: &str) -> Option<Arc<[Type]>> {
    type_cache()
        .lock()
        .expect("never poisoned")
        .get(sql)
        .cloned()
}

/// Parses `sql` through `client` (inside a transaction), reads its
/// parameter types, closes it, and caches the types.
pub(super) async fn describe(client: &impl GenericClient, sql: &str) -> Result<Arc<[Type]>, Error> {
    let statement = client.prepare(sql).await?;
    let types: Arc<[Type]> = statement.params().into();
    // Dropping the statement sends its Close now, inside the transaction.
    drop(statement);
    type_cache()
        .lock()
        .expect("never poisoned")
        .insert(sql.to_owned(), types.clone());
    Ok(types)
}

pub(super) fn typed<'p>(
    params: &[&'p (dyn ToSql + Sync)],
    types: &[Type],
) -> Vec<(&'p (dyn ToSql + Sync), Type)> {
    params.iter().copied().zip(types.iter().cloned()).collect()
}
