-- A transient provider failure delays a step instead of failing it.
-- failing_since_us is when the step's current run of failures began (0
-- while it is not failing): a required step fails the booking only once it
-- has failed for longer than the retry window. retry_at_us is when the step
-- may be tried next (0: now), set from the provider's Retry-After or an open
-- circuit's cooldown; no runner calls the provider before it.
ALTER TABLE booking_steps ADD COLUMN failing_since_us BIGINT NOT NULL DEFAULT 0;
ALTER TABLE booking_steps ADD COLUMN retry_at_us BIGINT NOT NULL DEFAULT 0;
