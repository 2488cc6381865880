-- A Google push channel replaced by its renewal is kept until it expires:
-- a notification it delivered before the renewal may be processed after it
-- (its delivery names the old channel), and until it is stopped at Google
-- it can still deliver. replaced_by is the channel that replaced it ('' for
-- a channel in use); stopped_at when channels.stop succeeded (0: not yet),
-- after which it delivers no more.
ALTER TABLE calendar_channels ADD COLUMN replaced_by TEXT NOT NULL DEFAULT '';
ALTER TABLE calendar_channels ADD COLUMN stopped_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_channels ADD COLUMN replaced_by TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_channels ADD COLUMN stopped_at BIGINT NOT NULL DEFAULT 0;
