-- Webhooks (issue 7): every accepted delivery, Google push channels, and
-- calendar sync cursors. Times are unix microseconds (BIGINT).

-- webhook_events holds each accepted delivery exactly once per
-- (provider, external_id): the provider's delivery id, or the SHA-256 of the
-- body when the provider sends none. body is the raw bytes as received
-- (poison bodies need not be valid UTF-8); headers is a JSON object of the
-- safe header subset (never signatures or tokens).
CREATE TABLE webhook_events (
    id           TEXT PRIMARY KEY,
    provider     TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    event_type   TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL,
    headers      TEXT NOT NULL,
    body         BYTEA NOT NULL,
    received_at  BIGINT NOT NULL,
    processed_at BIGINT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    booking_id   TEXT,
    note         TEXT,
    CONSTRAINT webhook_events_dedupe UNIQUE (provider, external_id)
);
CREATE INDEX webhook_events_received ON webhook_events (received_at DESC, id DESC);
CREATE INDEX webhook_events_status ON webhook_events (status, received_at DESC);

-- webhook_channels are Google Calendar push channels (events.watch) the
-- gateway opened; the token is compared on every notification.
CREATE TABLE webhook_channels (
    id          TEXT PRIMARY KEY,
    token       TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    calendar_id TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    address     TEXT NOT NULL DEFAULT '',
    expiration  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX webhook_channels_expiration ON webhook_channels (expiration);

-- webhook_calendar_cursors remember where the last change sync of a
-- connected calendar stopped (a Google sync token or a CalDAV cursor).
CREATE TABLE webhook_calendar_cursors (
    provider    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    calendar_id TEXT NOT NULL,
    cursor      TEXT NOT NULL,
    synced_at   BIGINT NOT NULL,
    PRIMARY KEY (provider, user_id, calendar_id)
);

-- webhook_attendance records participants joining and leaving a booking's
-- Zoom meeting (meeting.participant_joined/left), once per event.
CREATE TABLE webhook_attendance (
    booking_id     TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    name           TEXT NOT NULL,
    email          TEXT NOT NULL,
    joined         INTEGER NOT NULL,
    at             BIGINT NOT NULL,
    PRIMARY KEY (booking_id, participant_id, joined, at)
);
