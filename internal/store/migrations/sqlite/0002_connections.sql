-- Connect area: users' calendar connections, OAuth states, token refresh
-- leases and Google push channels. Secrets (tokens, passwords, channel
-- tokens) are never stored here: they live in the secret store, channel
-- tokens only as SHA-256 hashes. Times are unix microseconds (BIGINT).
CREATE TABLE connections (
    user_sub      TEXT NOT NULL,
    provider      TEXT NOT NULL,
    status        TEXT NOT NULL,
    account_email TEXT NOT NULL DEFAULT '',
    calendar_id   TEXT NOT NULL DEFAULT '',
    calendar_name TEXT NOT NULL DEFAULT '',
    calendar_url  TEXT NOT NULL DEFAULT '',
    server_url    TEXT NOT NULL DEFAULT '',
    last_error    TEXT NOT NULL DEFAULT '',
    sync_cursor   TEXT NOT NULL DEFAULT '',
    connected_at  BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (user_sub, provider)
);
CREATE INDEX connections_provider_status ON connections (provider, status);

-- One row per issued OAuth state: consumed (deleted) by the callback.
CREATE TABLE oauth_states (
    id         TEXT PRIMARY KEY,
    user_sub   TEXT NOT NULL,
    provider   TEXT NOT NULL,
    verifier   TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX oauth_states_expires ON oauth_states (expires_at);

-- Cross-replica lease on refreshing one user's provider token.
CREATE TABLE token_leases (
    user_sub   TEXT NOT NULL,
    provider   TEXT NOT NULL,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (user_sub, provider)
);

-- Google Calendar push channels (events.watch).
CREATE TABLE calendar_channels (
    channel_id  TEXT PRIMARY KEY,
    user_sub    TEXT NOT NULL,
    provider    TEXT NOT NULL,
    calendar_id TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    token_hash  BYTEA NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX calendar_channels_user ON calendar_channels (user_sub, provider);
CREATE INDEX calendar_channels_expires ON calendar_channels (expires_at);
