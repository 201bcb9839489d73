//! The connection pool and its clients, in the two ways statements can
//! reach PostgreSQL (`CLAIMCHECK_DB_PREPARED_STATEMENTS`).
//!
//! **Prepared** (the default): as tokio-postgres does it, a statement is
//! parsed under a name, then bound and executed, two round trips, and the
//! hot statements are prepared once per connection (`*_cached`).
//!
//! **Unnamed**, for a pooler in transaction mode without prepared-statement
//! support (PgBouncer before 1.21): a named statement lives in one server
//! session, and the pooler hands the next message of the same client to
//! whichever server is free once a transaction (or a lone statement) ends,
//! so a statement parsed on one server is executed on another, or a name
//! left on a server collides with another process's. Here every statement
//! goes out as the unnamed statement, parsed, bound and executed in one
//! message batch (one round trip, `query_typed`), which no pooler can split.
//! Binding needs the parameters' types: each distinct SQL text is described
//! once per process, inside a transaction of its own (so the describing
//! statement is parsed and closed on one server), and its types are cached.
//! Statements inside a transaction ([`Transaction`]) are safe either way: a
//! transaction keeps its server.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use deadpool_postgres::{Object, PoolError, Status};
use tokio_postgres::{
    types::{ToSql, Type},
    Error, GenericClient, Row,
};

/// How statements reach PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Statements {
    /// Named, prepared statements, the hot ones cached per connection.
    #[default]
    Prepared,
    /// The unnamed statement, one round trip each (transaction poolers).
    Unnamed,
}

/// A pool of PostgreSQL connections ([`super::connect`]).
#[derive(Clone, Debug)]
pub struct Pool {
    inner: deadpool_postgres::Pool,
    statements: Statements,
}

impl Pool {
    pub(super) fn new(inner: deadpool_postgres::Pool, statements: Statements) -> Self {
        Self { inner, statements }
    }

    /// A connection, waiting for one to be free (bounded by the pool's
    /// wait timeout).
    pub async fn get(&self) -> Result<Client, PoolError> {
        Ok(Client {
            inner: self.inner.get().await?,
            statements: self.statements,
        })
    }

    /// The pool's size and use (for the pool gauge).
    pub fn status(&self) -> Status {
        self.inner.status()
    }

    /// How its statements reach PostgreSQL.
    pub fn statements(&self) -> Statements {
        self.statements
    }

    /// Closes the pool: its idle connections now, the others when returned.
    pub fn close(&self) {
        self.inner.close();
    }
}

/// A pooled connection.
pub struct Client {
    inner: Object,
    statements: Statements,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("statements", &self.statements)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts a transaction.
    pub async fn transaction(&mut self) -> Result<Transaction<'_>, Error> {
        Ok(Transaction {
            inner: self.inner.transaction().await?,
            statements: self.statements,
        })
    }

    /// Runs `sql` (no parameters) with the simple query protocol.
    pub async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        self.inner.batch_execute(sql).await
    }

    /// The parameter types of `sql` in unnamed mode (`None` when prepared).
    async fn unnamed_types(&self, sql: &str) -> Result<Option<Arc<[Type]>>, Error> {
        if self.statements == Statements::Prepared {
            return Ok(None);
        }
        if let Some(types) = cached_types(sql) {
            return Ok(Some(types));
        }
        // Parsed and closed inside one transaction: one server sees both.
        let client: &tokio_postgres::Client = &self.inner;
        client.batch_execute("BEGIN").await?;
        let described = describe(client, sql).await;
        let ended = client
            .batch_execute(if described.is_ok() {
                "COMMIT"
            } else {
                "ROLLBACK"
            })
            .await;
        let types = described?;
        ended?;
        Ok(Some(types))
    }

    async fn cached_statement(&self, sql: &str) -> Result<tokio_postgres::Statement, Error> {
        self.inner.prepare_cached(sql).await
    }

    fn raw(&self) -> &tokio_postgres::Client {
        &self.inner
    }
}

/// A transaction on a pooled connection. Derefs to tokio-postgres's, for
/// the functions that take any `GenericClient`.
pub struct Transaction<'a> {
    inner: deadpool_postgres::Transaction<'a>,
    statements: Statements,
}

impl<'a> Transaction<'a> {
    /// Commits.
    pub async fn commit(self) -> Result<(), Error> {
        self.inner.commit().await
    }

    /// Rolls back (dropping it does too, without waiting).
    pub async fn rollback(self) -> Result<(), Error> {
        self.inner.rollback().await
    }

    async fn unnamed_types(&self, sql: &str) -> Result<Option<Arc<[Type]>>, Error> {
        if self.statements == Statements::Prepared {
            return Ok(None);
        }
        if let Some(types) = cached_types(sql) {
            return Ok(Some(types));
        }
        Ok(Some(describe(&*self.inner, sql).await?))
    }

    async fn cached_statement(&self, sql: &str) -> Result<tokio_postgres::Statement, Error> {
        self.inner.prepare_cached(sql).await
    }

    fn raw(&self) -> &tokio_postgres::Transaction<'a> {
        &self.inner
    }
}

impl<'a> std::ops::Deref for Transaction<'a> {
    type Target = tokio_postgres::Transaction<'a>;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for Transaction<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

/// The statements of [`Client`] and [`Transaction`], alike: `query*` and
/// `execute` parse each time when prepared (as tokio-postgres does), the
/// `*_cached` ones prepare once per connection; both go out as the unnamed
/// statement in unnamed mode.
macro_rules! statements {
    ($type:ty) => {
        impl $type {
            /// The rows of `sql`.
            pub async fn query(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Vec<Row>, Error> {
                match self.unnamed_types(sql).await? {
                    None => self.raw().query(sql, params).await,
                    Some(types) => self.raw().query_typed(sql, &typed(params, &types)).await,
                }
            }

            /// The one row of `sql` (an error for none or several).
            pub async fn query_one(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Row, Error> {
                match self.unnamed_types(sql).await? {
                    None => self.raw().query_one(sql, params).await,
                    Some(types) => {
                        self.raw()
                            .query_typed_one(sql, &typed(params, &types))
                            .await
                    }
                }
            }

            /// The row of `sql`, if any (an error for several).
            pub async fn query_opt(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Option<Row>, Error> {
                match self.unnamed_types(sql).await? {
                    None => self.raw().query_opt(sql, params).await,
                    Some(types) => {
                        self.raw()
                            .query_typed_opt(sql, &typed(params, &types))
                            .await
                    }
                }
            }

            /// Runs `sql`; the rows it changed.
            pub async fn execute(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<u64, Error> {
                match self.unnamed_types(sql).await? {
                    None => self.raw().execute(sql, params).await,
                    Some(types) => self.raw().execute_typed(sql, &typed(params, &types)).await,
                }
            }

            /// [`query`](Self::query), prepared once per connection.
            pub async fn query_cached(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Vec<Row>, Error> {
                match self.unnamed_types(sql).await? {
                    None => {
                        self.raw()
                            .query(&self.cached_statement(sql).await?, params)
                            .await
                    }
                    Some(types) => self.raw().query_typed(sql, &typed(params, &types)).await,
                }
            }

            /// [`query_one`](Self::query_one), prepared once per connection.
            pub async fn query_one_cached(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Row, Error> {
                match self.unnamed_types(sql).await? {
                    None => {
                        self.raw()
                            .query_one(&self.cached_statement(sql).await?, params)
                            .await
                    }
                    Some(types) => {
                        self.raw()
                            .query_typed_one(sql, &typed(params, &types))
                            .await
                    }
                }
            }

            /// [`query_opt`](Self::query_opt), prepared once per connection.
            pub async fn query_opt_cached(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Option<Row>, Error> {
                match self.unnamed_types(sql).await? {
                    None => {
                        self.raw()
                            .query_opt(&self.cached_statement(sql).await?, params)
                            .await
                    }
                    Some(types) => {
                        self.raw()
                            .query_typed_opt(sql, &typed(params, &types))
                            .await
                    }
                }
            }

            /// [`execute`](Self::execute), prepared once per connection.
            pub async fn execute_cached(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<u64, Error> {
                match self.unnamed_types(sql).await? {
                    None => {
                        self.raw()
                            .execute(&self.cached_statement(sql).await?, params)
                            .await
                    }
                    Some(types) => self.raw().execute_typed(sql, &typed(params, &types)).await,
                }
            }
        }
    };
}

statements!(Client);
statements!(Transaction<'_>);

/// A [`Client`] or a [`Transaction`], for statements that run on either
/// (a connection of their own, or a transaction they must commit with).
pub trait Exec: Sync {
    /// [`Client::query`] / [`Transaction::query`].
    fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<Vec<Row>, Error>> + Send;
    /// [`Client::execute`] / [`Transaction::execute`].
    fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<u64, Error>> + Send;
}

macro_rules! exec {
    ($type:ty) => {
        impl Exec for $type {
            fn query(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> impl std::future::Future<Output = Result<Vec<Row>, Error>> + Send {
                <$type>::query(self, sql, params)
            }
            fn execute(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> impl std::future::Future<Output = Result<u64, Error>> + Send {
                <$type>::execute(self, sql, params)
            }
        }
    };
}

exec!(Client);
exec!(Transaction<'_>);

/// The parameter types of every SQL text described so far, by text: the
/// statements are the service's own, a bounded set.
fn type_cache() -> &'static Mutex<HashMap<String, Arc<[Type]>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<[Type]>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn cached_types(sql: &str) -> Option<Arc<[Type]>> {
    type_cache()
        .lock()
        .expect("never poisoned")
        .get(sql)
        .cloned()
}

/// Parses `sql` through `client` (inside a transaction), reads its
/// parameter types, closes it, and caches the types.
async fn describe(client: &impl GenericClient, sql: &str) -> Result<Arc<[Type]>, Error> {
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

fn typed<'p>(
    params: &[&'p (dyn ToSql + Sync)],
    types: &[Type],
) -> Vec<(&'p (dyn ToSql + Sync), Type)> {
    params.iter().copied().zip(types.iter().cloned()).collect()
}
