//! The statements of [`Client`] and [`Transaction`] (see [`super`]).

use tokio_postgres::{types::ToSql, Error, Row};

use super::{typed, watch, Client, Transaction};

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
                watch(
                    self.read_only_flag(),
                    async {
                        match self.unnamed_types(sql).await? {
                            None => self.raw().query(sql, params).await,
                            Some(types) => {
                                self.raw().query_typed(sql, &typed(params, &types)).await
                            }
                        }
                    }
                    .await,
                )
            }

            /// The one row of `sql` (an error for none or several).
            pub async fn query_one(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Row, Error> {
                watch(
                    self.read_only_flag(),
                    async {
                        match self.unnamed_types(sql).await? {
                            None => self.raw().query_one(sql, params).await,
                            Some(types) => {
                                self.raw()
                                    .query_typed_one(sql, &typed(params, &types))
                                    .await
                            }
                        }
                    }
                    .await,
                )
            }

            /// The row of `sql`, if any (an error for several).
            pub async fn query_opt(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Option<Row>, Error> {
                watch(
                    self.read_only_flag(),
                    async {
                        match self.unnamed_types(sql).await? {
                            None => self.raw().query_opt(sql, params).await,
                            Some(types) => {
                                self.raw()
                                    .query_typed_opt(sql, &typed(params, &types))
                                    .await
                            }
                        }
                    }
                    .await,
                )
            }

            /// Runs `sql`; the rows it changed.
            pub async fn execute(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<u64, Error> {
                watch(
                    self.read_only_flag(),
                    async {
                        match self.unnamed_types(sql).await? {
                            None => self.raw().execute(sql, params).await,
                            Some(types) => {
                                self.raw().execute_typed(sql, &typed(params, &types)).await
                            }
                        }
                    }
                    .await,
                )
            }

            /// [`query`](Self::query), prepared once per connection.
            pub async fn query_cached(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Vec<Row>, Error> {
                watch(
                    self.read_only_flag(),
                    async {
                        match self.unnamed_types(sql).await? {
                            None => {
                                self.raw()
                                    .query(&self.cached_statement(sql).await?, params)
                                    .await
                            }
                            Some(types) => {
                                self.raw().query_typed(sql, &typed(params, &types)).await
                            }
                        }
                    }
                    .await,
                )
            }

            /// [`query_one`](Self::query_one), prepared once per connection.
            pub async fn query_one_cached(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Row, Error> {
                watch(
                    self.read_only_flag(),
                    async {
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
                    .await,
                )
            }

            /// [`query_opt`](Self::query_opt), prepared once per connection.
            pub async fn query_opt_cached(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Option<Row>, Error> {
                watch(
                    self.read_only_flag(),
                    async {
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
                    .await,
                )
            }

            /// [`execute`](Self::execute), prepared once per connection.
            pub async fn execute_cached(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<u64, Error> {
                watch(
                    self.read_only_flag(),
                    async {
                        match self.unnamed_types(sql).await? {
                            None => {
                                self.raw()
                                    .execute(&self.cached_statement(sql).await?, params)
                                    .await
                            }
                            Some(types) => {
                                self.raw().execute_typed(sql, &typed(params, &types)).await
                            }
                        }
                    }
                    .await,
                )
            }
        }
    };
}

statements!(Client);
statements!(Transaction<'_>);
