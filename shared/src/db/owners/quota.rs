//! What quotas are: the configured ones, an owner's overrides and changes
//! to them, a refusal, what a start takes, and an owner's usage.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Quotas; 0 means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Quotas {
    /// Bytes one owner may hold (pending claims at their declared size,
    /// uploaded claims, registry objects).
    pub bytes: u64,
    /// Bytes one owner may start per UTC day.
    pub daily_bytes: u64,
    /// Uploads one owner may start per UTC day.
    pub daily_uploads: u64,
}

/// An owner's overrides of the configured [`Quotas`]: `None` takes the
/// default, `Some(0)` lifts the limit for this owner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuotaOverrides {
    /// Overrides [`Quotas::bytes`].
    pub bytes: Option<u64>,
    /// Overrides [`Quotas::daily_bytes`].
    pub daily_bytes: Option<u64>,
    /// Overrides [`Quotas::daily_uploads`].
    pub daily_uploads: Option<u64>,
}

impl QuotaOverrides {
    /// The quotas that apply: each override, else the default.
    pub fn over(&self, defaults: &Quotas) -> Quotas {
        Quotas {
            bytes: self.bytes.unwrap_or(defaults.bytes),
            daily_bytes: self.daily_bytes.unwrap_or(defaults.daily_bytes),
            daily_uploads: self.daily_uploads.unwrap_or(defaults.daily_uploads),
        }
    }
}

/// A change of an owner's overrides: each field that is `Some` is set
/// (`Some(None)`: back to the default), the others are left as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaChange {
    /// New [`QuotaOverrides::bytes`].
    pub bytes: Option<Option<u64>>,
    /// New [`QuotaOverrides::daily_bytes`].
    pub daily_bytes: Option<Option<u64>>,
    /// New [`QuotaOverrides::daily_uploads`].
    pub daily_uploads: Option<Option<u64>>,
}

impl QuotaChange {
    pub(super) fn apply(&self, to: QuotaOverrides) -> QuotaOverrides {
        QuotaOverrides {
            bytes: self.bytes.unwrap_or(to.bytes),
            daily_bytes: self.daily_bytes.unwrap_or(to.daily_bytes),
            daily_uploads: self.daily_uploads.unwrap_or(to.daily_uploads),
        }
    }
}

/// Which quota refused a start (the `quota` label and problem member).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Quota {
    /// [`Quotas::bytes`].
    Bytes,
    /// [`Quotas::daily_bytes`].
    DailyBytes,
    /// [`Quotas::daily_uploads`].
    DailyUploads,
    /// The in-flight cap (`CLAIMCHECK_MAX_PENDING_PER_OWNER`).
    Pending,
}

impl Quota {
    /// Every quota, as the metric's label values.
    pub const ALL: [Quota; 4] = [
        Quota::Bytes,
        Quota::DailyBytes,
        Quota::DailyUploads,
        Quota::Pending,
    ];

    /// The name (`bytes`, `daily_bytes`, `daily_uploads`, `pending`).
    pub fn as_str(self) -> &'static str {
        match self {
            Quota::Bytes => "bytes",
            Quota::DailyBytes => "daily_bytes",
            Quota::DailyUploads => "daily_uploads",
            Quota::Pending => "pending",
        }
    }
}

/// A start refused by a quota: nothing was created. Serialized as the
/// `quota.exceeded` event's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("the owner's {} quota would be exceeded: {usage} used of {limit}, {requested} more asked", quota.as_str())]
pub struct QuotaExceeded {
    /// Which quota.
    pub quota: Quota,
    /// Its limit for this owner.
    pub limit: u64,
    /// What the owner uses of it now.
    pub usage: u64,
    /// What the start would have added.
    pub requested: u64,
}

/// What a start takes of its owner's quotas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Charge<'a> {
    /// Bytes it will hold.
    pub held: u64,
    /// Counted against today's uploads (0 for a tus partial upload: the
    /// final upload it makes counts, once).
    pub uploads: u64,
    /// Counted against today's bytes (0 for a final upload, whose partials
    /// counted; 0 for a deferred size, counted when declared).
    pub bytes: u64,
    /// Claims whose bytes this one takes over (a final upload's partials,
    /// deleted once it is assembled): not counted twice as held.
    pub releases: &'a [uuid::Uuid],
}

/// An owner's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OwnerUsage {
    /// Bytes held (pending claims at their declared size, uploaded claims,
    /// registry objects).
    pub bytes: u64,
    /// Bytes started today (UTC).
    pub daily_bytes: u64,
    /// Uploads started today (UTC).
    pub daily_uploads: u64,
    /// Pending uploads.
    pub pending: u64,
    /// Today, in UTC.
    #[schema(value_type = String, format = Date)]
    pub day: NaiveDate,
}

/// An owner's limits, overrides and usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OwnerQuota {
    /// The owner.
    pub owner: String,
    /// The quotas that apply (0: none).
    pub limits: Quotas,
    /// This owner's overrides (null: the default).
    pub overrides: QuotaOverrides,
    /// What the owner uses.
    pub usage: OwnerUsage,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_take_precedence_and_none_falls_back() {
        let defaults = Quotas {
            bytes: 100,
            daily_bytes: 50,
            daily_uploads: 5,
        };
        let overrides = QuotaOverrides {
            bytes: Some(0),
            daily_bytes: None,
            daily_uploads: Some(9),
        };
        assert_eq!(
            overrides.over(&defaults),
            Quotas {
                bytes: 0,
                daily_bytes: 50,
                daily_uploads: 9
            }
        );
    }

    #[test]
    fn a_change_sets_only_what_it_names() {
        let before = QuotaOverrides {
            bytes: Some(10),
            daily_bytes: Some(20),
            daily_uploads: None,
        };
        let change = QuotaChange {
            bytes: Some(None),
            daily_uploads: Some(Some(3)),
            ..QuotaChange::default()
        };
        assert_eq!(
            change.apply(before),
            QuotaOverrides {
                bytes: None,
                daily_bytes: Some(20),
                daily_uploads: Some(3)
            }
        );
    }
}
