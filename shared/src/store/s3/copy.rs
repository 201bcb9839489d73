//! Reading objects back (`GetObject`) and storing byte ranges of them as
//! parts of a multipart session (`UploadPartCopy`), for tus concatenation.

use std::{ops::Range, time::Duration};

use aws_sdk_s3::{config::timeout::TimeoutConfig, primitives::ByteStream as SdkByteStream};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::{errors::map_sdk_error, S3Store};
use crate::store::{
    check_copy_range, validate_key, ByteStream, ObjectStore, StoreError, MIN_PART_SIZE,
};

/// What `x-amz-copy-source` leaves as is: RFC 3986's unreserved characters,
/// and `/` between the key's segments. Everything else is percent-encoded, as
/// S3 requires (a `+` left bare could be read as a space).
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// The slowest server-side copy we wait for, in bytes per second: an
/// `UploadPartCopy` of up to 5 GiB gets the client's operation timeout plus
/// its length at this rate, since the server answers only once it has copied
/// the range (AWS takes tens of seconds for large parts).
const COPY_RATE_FLOOR: u64 = 16 * 1024 * 1024;

impl S3Store {
    /// [`ObjectStore::get`]: the `GetObject` body as it arrives. The
    /// operation timeout ends with the answer's headers; a body that stalls
    /// is failed by the SDK's stalled-stream protection, as an `Err` item.
    pub(super) async fn read_object(&self, key: &str) -> Result<ByteStream, StoreError> {
        validate_key(key)?;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| map_sdk_error("GetObject", e))?;
        Ok(byte_stream(out.body))
    }

    /// [`ObjectStore::copy_part`]. The source's size is checked first
    /// (`HeadObject`): servers clamp a range that runs past the object
    /// rather than refuse it (Garage copies the bytes there are), and the
    /// contract refuses it. The copy then names the ETag it was checked
    /// against (`x-amz-copy-source-if-match`), so a source replaced meanwhile
    /// fails the call (`PreconditionFailed`, [`StoreError::Other`]) instead of
    /// copying unchecked bytes.
    ///
    /// A source of at most [`MIN_PART_SIZE`] bytes is not copied by the
    /// server: AWS documents ranges for sources above 5 MB only and Garage
    /// refuses to copy objects it keeps inline (under 3 KiB), so its range
    /// (at most 5 MiB) is streamed through `GetObject` into
    /// [`ObjectStore::upload_part`] instead.
    pub(super) async fn copy_range(
        &self,
        src_key: &str,
        range: Range<u64>,
        key: &str,
        upload_id: &str,
        part_number: u32,
    ) -> Result<String, StoreError> {
        validate_key(key)?;
        let source = self.head(src_key).await?;
        let len = check_copy_range(part_number, &range, source.size)?;
        // HTTP ranges name their last byte, not the one after it.
        let bytes = format!("bytes={}-{}", range.start, range.end - 1);
        if source.size <= MIN_PART_SIZE {
            let out = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(src_key)
                .range(bytes)
                .set_if_match(source.etag)
                .send()
                .await
                .map_err(|e| map_sdk_error("GetObject", e))?;
            return self
                .upload_part(key, upload_id, part_number, byte_stream(out.body), len)
                .await;
        }
        let copy_source = format!(
            "{}/{}",
            self.bucket,
            utf8_percent_encode(src_key, COPY_SOURCE)
        );
        let out = self
            .client
            .upload_part_copy()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number as i32)
            .copy_source(copy_source)
            .copy_source_range(bytes)
            .set_copy_source_if_match(source.etag)
            .customize()
            .config_override(
                aws_sdk_s3::config::Builder::new().timeout_config(self.copy_timeout(len)),
            )
            .send()
            .await
            .map_err(|e| map_sdk_error("UploadPartCopy", e))?;
        out.copy_part_result()
            .and_then(|result| result.e_tag())
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Other("UploadPartCopy: no ETag in the answer".into()))
    }

    /// The operation timeout of an `UploadPartCopy` of `len` bytes (see
    /// [`COPY_RATE_FLOOR`]); unset (the client's own) when the client has none.
    fn copy_timeout(&self, len: u64) -> TimeoutConfig {
        let base = self
            .client
            .config()
            .timeout_config()
            .and_then(TimeoutConfig::operation_timeout);
        let mut config = TimeoutConfig::builder();
        if let Some(base) = base {
            config = config.operation_timeout(base + Duration::from_secs(len / COPY_RATE_FLOOR));
        }
        config.build()
    }
}

/// An SDK response body as our [`ByteStream`], chunk by chunk as it arrives.
fn byte_stream(body: SdkByteStream) -> ByteStream {
    Box::pin(futures::stream::unfold(body, |mut body| async move {
        let chunk = body.next().await?;
        Some((chunk.map_err(std::io::Error::from), body))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_encode_everything_but_unreserved_characters_and_slashes() {
        let encoded = utf8_percent_encode("pub/2026/a b+c=d&é~_-.pdf", COPY_SOURCE).to_string();
        assert_eq!(encoded, "pub/2026/a%20b%2Bc%3Dd%26%C3%A9~_-.pdf");
    }
}
