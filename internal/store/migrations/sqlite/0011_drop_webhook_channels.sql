-- Google push channels are kept in calendar_channels only (the connect
-- area's store, which the webhook intake reads through its Channels
-- interface); webhook_channels was written by a second implementation that
-- only tests used, and is empty in every deployment.
DROP TABLE webhook_channels;
