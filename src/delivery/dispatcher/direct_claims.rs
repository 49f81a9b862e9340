//! Direct claims: a new message accepted on this node needs no claim at all when there is
//! room for it. The API asks for [`Dispatcher::direct_claims`], the store writes each
//! delivery this node reserves already claimed, and [`Ticket::hand_over`] queues them with
//! the dispatcher, so the hot path is one write to accept the message and one to record the
//! attempt. Deliveries without room are written pending and the loop is woken to claim them;
//! which deliveries have room is the board's rule (see
//! [`Board::reserve`](super::board::Board::reserve)).

use std::sync::{Arc, Mutex};

use super::{Dispatcher, delta, lock};
use crate::domain::{EndpointId, Timestamp};
use crate::store::{ClaimedDelivery, DirectClaims};

impl Dispatcher {
    /// Direct claims for one new message (see the module docs), or `None` if this node takes
    /// no more deliveries now. What the store writes claimed for it goes to
    /// [`Ticket::hand_over`]; reservations not handed over are cancelled when it drops.
    pub fn direct_claims(self: &Arc<Self>) -> Option<Arc<Ticket>> {
        if !self.lock_board().takes_direct() {
            return None;
        }
        Some(Arc::new(Ticket {
            dispatcher: self.clone(),
            lease: self.clock.now() + delta(self.settings.lease),
            reserved: Mutex::new(Vec::new()),
        }))
    }

    /// Takes over the deliveries the store wrote claimed for `ticket`, and starts what may
    /// start.
    fn hand_over(self: &Arc<Self>, ticket: &Ticket, claimed: Vec<ClaimedDelivery>) {
        if claimed.is_empty() {
            return;
        }
        let (start, stale) = {
            let mut reserved = lock(&ticket.reserved);
            let mut board = self.lock_board();
            for delivery in &claimed {
                if let Some(at) = reserved.iter().position(|e| *e == delivery.endpoint.id) {
                    reserved.swap_remove(at);
                    board.unreserve(&delivery.endpoint.id);
                }
            }
            board.admit(claimed, self.clock.now())
        };
        self.start_all(start);
        self.release_stale(stale);
    }
}

/// The direct claims of one new message: the endpoints reserved for it so far.
pub struct Ticket {
    dispatcher: Arc<Dispatcher>,
    lease: Timestamp,
    reserved: Mutex<Vec<EndpointId>>,
}

impl Ticket {
    /// Takes over the deliveries the store wrote claimed for this ticket.
    pub fn hand_over(&self, claimed: Vec<ClaimedDelivery>) {
        self.dispatcher.hand_over(self, claimed);
    }
}

impl DirectClaims for Ticket {
    fn lease(&self) -> Timestamp {
        self.lease
    }

    fn reserve(&self, endpoint: &EndpointId) -> bool {
        let mut reserved = lock(&self.reserved);
        if reserved.contains(endpoint) {
            return true;
        }
        let now = self.dispatcher.clock.now();
        if !self.dispatcher.lock_board().reserve(endpoint, now) {
            return false;
        }
        reserved.push(endpoint.clone());
        true
    }
}

impl Drop for Ticket {
    /// Gives back the room of reservations that were not handed over (the message was not
    /// written, or the write failed).
    fn drop(&mut self) {
        let reserved = std::mem::take(&mut *lock(&self.reserved));
        if reserved.is_empty() {
            return;
        }
        let now = self.dispatcher.clock.now();
        let mut board = self.dispatcher.lock_board();
        for endpoint in &reserved {
            board.unreserve(endpoint);
            board.forget_if_resting(endpoint, now);
        }
    }
}
