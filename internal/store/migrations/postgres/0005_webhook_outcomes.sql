-- webhook_outcomes holds what processing did with each delivery (issue 7).
-- A delivery's row in webhook_events is written once, at intake, and not
-- changed afterwards: its status there is the intake's (received, or poison
-- when the body could not be decoded). Processing records its outcome here,
-- a narrow row per delivery, instead of rewriting the ~1 KiB delivery row
-- and its status index: on SQLite the outcome no longer rewrites the pages
-- of the deliveries (the write-ahead log carried them twice), on PostgreSQL
-- an UPDATE of the delivery copied the whole tuple and inserted into every
-- index. A delivery's status is its outcome's, when it has one.
CREATE TABLE webhook_outcomes (
    event_id     TEXT PRIMARY KEY,
    status       TEXT NOT NULL,
    processed_at BIGINT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    booking_id   TEXT,
    note         TEXT
);

INSERT INTO webhook_outcomes (event_id, status, processed_at, attempts, last_error, booking_id, note)
    SELECT id, status, processed_at, attempts, last_error, booking_id, note FROM webhook_events
    WHERE status NOT IN ('received', 'poison') OR attempts > 0;
UPDATE webhook_events SET status = 'received' WHERE status NOT IN ('received', 'poison');

-- Listing by status (admin API) walks webhook_events_received and filters.
DROP INDEX webhook_events_status;
ALTER TABLE webhook_events DROP COLUMN processed_at;
ALTER TABLE webhook_events DROP COLUMN attempts;
ALTER TABLE webhook_events DROP COLUMN last_error;
ALTER TABLE webhook_events DROP COLUMN booking_id;
ALTER TABLE webhook_events DROP COLUMN note;
