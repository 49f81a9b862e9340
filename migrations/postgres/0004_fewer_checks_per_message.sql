-- Two foreign-key checks and one index entry less for every message accepted and every
-- attempt recorded. Each check is a query of its own that locks the referenced message row,
-- and together they were about a tenth of the server's CPU per message.
--
-- delivery.msg_id: a delivery is inserted by the statement that inserts its message, so the
-- check could never fail. attempt.msg_id: an attempt is recorded only for a delivery that
-- still exists, under its lease. What the constraints' ON DELETE CASCADE did is done by the
-- deletes themselves: pruning a message deletes its deliveries and attempts in the same
-- statement, and deleting an application or an endpoint still cascades to them through
-- endpoint_id (every delivery and attempt of an application's message is to one of its
-- endpoints).
ALTER TABLE delivery DROP CONSTRAINT IF EXISTS delivery_msg_id_fkey;
ALTER TABLE attempt DROP CONSTRAINT IF EXISTS attempt_msg_id_fkey;

-- Messages without an eventId (most of them) need no entry in the index that keeps eventIds
-- unique per application.
CREATE UNIQUE INDEX message_event_id ON message (app_id, event_id) WHERE event_id IS NOT NULL;
ALTER TABLE message DROP CONSTRAINT IF EXISTS message_app_id_event_id_key;
