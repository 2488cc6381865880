-- A reschedule a provider refuses is undone instead of failing the booking.
-- While a reschedule of a confirmed booking is in flight, confirmed_* hold
-- the times it was confirmed at (the restore point); they are cleared when
-- the new times are confirmed or restored. refused_spec is the spec version
-- whose change a provider refused last, refused_reason why.
ALTER TABLE bookings ADD COLUMN confirmed_start_us BIGINT;
ALTER TABLE bookings ADD COLUMN confirmed_end_us BIGINT;
ALTER TABLE bookings ADD COLUMN confirmed_timezone TEXT;
ALTER TABLE bookings ADD COLUMN refused_spec BIGINT NOT NULL DEFAULT 0;
ALTER TABLE bookings ADD COLUMN refused_reason TEXT;

-- failures counts a step's failed attempts since it last succeeded: a
-- required step fails the booking after RequiredAttempts failures in a row,
-- however often it succeeded before (attempts counts every try).
ALTER TABLE booking_steps ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
