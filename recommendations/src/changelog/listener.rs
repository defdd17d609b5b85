//! The PostgreSQL listener: `LISTEN rating_changes` on a session of its own, waking the follower
//! at every commit that logged a change.

use std::sync::Arc;

use super::{follower::Follower, retry::BACKOFF};

/// Wakes `follower` at every PostgreSQL commit that logged a change, and after every
/// (re)connection of the listening session (named `application_name` in `pg_stat_activity`).
pub async fn listen(url: String, application_name: &'static str, follower: Arc<Follower>) {
    use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
    let mut failures = 0u32;
    loop {
        let session = async {
            let options: PgConnectOptions = url.parse()?;
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .max_lifetime(None)
                .idle_timeout(None)
                .connect_with(options.application_name(application_name))
                .await?;
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(crate::store::CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match session.await {
            Ok(mut listener) => {
                if failures > 0 {
                    tracing::info!("listening for ratings log commits again");
                }
                failures = 0;
                // Whatever committed while no one listened is read now.
                follower.nudge();
                loop {
                    match listener.try_recv().await {
                        // A lost connection is re-made before `None`: read what was missed.
                        Ok(_) => follower.nudge(),
                        Err(error) => {
                            tracing::warn!(%error, "the ratings log listener lost its connection");
                            break;
                        }
                    }
                }
            }
            Err(error) => {
                if failures == 0 || failures.is_power_of_two() {
                    tracing::warn!(%error, "cannot listen for ratings log commits yet");
                }
            }
        }
        failures = failures.saturating_add(1);
        follower.nudge();
        tokio::time::sleep(BACKOFF.step(failures)).await;
    }
}
