-- Per-server configuration, the allowlist of models, the audit log, and spend accounting.
-- Money is integer nano-dollars, as in 0001. Months are 'YYYY-MM' in UTC.

CREATE TABLE guild_settings (
    guild_id             INTEGER PRIMARY KEY,
    default_model        TEXT,              -- NULL: the operator's DEFAULT_MODEL
    system_prompt        TEXT,              -- NULL: the operator's SYSTEM_PROMPT
    provider_sort        TEXT CHECK (provider_sort IN ('price', 'throughput', 'latency')),
    deny_data_collection INTEGER NOT NULL DEFAULT 0,
    allow_fallbacks      INTEGER NOT NULL DEFAULT 1,
    guild_quota_nusd     INTEGER CHECK (guild_quota_nusd >= 0),   -- NULL: the operator's default
    member_quota_nusd    INTEGER CHECK (member_quota_nusd >= 0),  -- NULL: the operator's default
    updated_at           TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- A server with no rows here uses the operator's default list.
CREATE TABLE guild_models (
    guild_id  INTEGER NOT NULL,
    pattern   TEXT    NOT NULL,             -- a model id, or a pattern such as 'anthropic/*' or '*:free'
    added_by  INTEGER NOT NULL,
    added_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (guild_id, pattern)
);

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    guild_id   INTEGER NOT NULL,
    actor_id   INTEGER NOT NULL,
    action     TEXT    NOT NULL,
    old_value  TEXT,
    new_value  TEXT,
    created_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX audit_log_guild ON audit_log (guild_id, id DESC);

-- Running totals: one row per server and month (user_id 0) and per member and month.
-- guild_id 0 holds direct messages. Reads for quotas and /usage never scan history.
CREATE TABLE spend_totals (
    guild_id      INTEGER NOT NULL,
    month         TEXT    NOT NULL,
    user_id       INTEGER NOT NULL,
    spent_nusd    INTEGER NOT NULL DEFAULT 0 CHECK (spent_nusd >= 0),
    reserved_nusd INTEGER NOT NULL DEFAULT 0 CHECK (reserved_nusd >= 0),
    requests      INTEGER NOT NULL DEFAULT 0,
    warned        INTEGER NOT NULL DEFAULT 0,  -- the 80 % warning was given this month
    PRIMARY KEY (guild_id, month, user_id)
);
CREATE INDEX spend_totals_top ON spend_totals (guild_id, month, spent_nusd DESC);

CREATE TABLE model_spend (
    guild_id   INTEGER NOT NULL,
    month      TEXT    NOT NULL,
    model      TEXT    NOT NULL,
    spent_nusd INTEGER NOT NULL DEFAULT 0,
    requests   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_id, month, model)
);

-- Worst-case amounts held while a request runs; settled to the real cost afterwards.
CREATE TABLE reservations (
    id            INTEGER PRIMARY KEY,
    guild_id      INTEGER NOT NULL,
    user_id       INTEGER NOT NULL,
    month         TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    amount_nusd   INTEGER NOT NULL CHECK (amount_nusd >= 0),
    turn_id       INTEGER REFERENCES turns (id),
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    settled_nusd  INTEGER,
    settled_from  TEXT,                       -- usage, generation, estimate, reserved
    settled_at    TEXT
);
CREATE INDEX reservations_open ON reservations (id) WHERE settled_at IS NULL;
