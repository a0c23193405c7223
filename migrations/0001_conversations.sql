-- Conversations: one per Discord thread (or DM channel), each a list of turns.
-- Money is stored as integer nano-dollars (1 USD = 1_000_000_000), exact and cheap to sum.

CREATE TABLE conversations (
    id             INTEGER PRIMARY KEY,
    guild_id       INTEGER,                 -- NULL in DMs
    channel_id     INTEGER NOT NULL,        -- the channel the conversation started in
    thread_id      INTEGER UNIQUE,          -- the Discord thread that carries it (NULL in DMs)
    owner_id       INTEGER NOT NULL,        -- who started it
    model          TEXT    NOT NULL,
    title          TEXT    NOT NULL DEFAULT '',
    trim_notified  INTEGER NOT NULL DEFAULT 0,  -- told once that old turns no longer fit
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX conversations_channel ON conversations (channel_id, id);

CREATE TABLE turns (
    id                   INTEGER PRIMARY KEY,
    conversation_id      INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role                 TEXT    NOT NULL CHECK (role IN ('user', 'assistant')),
    reply_to             INTEGER REFERENCES turns (id),  -- an answer's user turn
    author_id            INTEGER,           -- the Discord user for user turns
    discord_message_id   INTEGER,           -- the user's message, or the first message of an answer
    discord_message_ids  TEXT    NOT NULL DEFAULT '[]',  -- JSON list: every message an answer spans
    discord_channel_id   INTEGER,
    content              TEXT    NOT NULL DEFAULT '',
    reasoning            TEXT,
    status               TEXT    NOT NULL DEFAULT 'complete'
                         CHECK (status IN ('streaming', 'complete', 'stopped', 'error', 'interrupted')),
    error                TEXT,
    model                TEXT,              -- the model that really answered
    provider             TEXT,
    generation_id        TEXT,
    finish_reason        TEXT,
    native_finish_reason TEXT,
    prompt_tokens        INTEGER,
    completion_tokens    INTEGER,
    reasoning_tokens     INTEGER,
    cost_nusd            INTEGER,           -- real cost, nano-dollars
    created_at           TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    completed_at         TEXT,
    deleted_at           TEXT               -- its Discord message was deleted: it leaves the context
);
CREATE INDEX turns_conversation ON turns (conversation_id, id);
CREATE INDEX turns_message ON turns (discord_message_id);
CREATE INDEX turns_streaming ON turns (status) WHERE status = 'streaming';

-- Files that came with a user turn, read once on arrival (Discord's CDN links expire).
CREATE TABLE attachments (
    id           INTEGER PRIMARY KEY,
    turn_id      INTEGER NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
    filename     TEXT    NOT NULL,
    mime         TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('image', 'text', 'pdf')),
    size         INTEGER NOT NULL,
    data         BLOB,                      -- images and PDFs
    text         TEXT                       -- text-like files, decoded
);
CREATE INDEX attachments_turn ON attachments (turn_id);

-- Small facts the bot keeps about itself (e.g. the hash of the last slash-command sync).
CREATE TABLE bot_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
