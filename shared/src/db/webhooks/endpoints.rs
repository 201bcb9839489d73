//! The admin's statements on webhook endpoints: register, list, show,
//! remove, and put dead deliveries back. Each change is recorded in the
//! audit log in its own transaction.

use base64::{engine::general_purpose::STANDARD, Engine};
use rand::RngCore;
use uuid::Uuid;

use super::{endpoint_from_row, Endpoint, WebhookStore};
use crate::db::{
    audit_log::{self, Actor, AuditAction},
    DbError,
};

impl WebhookStore {
    /// Registers an endpoint with a fresh signing secret; the secret is
    /// returned here only.
    pub async fn create(
        &self,
        url: &str,
        events: &[String],
        description: Option<&str>,
        actor: &Actor,
    ) -> Result<(Endpoint, String), DbError> {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let secret = format!("whsec_{}", STANDARD.encode(key));
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                "INSERT INTO claimcheck.webhook_endpoints (id, url, events, description, secret)
                 VALUES ($1, $2, $3, $4, $5)
                 RETURNING id, url, events, description, created_at",
                &[&Uuid::now_v7(), &url, &events, &description, &secret],
            )
            .await?;
        let endpoint = endpoint_from_row(&row)?;
        let target = endpoint.id.to_string();
        let detail = serde_json::json!({ "url": url, "events": events });
        audit_log::append_in(&tx, actor, AuditAction::WebhookCreated, &target, detail).await?;
        tx.commit().await?;
        Ok((endpoint, secret))
    }

    /// Every endpoint, oldest first.
    pub async fn list(&self) -> Result<Vec<Endpoint>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id, url, events, description, created_at
                   FROM claimcheck.webhook_endpoints ORDER BY id",
                &[],
            )
            .await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    /// The endpoint with this id.
    pub async fn get(&self, id: Uuid) -> Result<Option<Endpoint>, DbError> {
        let client = self.pool.get().await?;
        client
            .query_opt(
                "SELECT id, url, events, description, created_at
                   FROM claimcheck.webhook_endpoints WHERE id = $1",
                &[&id],
            )
            .await?
            .as_ref()
            .map(endpoint_from_row)
            .transpose()
    }

    /// Removes an endpoint with its deliveries. False when there was none.
    pub async fn delete(&self, id: Uuid, actor: &Actor) -> Result<bool, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let removed = tx
            .query_opt(
                "DELETE FROM claimcheck.webhook_endpoints WHERE id = $1 RETURNING url, events",
                &[&id],
            )
            .await?;
        let Some(row) = removed else {
            return Ok(false);
        };
        let (url, events): (String, Vec<String>) = (row.try_get(0)?, row.try_get(1)?);
        let detail = serde_json::json!({ "url": url, "events": events });
        let target = id.to_string();
        audit_log::append_in(&tx, actor, AuditAction::WebhookDeleted, &target, detail).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Puts dead deliveries back with a fresh attempt count: `endpoint`'s,
    /// or every endpoint's. Returns how many. Recorded in the audit log when
    /// there were any.
    pub async fn retry_dead(&self, endpoint: Option<Uuid>, actor: &Actor) -> Result<u64, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "UPDATE claimcheck.webhook_deliveries
                    SET dead_at = NULL, attempts = 0, next_attempt_at = now()
                  WHERE dead_at IS NOT NULL AND ($1::uuid IS NULL OR endpoint_id = $1)",
                &[&endpoint],
            )
            .await?;
        if n > 0 {
            let target = endpoint.map_or_else(|| "*".to_owned(), |id| id.to_string());
            let detail = serde_json::json!({ "deliveries": n });
            audit_log::append_in(&tx, actor, AuditAction::WebhookRetried, &target, detail).await?;
            tx.commit().await?;
        }
        Ok(n)
    }
}
