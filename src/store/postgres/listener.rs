//! LISTEN for the notifications other nodes send when they make deliveries due, and wake this
//! node's dispatcher.
//!
//! The listening connection can drop (the server restarts, an operator ends sessions, a
//! network blip): the task then reconnects with exponential backoff, and wakes the dispatcher
//! once connected again, since notifications sent meanwhile are lost. The dispatcher's own
//! timer remains the fallback for due retries, so a missed notification only delays work.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::CHANNEL;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Runs until `shutdown`, calling `wake.notify_one()` for every notification on
/// [`CHANNEL`] (and after every reconnection).
pub async fn listen_for_deliveries(pool: PgPool, wake: Arc<Notify>, shutdown: CancellationToken) {
    let mut backoff = MIN_BACKOFF;
    let mut connected_before = false;
    while !shutdown.is_cancelled() {
        let mut listener = match connect(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot LISTEN for deliveries");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if connected_before {
            tracing::info!("listening for deliveries again");
        }
        connected_before = true;
        backoff = MIN_BACKOFF;
        wake.notify_one();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                received = listener.try_recv() => match received {
                    Ok(Some(_)) => wake.notify_one(),
                    Ok(None) => {
                        tracing::warn!("the LISTEN connection was lost; reconnecting");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the LISTEN connection failed; reconnecting");
                        break;
                    }
                },
            }
        }
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Reconnect here, with backoff, rather than inside `try_recv`.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
