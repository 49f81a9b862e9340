//! Recording attempt outcomes, inside a write batch: two statements for the whole batch.

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::deliveries::park_or_unpark;
use super::writer::ROWS_PER_STATEMENT;
use crate::domain::DeliveryStatus;
use crate::domain::time::to_micros;
use crate::store::rows::to_json;
use crate::store::{AttemptRecord, NextStep, Result};

/// Writes the attempts and moves their deliveries on.
///
/// A delivery moves only while its claim still holds the lease (a resend or a newer claim
/// wins). An attempt whose delivery is gone (its message, endpoint or application was deleted
/// while the attempt was in flight) has nothing left to be recorded against and is dropped.
pub(super) async fn record_all(
    conn: &mut SqliteConnection,
    records: &[&AttemptRecord],
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    for chunk in records.chunks(ROWS_PER_STATEMENT / 15) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO attempt (id, msg_id, endpoint_id, app_id, url, status, \
             response_status_code, response, response_headers, duration_ms, trigger_type, \
             error_class, error, created_at) \
             SELECT column1, column2, column3, column4, column5, column6, column7, column8, \
             column9, column10, column11, column12, column13, column14 FROM (",
        );
        qb.push_values(chunk, |mut b, r| {
            let a = &r.attempt;
            b.push_bind(a.id.as_str())
                .push_bind(a.msg_id.as_str())
                .push_bind(a.endpoint_id.as_str())
                .push_bind(a.app_id.as_str())
                .push_bind(a.url.as_str())
                .push_bind(a.status.code())
                .push_bind(i64::from(a.response_status_code))
                .push_bind(a.response_body.as_str())
                .push_bind(to_json(&a.response_headers))
                .push_bind(i64::try_from(a.duration_ms).unwrap_or(i64::MAX))
                .push_bind(a.trigger.code())
                .push_bind(a.error.as_ref().map(|e| e.class.as_str()))
                .push_bind(a.error.as_ref().map(|e| e.message.as_str()))
                .push_bind(to_micros(a.created_at))
                .push_bind(r.delivery_id);
        });
        qb.push(") WHERE EXISTS (SELECT 1 FROM delivery WHERE delivery.id = column15)");
        qb.build().execute(&mut *conn).await?;
    }
    for chunk in records.chunks(ROWS_PER_STATEMENT / 5) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "UPDATE delivery SET status = v.column3, next_attempt_at = v.column4, \
             lease_until = NULL, attempts = attempts + 1, trigger_type = 0, \
             updated_at = v.column5 FROM (",
        );
        qb.push_values(chunk, |mut b, r| {
            let (status, next_at) = match r.next {
                NextStep::Delivered => (DeliveryStatus::Success, None),
                NextStep::RetryAt(at) => (DeliveryStatus::Pending, Some(to_micros(at))),
                NextStep::Failed | NextStep::DisableEndpoint => (DeliveryStatus::Fail, None),
            };
            b.push_bind(r.delivery_id)
                .push_bind(to_micros(r.lease))
                .push_bind(status.code())
                .push_bind(next_at)
                .push_bind(to_micros(r.attempt.created_at));
        });
        qb.push(") AS v WHERE delivery.id = v.column1 AND delivery.lease_until = v.column2");
        qb.build().execute(&mut *conn).await?;
    }
    for r in records
        .iter()
        .filter(|r| r.next == NextStep::DisableEndpoint)
    {
        let at = r.attempt.created_at;
        sqlx::query("UPDATE endpoint SET disabled = 1, updated_at = $2 WHERE id = $1")
            .bind(r.attempt.endpoint_id.as_str())
            .bind(to_micros(at))
            .execute(&mut *conn)
            .await?;
        park_or_unpark(conn, &r.attempt.endpoint_id, true, at).await?;
    }
    Ok(())
}
