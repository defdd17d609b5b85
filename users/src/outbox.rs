//! Telling recommendations what happened to accounts and sessions, reliably: the entries are
//! written to the `outbox` table in the same transaction as the change (see `store`), and this
//! task delivers them, deleting each only once recommendations has confirmed it. A failure is
//! retried with capped exponential backoff, across restarts (the table is the queue); several
//! replicas may deliver the same entry, which is harmless as both calls are idempotent.

use std::{sync::Arc, time::Duration};

use platform::auth::{TokenSigner, USERS_SERVICE};
use platform::{backoff::Backoff, bearer::Bearer};
use protos::recommendations::v1::{
    DeleteUserRatingsRequest, RevokeSessionRequest,
    recommendations_service_client::RecommendationsServiceClient,
};
use tokio::sync::Notify;
use tonic::transport::Channel;

use crate::store::{OutboxEntry, OutboxKind, UserStore};

/// Longest wait between two attempts at one entry.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// First wait after a failure; doubles with each further one.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// An entry's schedule is stored, so it is kept as it is (no jitter).
const BACKOFF: Backoff = Backoff {
    base: FIRST_BACKOFF,
    cap: MAX_BACKOFF,
    floor: Duration::ZERO,
};

/// Wait before attempt number `attempts + 1` (`attempts` failed so far, as stored).
pub fn backoff(attempts: i64) -> Duration {
    BACKOFF.step(
        u32::try_from(attempts.max(0))
            .unwrap_or(u32::MAX)
            .saturating_add(1),
    )
}

/// The delivering side of the outbox.
pub struct Outbox {
    pub store: Arc<dyn UserStore>,
    pub client: RecommendationsServiceClient<Channel>,
    pub key: TokenSigner,
    /// Woken when an entry is written, so delivery does not wait for the next poll.
    pub wake: Arc<Notify>,
    pub delivered: prometheus::IntCounterVec,
}

impl Outbox {
    /// Delivers due entries until the process ends: on every wake-up, and every `poll`.
    pub async fn run(mut self, poll: Duration) {
        loop {
            if let Err(error) = self.deliver_due().await {
                tracing::warn!(%error, "outbox: reading due entries failed");
            }
            let _ = tokio::time::timeout(poll, self.wake.notified()).await;
        }
    }

    async fn deliver_due(&mut self) -> Result<(), crate::store::StoreError> {
        let now = platform::now_unix_ms();
        for entry in self.store.outbox_due(now, 50).await? {
            self.deliver(entry).await?;
        }
        Ok(())
    }

    async fn deliver(&mut self, entry: OutboxEntry) -> Result<(), crate::store::StoreError> {
        let now = platform::now_unix_ms();
        let result = match entry.kind {
            None => return Ok(()),
            // An expired session's tokens are refused anyway: nothing left to tell.
            Some(OutboxKind::RevokeSession) if entry.expires_at_ms <= now => Ok(()),
            Some(OutboxKind::RevokeSession) => self
                .client
                .revoke_session(self.authed(RevokeSessionRequest {
                    session_id: entry.subject.clone(),
                    expire_time_unix_ms: entry.expires_at_ms,
                }))
                .await
                .map(drop),
            Some(OutboxKind::DeleteUser) => self
                .client
                .delete_user_ratings(self.authed(DeleteUserRatingsRequest {
                    user_id: entry.subject.clone(),
                }))
                .await
                .map(drop),
        };
        let kind = entry.kind.map_or("unknown", |k| match k {
            OutboxKind::DeleteUser => "delete_user",
            OutboxKind::RevokeSession => "revoke_session",
        });
        match result {
            Ok(()) => {
                self.store.outbox_done(&entry.id).await?;
                self.delivered.with_label_values(&[kind, "delivered"]).inc();
            }
            Err(status) => {
                let wait = backoff(entry.attempts);
                tracing::warn!(
                    kind,
                    attempts = entry.attempts + 1,
                    code = ?status.code(),
                    message = status.message(),
                    retry_in_ms = wait.as_millis() as u64,
                    "outbox: recommendations did not confirm; will retry"
                );
                self.delivered.with_label_values(&[kind, "retried"]).inc();
                self.store
                    .outbox_retry(&entry.id, entry.attempts + 1, now + wait.as_millis() as i64)
                    .await?;
            }
        }
        Ok(())
    }

    fn authed<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(Duration::from_secs(5));
        let (token, _) = self.key.issue(USERS_SERVICE, Duration::from_secs(60));
        if let Some(bearer) = Bearer::parse(&token) {
            bearer.insert_into(request.metadata_mut());
        }
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_a_cap() {
        assert_eq!(backoff(0), Duration::from_millis(200));
        assert_eq!(backoff(1), Duration::from_millis(400));
        assert_eq!(backoff(4), Duration::from_millis(3_200));
        assert_eq!(backoff(10), MAX_BACKOFF);
        assert_eq!(backoff(1_000), MAX_BACKOFF);
    }
}
