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

mod statements;
mod unnamed;

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use deadpool_postgres::{Object, PoolError, Status};
use tokio_postgres::{
    error::SqlState,
    types::{ToSql, Type},
    Error, Row,
};
use unnamed::{cached_types, describe, typed};

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
            inner: Some(self.inner.get().await?),
            statements: self.statements,
            read_only: AtomicBool::new(false),
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
///
/// One whose server refused a write as read-only (SQLSTATE 25006: a primary
/// fenced or demoted during a failover) is closed when dropped, not pooled
/// again: the pool's fast recycling only notices closed connections, so it
/// would hand the same read-only session out forever, while a new
/// connection goes, through a multi-host URL with
/// `target_session_attrs=read-write`, to the server that writes now.
pub struct Client {
    /// `None` only once dropped.
    inner: Option<Object>,
    statements: Statements,
    read_only: AtomicBool,
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.read_only.load(Ordering::Relaxed) {
            if let Some(object) = self.inner.take() {
                // Out of the pool; dropping the client closes the connection.
                drop(Object::take(object));
            }
        }
    }
}

/// Records on `read_only` whether `result` is a write refused as read-only.
fn watch<T>(read_only: &AtomicBool, result: Result<T, Error>) -> Result<T, Error> {
    if let Err(e) = &result {
        if e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) {
            read_only.store(true, Ordering::Relaxed);
        }
    }
    result
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
        let object = self.inner.as_mut().expect("present until dropped");
        Ok(Transaction {
            inner: object.transaction().await?,
            statements: self.statements,
            read_only: &self.read_only,
        })
    }

    /// Runs `sql` (no parameters) with the simple query protocol.
    pub async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        watch(&self.read_only, self.raw().batch_execute(sql).await)
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
        let client = self.raw();
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
        self.object().prepare_cached(sql).await
    }

    fn object(&self) -> &Object {
        self.inner.as_ref().expect("present until dropped")
    }

    fn raw(&self) -> &tokio_postgres::Client {
        self.object()
    }

    fn read_only_flag(&self) -> &AtomicBool {
        &self.read_only
    }
}

/// A transaction on a pooled connection. Derefs to tokio-postgres's, for
/// the functions that take any `GenericClient`.
pub struct Transaction<'a> {
    inner: deadpool_postgres::Transaction<'a>,
    statements: Statements,
    /// The connection's flag ([`Client`]).
    read_only: &'a AtomicBool,
}

impl<'a> Transaction<'a> {
    /// Commits.
    pub async fn commit(self) -> Result<(), Error> {
        let read_only = self.read_only;
        watch(read_only, self.inner.commit().await)
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

    fn read_only_flag(&self) -> &AtomicBool {
        self.read_only
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
