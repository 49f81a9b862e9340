//! The hot path on PostgreSQL: accepting messages and recording attempts go through the
//! batchers (`ingest`, `records`); claims are here.
//!
//! A claim is one transaction: it locks the head of the due queue (as many rows as it may
//! take, oldest first, `FOR UPDATE SKIP LOCKED`: rows another node is claiming right now
//! are passed over, not waited for), picks from it within each endpoint's room, looks past
//! the head through the per-endpoint due index when the head did not fill it
//! ([`LOOK_PAST`]; not again for [`LOOK_PAST_PAUSE`] after a look that found nothing), and
//! marks what it took `sending` with `lease_until` and `next_attempt_at` set to the lease's
//! end, so a claim whose node died comes due again when its lease expires, with no separate
//! sweep. The claim also names its node (`claimed_by`), so that the nodes can give back a
//! dead node's claims sooner, as soon as its heartbeat goes stale (`nodes`). Deliveries of
//! throttled endpoints and applications are taken within their token buckets
//! (`store::throttle`), whose rows the claim locks (after its deliveries, in key order) so
//! claims on every node take turns on them; those without a token are deferred. It commits
//! before the claims are returned: no transaction is open while they are sent. Deliveries
//! of a disabled endpoint are parked with a NULL `next_attempt_at` and never scanned.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use chrono::TimeDelta;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

use super::sql::{batch_query, id_array};
use super::{PgStore, micros};
use crate::domain::{AppId, DeliveryOrder, Endpoint, EndpointId, Message, Timestamp, Trigger};
use crate::store::fifo;
use crate::store::rows::{self, ENDPOINT_COLUMNS, MESSAGE_COLUMNS, StoredRow};
use crate::store::throttle::{self, Buckets, Candidate, bucket_keys};
use crate::store::{
    AttemptRecord, ClaimLimits, ClaimedDelivery, Enqueued, NewMessage, QueueStore, Result,
};

/// One due delivery of each endpoint not in `$2` (at most `$3`), due by `$1`: how a claim
/// looks past endpoints without room. Public for the plan test (`tests/it/postgres.rs`).
///
/// The planner cannot know which endpoint the outer row is, so it takes each endpoint's
/// share of the due deliveries to be the average, and with one endpoint holding nearly all
/// of them it walked `delivery_due` (the whole queue in time order, filtering by endpoint)
/// for each other endpoint: with a backlog of a million, 3.2 s per claim, and the backlog
/// drained at 50 to 1,000 deliveries a second (`hookd-bench h --database-url …`). Two
/// redundant conditions steer it to `delivery_due_by_endpoint` (2.6 ms there): the range
/// `endpoint_id >= e.id AND endpoint_id <= e.id`, which the per-endpoint index takes as its
/// bounds and which makes the planner expect few rows of the endpoint, so that walking
/// another index to find them looks dear; and the time bound written as a row comparison
/// with the endpoint, which only the per-endpoint index can take as a bound. The plan is
/// checked by `tests/it/postgres.rs`, for custom and generic plans.
pub const LOOK_PAST: &str = "SELECT due.id, e.id AS endpoint_id, e.app_id, e.rate_limit,
       (SELECT a.rate_limit FROM application a WHERE a.id = e.app_id) AS app_rate,
       e.ordering, e.fifo_head
     FROM endpoint e CROSS JOIN LATERAL (
        SELECT d.id FROM delivery d
        WHERE d.endpoint_id = e.id AND d.status IN (1, 3)
          AND d.endpoint_id >= e.id AND d.endpoint_id <= e.id
          AND (d.endpoint_id, d.next_attempt_at) <= (e.id, $1)
        ORDER BY d.next_attempt_at LIMIT 1
        FOR UPDATE OF d SKIP LOCKED) due
     WHERE NOT e.disabled AND NOT (e.id = ANY($2::text[]))
     LIMIT $3";

/// How long a node's claims do not look past the head after a look that found nothing.
///
/// During a drain one endpoint's backlog fills every head, each claim was crowded out, and
/// each looked past it: a look costs about a millisecond of the database's time (one probe
/// of the per-endpoint due index per endpoint, over the dead entries the claims and records
/// leave until a vacuum), and with direct claims taking the other endpoints' new messages it
/// nearly always found nothing: a tenth of the statements' time in the drain (step 26 in
/// `docs/performance.md`). A delivery that comes due behind a backlog within the pause (a
/// retry, or a message no node could claim directly) waits up to this much longer; a look
/// that finds something does not pause.
pub const LOOK_PAST_PAUSE: TimeDelta = TimeDelta::milliseconds(100);

#[async_trait]
impl QueueStore for PgStore {
    async fn enqueue_message(&self, mut new: NewMessage) -> Result<Enqueued> {
        match new.key.take() {
            Some(key) => crate::store::keyed_in_steps(self, &key, self.ingest.submit(new)).await,
            None => self.ingest.submit(new).await,
        }
    }

    async fn enqueue_batch(
        &self,
        news: Vec<NewMessage>,
        atomic: bool,
    ) -> Result<Vec<Result<Enqueued>>> {
        let target = super::batch::Target {
            pool: self.pool.clone(),
            node: self.node.clone(),
            secrets: self.secrets.clone(),
        };
        super::ingest::write_request(&target, &news, atomic).await
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Timestamp,
        limits: &ClaimLimits,
    ) -> Result<Vec<ClaimedDelivery>> {
        let mut tx = self.pool.begin().await?;
        // The head of the due queue, as many rows as the claim may take, locked; rows other
        // nodes are claiming are passed over. Reading more to look past endpoints without
        // room cost more than it found: during a drain, one endpoint's backlog fills any
        // head, and each row read is locked, sent and decoded (step 24 in
        // `docs/performance.md`). What lies past the head is found through the per-endpoint
        // due index instead (`LOOK_PAST`).
        let scan = limits.total.max(1);
        let head = sqlx::query(
            "SELECT d.id, d.endpoint_id, d.app_id, e.rate_limit, a.rate_limit AS app_rate,
               e.ordering, e.fifo_head
             FROM delivery d JOIN endpoint e ON e.id = d.endpoint_id
               JOIN application a ON a.id = d.app_id
             WHERE d.status IN (1, 3) AND d.next_attempt_at <= $1 AND NOT e.disabled
             ORDER BY d.next_attempt_at
             LIMIT $2
             FOR UPDATE OF d SKIP LOCKED",
        )
        .bind(micros(now))
        .bind(i64::try_from(scan).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        let candidates: Vec<Candidate> = head.iter().map(candidate).collect::<Result<_>>()?;
        let candidates = fifo_gate(&mut tx, candidates, now).await?;
        let mut buckets = Buckets::default();
        lock_buckets(&mut tx, &candidates, &mut buckets).await?;
        let mut picked = buckets.pick(&candidates, limits, 0, now);
        let crowded_out = limits.crowded_out(picked.ids.len(), head.len());
        if crowded_out && micros(now) >= self.look_past_from.load(Ordering::Relaxed) {
            // Look past those endpoints, one due delivery per other endpoint, through the
            // per-endpoint due index: their backlog is never scanned. Unless a look in the
            // last `LOOK_PAST_PAUSE` found nothing.
            let excluded: Vec<EndpointId> = candidates
                .iter()
                .map(|c| c.endpoint.clone())
                .chain(limits.full())
                .collect();
            let more = sqlx::query(LOOK_PAST)
                .bind(micros(now))
                .bind(id_array(&excluded))
                .bind(i64::try_from(limits.total - picked.ids.len()).unwrap_or(i64::MAX))
                .fetch_all(&mut *tx)
                .await?;
            if more.is_empty() {
                self.look_past_from
                    .store(micros(now + LOOK_PAST_PAUSE), Ordering::Relaxed);
            }
            let more: Vec<Candidate> = more.iter().map(candidate).collect::<Result<_>>()?;
            let more = fifo_gate(&mut tx, more, now).await?;
            lock_buckets(&mut tx, &more, &mut buckets).await?;
            let behind = buckets.pick(&more, limits, picked.ids.len(), now);
            picked.ids.extend(behind.ids);
            picked.deferred.extend(behind.deferred);
        }
        save_buckets(&mut tx, &buckets, &picked.deferred).await?;
        let picked = picked.ids;
        if picked.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let claimed = batch_query(
            "UPDATE delivery SET status = 3, lease_until = $2, next_attempt_at = $2,
                claimed_by = $4, updated_at = $1
             WHERE id = ANY($3)
             RETURNING id, msg_id, endpoint_id, attempts, trigger_type",
        )
        .bind(micros(now))
        .bind(micros(lease))
        .bind(&picked)
        .bind(&*self.node)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let mut msg_ids: Vec<String> = claimed
            .iter()
            .map(|r| r.text("msg_id"))
            .collect::<Result<_>>()?;
        let mut endpoint_ids: Vec<String> = claimed
            .iter()
            .map(|r| r.text("endpoint_id"))
            .collect::<Result<_>>()?;
        msg_ids.sort_unstable();
        msg_ids.dedup();
        endpoint_ids.sort_unstable();
        endpoint_ids.dedup();
        let messages = batch_query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM message WHERE id = ANY($1)"
        ))
        .bind(&msg_ids)
        .fetch_all(&self.pool)
        .await?;
        let endpoints = batch_query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoint WHERE id = ANY($1)"
        ))
        .bind(&endpoint_ids)
        .fetch_all(&self.pool)
        .await?;
        let messages: HashMap<String, Message> = rows::all(&messages, rows::message)?
            .into_iter()
            .map(|m| (m.id.as_str().to_owned(), m))
            .collect();
        let endpoints: HashMap<String, Endpoint> = endpoints
            .iter()
            .map(|row| rows::claimable_endpoint(row, &*self.secrets))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .map(|e| (e.id.as_str().to_owned(), e))
            .collect();
        let mut out = Vec::with_capacity(claimed.len());
        for row in &claimed {
            // Missing only if deleted since the claim, and then the delivery went with it
            // (pruned with its message, or by ON DELETE CASCADE from its endpoint): nothing
            // to send. Or its endpoint's secrets could not be read (`claimable_endpoint`):
            // it is sent once they can.
            let (Some(message), Some(endpoint)) = (
                messages.get(&row.text("msg_id")?),
                endpoints.get(&row.text("endpoint_id")?),
            ) else {
                continue;
            };
            out.push(ClaimedDelivery {
                id: row.int("id")?,
                lease,
                attempts: u32::try_from(row.int("attempts")?).unwrap_or(u32::MAX),
                trigger: Trigger::from_code(row.int("trigger_type")?),
                message: message.clone(),
                endpoint: endpoint.clone(),
                direct: false,
            });
        }
        Ok(out)
    }

    async fn record_attempt(&self, record: AttemptRecord) -> Result<()> {
        self.records.submit(record).await
    }
}

/// A candidate from its columns (`id`, `endpoint_id`, `app_id`, `rate_limit`, `app_rate`,
/// `ordering`, `fifo_head`).
fn candidate(row: &PgRow) -> Result<Candidate> {
    let rate = |column| -> Result<Option<u16>> { Ok(throttle::rate(row.opt_int(column)?)) };
    let id = row.int("id")?;
    let fifo = row.int("ordering")? == DeliveryOrder::Fifo.code();
    Ok(Candidate {
        id,
        endpoint: EndpointId::from_stored(row.text("endpoint_id")?),
        app: AppId::from_stored(row.text("app_id")?),
        endpoint_rate: rate("rate_limit")?,
        app_rate: rate("app_rate")?,
        behind: fifo && row.opt_int("fifo_head")? != Some(id),
    })
}

/// The candidates a claim may take: those behind their FIFO line's head are parked, and the
/// heads their lines' promotions made due take their place. The lines' endpoints are locked
/// first, in id order (`store::fifo`).
async fn fifo_gate(
    conn: &mut PgConnection,
    candidates: Vec<Candidate>,
    now: Timestamp,
) -> Result<Vec<Candidate>> {
    let (mut free, behind) = fifo::split(candidates);
    if behind.is_empty() {
        return Ok(free);
    }
    let mut endpoints: Vec<&str> = behind.iter().map(|c| c.endpoint.as_str()).collect();
    endpoints.sort_unstable();
    endpoints.dedup();
    batch_query("SELECT id FROM endpoint WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(&endpoints)
        .execute(&mut *conn)
        .await?;
    let ids: Vec<i64> = behind.iter().map(|c| c.id).collect();
    batch_query(
        "UPDATE delivery SET status = 1, lease_until = NULL, next_attempt_at = NULL,
           updated_at = $2
         WHERE id = ANY($1) AND status IN (1, 3)",
    )
    .bind(&ids)
    .bind(micros(now))
    .execute(&mut *conn)
    .await?;
    let mut heads = HashMap::with_capacity(endpoints.len());
    for endpoint in endpoints {
        let head = fifo::promote(&mut *conn, endpoint, now).await?;
        heads.insert(endpoint.to_owned(), head);
    }
    free.extend(fifo::heads_due(&behind, &heads, now));
    Ok(free)
}

/// Locks (creating them if need be) and reads the token buckets of the throttled candidates
/// not read yet, in key order. A claim that locks buckets in two steps (past the head) can
/// meet another doing the same in the other order: PostgreSQL then fails one of them, which
/// the dispatcher retries a second later.
async fn lock_buckets(
    conn: &mut PgConnection,
    candidates: &[Candidate],
    buckets: &mut Buckets,
) -> Result<()> {
    let keys = bucket_keys(candidates);
    if keys.is_empty() {
        return Ok(());
    }
    // The no-op update locks an existing row, as FOR UPDATE would, and returns it.
    let rows = sqlx::query(
        "INSERT INTO throttle (key, next_at) SELECT k, NULL FROM unnest($1::text[]) AS k
         ON CONFLICT (key) DO UPDATE SET next_at = throttle.next_at
         RETURNING key, next_at",
    )
    .bind(&keys)
    .fetch_all(&mut *conn)
    .await?;
    for row in &rows {
        buckets.load(row.text("key")?, row.opt_int("next_at")?);
    }
    Ok(())
}

/// Writes the buckets that gave tokens, and defers the deliveries they had none for: pending
/// (a claim whose lease ran out is given up), due again when their turn comes.
async fn save_buckets(
    conn: &mut PgConnection,
    buckets: &Buckets,
    deferred: &[(i64, i64)],
) -> Result<()> {
    let changed = buckets.changed();
    if !changed.is_empty() {
        let (keys, times): (Vec<String>, Vec<i64>) = changed.into_iter().unzip();
        batch_query(
            "UPDATE throttle SET next_at = t.at FROM unnest($1::text[], $2::bigint[]) AS t(key, at)
             WHERE throttle.key = t.key",
        )
        .bind(&keys)
        .bind(&times)
        .execute(&mut *conn)
        .await?;
    }
    if !deferred.is_empty() {
        let (ids, times): (Vec<i64>, Vec<i64>) = deferred.iter().copied().unzip();
        batch_query(
            "UPDATE delivery SET status = 1, lease_until = NULL, next_attempt_at = t.at
             FROM unnest($1::bigint[], $2::bigint[]) AS t(id, at) WHERE delivery.id = t.id",
        )
        .bind(&ids)
        .bind(&times)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
