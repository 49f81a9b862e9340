//! The board's rules: windows, overload, claim-ahead, the node-wide budget, reservations.

use std::time::Duration;

use super::*;
use crate::delivery::dispatcher::outcome::tests::answered;
use crate::domain::time::now;

fn claimed(endpoint: &crate::domain::Endpoint, id: i64, lease: Timestamp) -> ClaimedDelivery {
    ClaimedDelivery {
        id,
        lease,
        attempts: 0,
        trigger: crate::domain::Trigger::Scheduled,
        message: crate::domain::Message {
            id: crate::domain::MessageId::generate(),
            app_id: endpoint.app_id.clone(),
            event_type: crate::domain::EventTypeName::parse("a.b").unwrap(),
            event_id: None,
            channels: None,
            payload: None,
            created_at: lease,
            deliver_at: None,
            priority: None,
        },
        endpoint: endpoint.clone(),
        direct: false,
    }
}

fn endpoint() -> crate::domain::Endpoint {
    crate::domain::Endpoint {
        id: EndpointId::generate(),
        app_id: crate::domain::AppId::generate(),
        uid: None,
        url: crate::domain::EndpointUrl::parse("http://127.0.0.1:9/").unwrap(),
        description: String::new(),
        disabled: false,
        rate_limit: None,
        subscription: Default::default(),
        metadata: Default::default(),
        headers: Default::default(),
        secret: crate::domain::SigningSecret::generate(),
        previous_secrets: Vec::new(),
        signature: Default::default(),
        auto_disable_after_failures: None,
        auto_disable_after_secs: None,
        retry_policy: None,
        ordering: Default::default(),
        created_at: now(),
        updated_at: now(),
    }
}

fn board() -> Board {
    Board::new(8, 2, 100, TimeDelta::seconds(20))
}

#[test]
fn overload_halves_the_limit_pauses_the_endpoint_and_gives_its_queue_back() {
    let t = now();
    let lease = t + TimeDelta::seconds(45);
    let ep = endpoint();
    let mut board = board();
    let (start, stale) = board.admit((0..12).map(|i| claimed(&ep, i, lease)).collect(), t);
    assert_eq!((start.len(), stale.len()), (8, 0), "8 slots, 4 queued");
    assert_eq!(board.room(t)[&ep.id], 0, "one window until it proves fast");
    let (start, back) = board.finish(&ep.id, Some(&answered(429, Some(10))), t);
    assert!(start.is_empty());
    assert_eq!(back.len(), 4, "the queue goes back while paused");
    assert_eq!(board.held, 8, "the finished attempt is held until recorded");
    board.recorded(false);
    assert_eq!(board.held, 7);
    assert_eq!(board.loads[&ep.id].limit, 4);
    assert_eq!(board.next_resume(t), Some(t + TimeDelta::seconds(10)));
    let later = t + TimeDelta::seconds(11);
    assert_eq!(board.room(t)[&ep.id], 0, "paused");
    assert_eq!(board.room(later)[&ep.id], 1, "7 held, two windows of 4");
    for _ in 0..7 {
        board.finish(&ep.id, Some(&answered(200, None)), later);
        board.recorded(false);
    }
    assert!(board.loads.is_empty(), "back to rest after successes");
    assert_eq!(board.held, 0);
}

#[test]
fn a_finished_attempt_starts_the_next_queued_one() {
    let t = now();
    let lease = t + TimeDelta::seconds(45);
    let ep = endpoint();
    let mut board = board();
    let (start, _) = board.admit((0..10).map(|i| claimed(&ep, i, lease)).collect(), t);
    assert_eq!(
        start.iter().map(|d| d.id).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    let (start, back) = board.finish(&ep.id, Some(&answered(200, None)), t);
    assert_eq!(start.iter().map(|d| d.id).collect::<Vec<_>>(), [8]);
    assert!(back.is_empty());
    assert_eq!(
        board.held, 10,
        "nine, and the finished one until it is recorded"
    );
    board.recorded(false);
    assert_eq!(board.held, 9);
}

#[test]
fn a_queued_claim_with_too_little_lease_left_is_given_back() {
    let t = now();
    let ep = endpoint();
    let mut board = board();
    let fresh = t + TimeDelta::seconds(45);
    let (start, _) = board.admit((0..8).map(|i| claimed(&ep, i, fresh)).collect(), t);
    assert_eq!(start.len(), 8);
    let short = t + TimeDelta::seconds(25);
    board.admit(vec![claimed(&ep, 100, short)], t);
    let (start, back) = board.finish(
        &ep.id,
        Some(&answered(200, None)),
        t + TimeDelta::seconds(10),
    );
    assert!(start.is_empty());
    assert_eq!(back, [(100, short)]);
    assert_eq!(board.held, 8, "seven in flight, one waiting for its record");
}

#[test]
fn a_sent_attempt_holds_the_nodes_room_until_it_is_recorded() {
    let t = now();
    let lease = t + TimeDelta::seconds(45);
    // A node of 4 attempts in flight (8 held), endpoints of 8.
    let mut board = Board::new(8, 2, 4, TimeDelta::seconds(20));
    let eps: Vec<_> = (0..8).map(|_| endpoint()).collect();
    let (start, _) = board.admit(
        eps.iter()
            .enumerate()
            .map(|(i, ep)| claimed(ep, i as i64, lease))
            .collect(),
        t,
    );
    assert_eq!(start.len(), 4, "4 in flight, 4 queued");
    for d in &start {
        board.finish(&d.endpoint.id, Some(&answered(200, None)), t);
    }
    // The queued four are in flight now; the four sent wait for their records.
    assert_eq!(board.in_flight, 4);
    assert_eq!(board.held, 8);
    assert_eq!(board.claim_room(), 0, "no room to claim more");
    for _ in 0..4 {
        board.recorded(false);
    }
    assert_eq!(board.held, 4);
    assert_eq!(
        board.claim_room(),
        2,
        "room for four more, two of them kept for direct claims"
    );
}

fn claimed_directly(
    endpoint: &crate::domain::Endpoint,
    id: i64,
    lease: Timestamp,
) -> ClaimedDelivery {
    ClaimedDelivery {
        direct: true,
        ..claimed(endpoint, id, lease)
    }
}

#[test]
fn a_node_full_of_claims_keeps_a_share_for_direct_claims() {
    let t = now();
    let lease = t + TimeDelta::seconds(45);
    // 8 in flight, 16 held, 4 of them kept for direct claims; endpoints of 4.
    let mut board = Board::new(4, 2, 8, TimeDelta::seconds(20));
    assert_eq!(board.direct_share(), 4);
    assert_eq!(board.claim_room(), 12, "claims leave the share free");
    let backlog = endpoint();
    board.admit((0..12).map(|i| claimed(&backlog, i, lease)).collect(), t);
    board.note_claim(&[], &limits_of(&board, t), true);
    assert_eq!(board.claim_room(), 0);
    // As after a refusal while the node was full: what waits in the store goes first.
    board.backlog = true;

    // A backlog fills the node's claims; new messages to other endpoints still go direct.
    let (a, b) = (endpoint(), endpoint());
    assert!(board.takes_direct(), "the share is free");
    assert!(board.reserve(&a.id, t));
    assert!(board.reserve(&a.id, t));
    assert!(board.reserve(&b.id, t));
    assert!(
        !board.reserve(&backlog.id, t),
        "an endpoint with work in the store is claimed from it"
    );
    assert!(board.reserve(&b.id, t));
    assert_eq!(board.held, 16);
    assert!(!board.takes_direct(), "the share is used up");
    assert!(!board.reserve(&a.id, t));
    assert_eq!(board.claim_room(), 0);

    // Handed over, sent and recorded, a direct claim's room is the share's again.
    board.unreserve(&b.id);
    let (start, _) = board.admit(vec![claimed_directly(&b, 100, lease)], t);
    assert_eq!(start.len(), 1);
    assert_eq!(board.held, 16);
    assert!(!board.takes_direct());
    board.finish(&b.id, Some(&answered(200, None)), t);
    board.recorded(true);
    assert!(board.takes_direct());
    assert_eq!(board.claim_room(), 0, "freed room goes to the share first");
    // Room freed by the backlog's attempts goes to claims.
    board.finish(&backlog.id, Some(&answered(200, None)), t);
    board.recorded(false);
    assert_eq!(board.claim_room(), 1);
}

#[test]
fn direct_claims_given_back_free_the_share() {
    let t = now();
    let lease = t + TimeDelta::seconds(45);
    let short = t + TimeDelta::seconds(10);
    let mut board = Board::new(1, 1, 8, TimeDelta::seconds(20));
    let ep = endpoint();
    let direct: Vec<_> = (0..4).map(|i| claimed_directly(&ep, i, lease)).collect();
    board.admit(direct, t);
    assert_eq!(board.direct_held, 4);
    // Paused with three queued: they go back, and their share with them.
    board.finish(&ep.id, Some(&answered(503, Some(5))), t);
    assert_eq!(board.direct_held, 1, "the sent one waits for its record");
    board.recorded(true);
    assert_eq!(board.direct_held, 0);
    // Queued with too little lease left: given back.
    let later = t + TimeDelta::seconds(6);
    let (_, stale) = board.admit(vec![claimed_directly(&ep, 10, short)], later);
    assert_eq!(stale, [(10, short)]);
    assert_eq!(board.direct_held, 0);
    let (start, _) = board.admit(vec![claimed_directly(&ep, 11, lease)], later);
    assert_eq!(start.len(), 1);
    // Stopping gives back the rest.
    board.admit(vec![claimed_directly(&ep, 12, lease)], later);
    assert_eq!(board.stop().len(), 1);
    assert_eq!(board.direct_held, 1, "the one in flight");
}

#[test]
fn a_fast_endpoint_is_claimed_ahead() {
    let t = now();
    let lease = t + TimeDelta::seconds(45);
    let ep = endpoint();
    let mut board = board();
    board.admit(vec![claimed(&ep, 1, lease), claimed(&ep, 2, lease)], t);
    board.finish(&ep.id, Some(&answered(200, None)), t);
    assert_eq!(board.room(t)[&ep.id], 15, "two windows of 8, 1 held");
}

#[test]
fn claimed_ahead_an_endpoint_holds_at_most_a_quarter_of_the_node() {
    let t = now();
    let lease = t + TimeDelta::seconds(45);
    let ep = endpoint();
    // Eight windows of 2 would be 16, the whole room of a node of 8 attempts in flight.
    let mut board = Board::new(2, 8, 8, TimeDelta::seconds(20));
    board.admit(vec![claimed(&ep, 1, lease), claimed(&ep, 2, lease)], t);
    board.finish(&ep.id, Some(&answered(200, None)), t);
    assert_eq!(board.room(t)[&ep.id], 3, "a quarter of 16, 1 in flight");
    for _ in 0..3 {
        assert!(board.reserve(&ep.id, t));
    }
    assert!(
        !board.reserve(&ep.id, t),
        "the rest is left to other endpoints"
    );

    // Never below the endpoint's own limit.
    let ep = endpoint();
    let mut board = Board::new(8, 4, 8, TimeDelta::seconds(20));
    board.admit(vec![claimed(&ep, 1, lease), claimed(&ep, 2, lease)], t);
    board.finish(&ep.id, Some(&answered(200, None)), t);
    assert_eq!(
        board.room(t)[&ep.id],
        7,
        "one window of 8 (not 16 / 4), 1 in flight"
    );
}

#[test]
fn queued_deliveries_wait_for_a_node_wide_slot() {
    let t = now();
    let lease = t + TimeDelta::seconds(45);
    let (a, b) = (endpoint(), endpoint());
    let mut board = Board::new(8, 2, 3, TimeDelta::seconds(20));
    let (start, _) = board.admit(
        vec![
            claimed(&a, 1, lease),
            claimed(&a, 2, lease),
            claimed(&b, 3, lease),
            claimed(&b, 4, lease),
        ],
        t,
    );
    assert_eq!(start.iter().map(|d| d.id).collect::<Vec<_>>(), [1, 2, 3]);
    let (start, _) = board.finish(&a.id, Some(&answered(200, None)), t);
    assert_eq!(start.iter().map(|d| d.id).collect::<Vec<_>>(), [4]);
    assert!(board.ready.is_empty());
}

#[test]
fn a_slow_endpoint_is_not_claimed_ahead() {
    let t = now();
    let lease = t + TimeDelta::seconds(45);
    let ep = endpoint();
    let mut board = board();
    board.admit(vec![claimed(&ep, 1, lease), claimed(&ep, 2, lease)], t);
    let mut slow = answered(200, None);
    slow.duration = Duration::from_secs(2);
    board.finish(&ep.id, Some(&slow), t);
    assert_eq!(board.room(t)[&ep.id], 7, "one window of 8, 1 in flight");
}

#[test]
fn stopping_gives_back_every_queued_claim() {
    let t = now();
    let lease = t + TimeDelta::seconds(45);
    let ep = endpoint();
    let mut board = board();
    board.admit((0..10).map(|i| claimed(&ep, i, lease)).collect(), t);
    assert_eq!(board.stop().len(), 2);
    let (start, _) = board.finish(&ep.id, Some(&answered(200, None)), t);
    assert!(start.is_empty(), "nothing starts once stopping");
}

fn limits_of(board: &Board, t: Timestamp) -> ClaimLimits {
    ClaimLimits {
        total: 256,
        per_endpoint: board.window_of_new(),
        room: board.room(t),
    }
}

#[test]
fn reservations_take_room_until_handed_over_or_cancelled() {
    let t = now();
    let lease = t + TimeDelta::seconds(45);
    let ep = endpoint();
    let mut board = board();
    for _ in 0..16 {
        assert!(board.reserve(&ep.id, t));
    }
    assert_eq!(board.held, 16, "reserved counts as held");
    assert!(!board.reserve(&ep.id, t), "two windows: taken to be fast");
    assert_eq!(
        board.room(t)[&ep.id],
        16,
        "a claim may still drain the store"
    );
    assert!(board.loads[&ep.id].backlog);

    // Handed over: the reservation becomes an attempt, the room stays taken.
    board.unreserve(&ep.id);
    let (start, _) = board.admit(vec![claimed(&ep, 1, lease)], t);
    assert_eq!(start.len(), 1);
    assert_eq!((board.held, board.in_flight), (16, 1));
    // Cancelled (the write failed): the room comes back.
    for _ in 0..15 {
        board.unreserve(&ep.id);
    }
    assert_eq!(board.held, 1);
    assert_eq!(board.loads[&ep.id].reserved, 0);
}

#[test]
fn an_endpoint_left_pending_takes_no_direct_claims_until_a_claim_drains_it() {
    let t = now();
    let lease = t + TimeDelta::seconds(45);
    let ep = endpoint();
    let mut board = Board::new(1, 1, 100, TimeDelta::seconds(20));
    assert!(board.reserve(&ep.id, t));
    assert!(!board.reserve(&ep.id, t), "no room: written pending");
    board.unreserve(&ep.id);
    board.admit(vec![claimed(&ep, 1, lease)], t);
    board.finish(&ep.id, Some(&answered(200, None)), t);
    assert!(
        !board.reserve(&ep.id, t),
        "room again, but older work waits"
    );

    // A claim that took all the room it had may have left more behind.
    let limits = limits_of(&board, t);
    let found = vec![claimed(&ep, 2, lease)];
    board.note_claim(&found, &limits, false);
    board.admit(found, t);
    board.finish(&ep.id, Some(&answered(200, None)), t);
    assert!(!board.reserve(&ep.id, t));
    // A claim cut short by its total may have too.
    board.note_claim(&[], &limits_of(&board, t), true);
    assert!(!board.reserve(&ep.id, t));
    // One with room to spare found all there was.
    board.note_claim(&[], &limits_of(&board, t), false);
    assert!(board.reserve(&ep.id, t), "drained: direct claims again");
}

#[test]
fn a_full_node_takes_no_direct_claims_until_a_claim_drains_it() {
    let t = now();
    let (a, b) = (endpoint(), endpoint());
    let mut board = Board::new(8, 1, 1, TimeDelta::seconds(20));
    assert!(board.takes_direct());
    assert!(board.reserve(&a.id, t));
    assert!(board.reserve(&a.id, t));
    assert!(!board.takes_direct(), "two held of two");
    assert!(!board.reserve(&b.id, t));
    board.unreserve(&a.id);
    board.unreserve(&a.id);
    assert!(!board.takes_direct(), "what was left pending goes first");
    let limits = limits_of(&board, t);
    board.note_claim(&[], &limits, true);
    assert!(!board.takes_direct(), "a full claim may have left more");
    board.note_claim(&[], &limits, false);
    assert!(board.takes_direct());
    assert!(board.reserve(&a.id, t));
    assert!(board.reserve(&b.id, t), "b's own backlog was drained too");
}

#[test]
fn a_paused_endpoint_takes_no_direct_claims() {
    let t = now();
    let lease = t + TimeDelta::seconds(45);
    let ep = endpoint();
    let mut board = board();
    board.admit(vec![claimed(&ep, 1, lease)], t);
    board.finish(&ep.id, Some(&answered(503, Some(5))), t);
    assert!(!board.reserve(&ep.id, t));
    assert!(
        !board.reserve(&ep.id, t + TimeDelta::seconds(6)),
        "pending first"
    );
}

#[test]
fn stopping_refuses_direct_claims_and_gives_back_what_arrives() {
    let t = now();
    let lease = t + TimeDelta::seconds(45);
    let ep = endpoint();
    let mut board = board();
    board.stop();
    assert!(!board.takes_direct());
    assert!(!board.reserve(&ep.id, t));
    let (start, back) = board.admit(vec![claimed(&ep, 7, lease)], t);
    assert!(start.is_empty());
    assert_eq!(back, [(7, lease)]);
    assert_eq!(board.held, 0);
}
