-- An Idempotency-Key of PATCH /v1/bookings/{id} (a reschedule) is recorded
-- in booking_idempotency with the reschedule it made: spec_version is the
-- booking spec it wrote (0 for POST /v1/bookings), so that a retry after the
-- first request died can tell whether a provider refused that change.
ALTER TABLE booking_idempotency ADD COLUMN spec_version BIGINT NOT NULL DEFAULT 0;
