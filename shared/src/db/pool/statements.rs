//! The statements of [`Client`] and [`Transaction`] (see [`super`]).

use tokio_postgres::{types::ToSql, Error, Row};

use super::{typed, watch, Client, Transaction};

/// One statement method: `$name` runs `sql` prepared (`$prepare`: parsed
/// each time as tokio-postgres does, or cached per connection) through
/// tokio-postgres's `$raw`, or as the unnamed statement through `$typed` in
/// unnamed mode; either way a read-only refusal marks the connection
/// ([`watch`]).
macro_rules! statement {
    ($(#[$doc:meta])* $name:ident, $raw:ident, $typed:ident, $out:ty, $prepare:ident) => {
        $(#[$doc])*
        pub async fn $name(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<$out, Error> {
            let outcome = async {
                match self.unnamed_types(sql).await? {
                    None => statement!(@prepared self, $raw, sql, params, $prepare),
                    Some(types) => self.raw().$typed(sql, &typed(params, &types)).await,
                }
            };
            watch(self.read_only_flag(), outcome.await)
        }
    };
    (@prepared $self:ident, $raw:ident, $sql:ident, $params:ident, parsed) => {
        $self.raw().$raw($sql, $params).await
    };
    (@prepared $self:ident, $raw:ident, $sql:ident, $params:ident, cached) => {
        $self.raw().$raw(&$self.cached_statement($sql).await?, $params).await
    };
}

/// The statements of [`Client`] and [`Transaction`], alike: `query*` and
/// `execute` parse each time when prepared (as tokio-postgres does), the
/// `*_cached` ones prepare once per connection; both go out as the unnamed
/// statement in unnamed mode.
macro_rules! statements {
    ($type:ty) => {
        impl $type {
            statement!(
                /// The rows of `sql`.
                query, query, query_typed, Vec<Row>, parsed
            );
            statement!(
                /// The one row of `sql` (an error for none or several).
                query_one, query_one, query_typed_one, Row, parsed
            );
            statement!(
                /// The row of `sql`, if any (an error for several).
                query_opt, query_opt, query_typed_opt, Option<Row>, parsed
            );
            statement!(
                /// Runs `sql`; the rows it changed.
                execute, execute, execute_typed, u64, parsed
            );
            statement!(
                /// [`query`](Self::query), prepared once per connection.
                query_cached, query, query_typed, Vec<Row>, cached
            );
            statement!(
                /// [`query_one`](Self::query_one), prepared once per connection.
                query_one_cached, query_one, query_typed_one, Row, cached
            );
            statement!(
                /// [`query_opt`](Self::query_opt), prepared once per connection.
                query_opt_cached, query_opt, query_typed_opt, Option<Row>, cached
            );
            statement!(
                /// [`execute`](Self::execute), prepared once per connection.
                execute_cached, execute, execute_typed, u64, cached
            );
        }
    };
}

statements!(Client);
statements!(Transaction<'_>);
