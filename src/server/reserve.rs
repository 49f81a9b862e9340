//! The connections accepted beyond `max_connections`, so that health checks still get in.
//!
//! A client cannot be told apart from its peers before it has sent a request, so the reserve
//! would fill with the same idle or slow connections that filled the regular slots. To keep
//! one open for a health check, a connection arriving at a full reserve takes the place of
//! the oldest reserved connection that has not sent a complete request head yet: a health
//! check sends its request at once and is answered, and a connection that sends nothing
//! loses its place. Reserved connections that are being answered are never evicted; when all
//! of them are, the new connection is closed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

use super::deadline::Phase;

pub struct Reserve {
    capacity: usize,
    held: Mutex<VecDeque<Held>>,
}

/// A reserved connection, as the reserve sees it.
struct Held {
    id: u64,
    phase: Arc<Phase>,
    evict: CancellationToken,
}

/// A place in the reserve, given back when dropped.
pub struct ReservedPlace {
    reserve: Arc<Reserve>,
    id: u64,
    /// Cancelled when a newer connection takes this one's place.
    pub evicted: CancellationToken,
}

impl Reserve {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            capacity,
            held: Mutex::new(VecDeque::with_capacity(capacity)),
        })
    }

    /// A place for connection `id`, whose progress `phase` tells; evicts the oldest
    /// connection still waiting for its first request if the reserve is full. `None`: every
    /// reserved connection is being answered (or there is no reserve).
    pub fn take(self: &Arc<Self>, id: u64, phase: Arc<Phase>) -> Option<ReservedPlace> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if self.capacity == 0 {
            return None;
        }
        if held.len() >= self.capacity {
            let oldest_waiting = held.iter().position(|h| h.phase.awaiting_first_request())?;
            if let Some(evicted) = held.remove(oldest_waiting) {
                evicted.evict.cancel();
            }
        }
        let evicted = CancellationToken::new();
        held.push_back(Held {
            id,
            phase,
            evict: evicted.clone(),
        });
        Some(ReservedPlace {
            reserve: self.clone(),
            id,
            evicted,
        })
    }
}

impl Drop for ReservedPlace {
    fn drop(&mut self) {
        let mut held = self
            .reserve
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held.retain(|h| h.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_reserve_evicts_the_oldest_connection_without_a_request() {
        let reserve = Reserve::new(2);
        let busy = Arc::new(Phase::default());
        busy.handling();
        let first = reserve.take(1, busy).unwrap();
        let second = reserve.take(2, Arc::new(Phase::default())).unwrap();
        let third = reserve.take(3, Arc::new(Phase::default())).unwrap();
        assert!(
            !first.evicted.is_cancelled(),
            "a connection being answered stays"
        );
        assert!(second.evicted.is_cancelled());
        assert!(!third.evicted.is_cancelled());
    }

    #[test]
    fn a_reserve_of_busy_connections_takes_no_more() {
        let reserve = Reserve::new(1);
        let busy = Arc::new(Phase::default());
        busy.handling();
        let only = reserve.take(1, busy).unwrap();
        assert!(reserve.take(2, Arc::new(Phase::default())).is_none());
        drop(only);
        assert!(reserve.take(3, Arc::new(Phase::default())).is_some());
        assert!(
            Reserve::new(0)
                .take(4, Arc::new(Phase::default()))
                .is_none()
        );
    }
}
