-- Booking area (issue 6): mentor schedules, bookings with their saga steps,
-- the audit trail and idempotency keys. Times are unix microseconds (BIGINT).
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE mentor_schedules (
    mentor_id          TEXT PRIMARY KEY,
    timezone           TEXT NOT NULL,
    working_hours      TEXT NOT NULL, -- JSON [{weekday,start,end}]
    slot_minutes       INTEGER NOT NULL,
    buffer_minutes     INTEGER NOT NULL,
    min_notice_minutes INTEGER NOT NULL,
    max_advance_days   INTEGER NOT NULL,
    zoom_user          TEXT NOT NULL DEFAULT '',
    updated_at         BIGINT NOT NULL
);

CREATE TABLE bookings (
    id             TEXT PRIMARY KEY,
    mentor_id      TEXT NOT NULL,
    candidate_id   TEXT NOT NULL,
    start_us       BIGINT NOT NULL,
    end_us         BIGINT NOT NULL,
    -- end_us plus the mentor's buffer: the slot is blocked until then.
    block_end_us   BIGINT NOT NULL,
    timezone       TEXT NOT NULL,
    topic          TEXT NOT NULL,
    notes          TEXT NOT NULL DEFAULT '',
    zoom_user      TEXT NOT NULL,
    status         TEXT NOT NULL,
    op             TEXT NOT NULL,
    active         BOOLEAN NOT NULL,
    join_url       TEXT,
    failure_reason TEXT,
    version        BIGINT NOT NULL,
    spec_version   BIGINT NOT NULL,
    lease_owner    TEXT NOT NULL DEFAULT '',
    lease_until    BIGINT NOT NULL DEFAULT 0,
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    CHECK (end_us > start_us AND block_end_us >= end_us),
    -- No double booking: active bookings of a mentor never overlap.
    CONSTRAINT bookings_no_overlap EXCLUDE USING gist (mentor_id WITH =, int8range(start_us, block_end_us) WITH &&) WHERE (active)
);
CREATE INDEX bookings_mentor_start ON bookings (mentor_id, start_us DESC, id DESC);
CREATE INDEX bookings_candidate_start ON bookings (candidate_id, start_us DESC, id DESC);
CREATE INDEX bookings_start ON bookings (start_us DESC, id DESC);

CREATE TABLE booking_steps (
    booking_id   TEXT NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    state        TEXT NOT NULL,
    provider_ref TEXT,
    last_error   TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    applied_spec BIGINT NOT NULL DEFAULT 0,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (booking_id, name)
);
CREATE INDEX booking_steps_ref ON booking_steps (name, provider_ref);

CREATE TABLE booking_audit (
    seq         BIGSERIAL PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    booking_id  TEXT NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    at_us       BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    reason      TEXT,
    changes     TEXT
);
CREATE INDEX booking_audit_booking ON booking_audit (booking_id, seq);

CREATE TABLE booking_idempotency (
    caller          TEXT NOT NULL,
    key             TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    booking_id      TEXT NOT NULL,
    response_status INTEGER NOT NULL DEFAULT 0,
    response        TEXT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (caller, key)
);
