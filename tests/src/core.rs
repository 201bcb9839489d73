//! The upload core (`Uploads`) over a test database and store, for tests
//! that drive it without HTTP.

use std::{sync::Arc, time::Duration};

use claimcheck::{
    store::ObjectStore,
    uploads::{ContentTypes, Limits, Uploads},
};

use crate::{db::TestDb, stores::test_prefix};

/// One MiB.
pub const MIB: u64 = 1024 * 1024;

/// The upload core over `db` and `store`, with parts of `part_size` bytes,
/// every content type allowed, uploads up to 1 GiB and an hour's TTL.
pub fn uploads(db: &TestDb, store: Arc<dyn ObjectStore>, part_size: u64) -> Uploads {
    let limits = Limits {
        max_upload_size: 1 << 30,
        max_pending_per_owner: 100,
        quotas: Default::default(),
        part_size,
        claim_ttl: Duration::from_secs(3600),
        unconsumed_ttl: None,
        content_types: ContentTypes {
            allowed: vec!["*/*".into()],
            denied: Vec::new(),
        },
        key_prefix: test_prefix(),
        presign_ttl: Duration::from_secs(600),
    };
    Uploads::new(db.pool.clone(), store, limits)
}
