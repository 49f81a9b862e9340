-- Dead letters (`GET /api/v1/app/{app}/dead-letter`), recoveries and their requeues walk an
-- application's failed deliveries in delivery number order. Only failed deliveries have an
-- entry: a delivery gets one when it fails for good (retries exhausted, or 410) and loses it
-- when it is queued again, so accepting a message, claiming and recording a successful
-- attempt write nothing more to it. (`status` is already in `delivery_due`'s predicate, so
-- the updates that change it were never HOT: this index takes away no HOT update.)
CREATE INDEX delivery_failed ON delivery (app_id, id) WHERE status = 2;
