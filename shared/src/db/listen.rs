//! A LISTEN connection with its reconnects, as wake-ups any loop can wait
//! for (the delete worker on the queue's channel; later, webhook deliveries).
//!
//! A notification only says "look now": the loop still polls, so nothing
//! is lost when the connection is. A lost connection is reopened after the
//! retry interval, and meanwhile the loop's poll interval covers for it: a
//! notification lost with the connection costs one poll.

use std::{sync::Arc, time::Duration};

use futures::{stream, StreamExt};
use tokio::{sync::Notify, task::JoinHandle};
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use super::connect_one;

/// Wake-ups from a LISTEN connection kept open in a task of its own.
///
/// Notifications that arrive while nobody waits are kept as one wake-up
/// (the loop is busy anyway and looks again when it is done). Dropping the
/// handle stops the task.
#[derive(Debug)]
pub struct Wakeups {
    wake: Arc<Notify>,
    task: Option<JoinHandle<()>>,
}

impl Wakeups {
    /// Listens on `channel` at `url`, with the pool's TLS settings
    /// ([`connect_one`]), until `cancel` fires or the handle goes. A lost
    /// connection, or one that cannot be opened, is tried again after
    /// `retry`. Every (re)connection wakes once too: rows may have come
    /// while nobody listened.
    ///
    /// # Panics
    ///
    /// When `channel` is not a plain lower-case identifier (it is written
    /// into the `LISTEN` statement as it is).
    pub fn listen(url: String, channel: &str, retry: Duration, cancel: CancellationToken) -> Self {
        Self::listen_or_poll(Some(url), channel, retry, cancel)
    }

    /// [`listen`](Self::listen) at `url`, or, for `None`
    /// (`CLAIMCHECK_LISTEN_DATABASE_URL=off`), no connection at all: the
    /// loop's poll interval alone wakes it.
    pub fn listen_or_poll(
        url: Option<String>,
        channel: &str,
        retry: Duration,
        cancel: CancellationToken,
    ) -> Self {
        assert!(
            is_plain_identifier(channel),
            "channel {channel:?} is not a plain identifier"
        );
        let wake = Arc::new(Notify::new());
        let Some(url) = url else {
            return Self { wake, task: None };
        };
        let task = tokio::spawn(keep_listening(
            url,
            format!("LISTEN {channel}"),
            wake.clone(),
            retry,
            cancel,
        ));
        Self {
            wake,
            task: Some(task),
        }
    }

    /// Waits for the next wake-up (or takes the one kept meanwhile).
    pub async fn notified(&self) {
        self.wake.notified().await;
    }

    /// Waits for a wake-up, `poll` or `cancel`, whichever comes first: the
    /// wait of a loop that polls and is notified.
    pub async fn wait(&self, poll: Duration, cancel: &CancellationToken) {
        tokio::select! {
            () = cancel.cancelled() => {}
            () = self.notified() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }

    /// Stops listening and waits until the connection is closed.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Whether `name` can go into a statement unquoted as it is: lower-case
/// ASCII letters, digits and `_`, not starting with a digit.
pub(crate) fn is_plain_identifier(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The task behind [`Wakeups`]: connect, run `listen`, forward
/// notifications, and start over after `retry` when the connection goes.
async fn keep_listening(
    url: String,
    listen: String,
    wake: Arc<Notify>,
    retry: Duration,
    cancel: CancellationToken,
) {
    while !cancel.is_cancelled() {
        // The pool's TLS settings (sslmode, sslrootcert) apply here too.
        match connect_one(&url).await {
            Ok((client, mut connection)) => {
                let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx)).fuse();
                let listening = {
                    let statement = client.batch_execute(&listen);
                    tokio::pin!(statement);
                    // The LISTEN only runs while the connection is driven.
                    loop {
                        tokio::select! {
                            result = &mut statement => break result,
                            message = messages.next() => if message.is_none() { break Ok(()) },
                        }
                    }
                };
                if let Err(e) = listening {
                    tracing::warn!(error = %e, "LISTEN failed; polling only");
                } else {
                    // Rows queued while we were not listening: look now.
                    wake.notify_one();
                    loop {
                        tokio::select! {
                            () = cancel.cancelled() => return,
                            message = messages.next() => match message {
                                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                                Some(Ok(_)) => {}
                                Some(Err(e)) => {
                                    tracing::warn!(error = %e, "notification connection failed");
                                    break;
                                }
                                None => break,
                            },
                        }
                    }
                }
                drop(client);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the notification connection; polling only")
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(retry) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_plain_identifier;

    #[test]
    fn channels_are_plain_identifiers() {
        assert!(is_plain_identifier("claimcheck_pending_deletes"));
        assert!(is_plain_identifier("_x1"));
        assert!(!is_plain_identifier(""));
        assert!(!is_plain_identifier("1x"));
        assert!(!is_plain_identifier("Upper"));
        assert!(!is_plain_identifier("a; DROP TABLE x"));
    }
}
