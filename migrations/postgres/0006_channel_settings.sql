-- Per-channel settings moderators choose with `/config channel`: a persona (system prompt), a default
-- model for new conversations, and whether the bot is switched off there. A thread follows its parent
-- channel; a channel without a row follows the server's settings. (PostgreSQL: snowflakes are BIGINT.)
CREATE TABLE channel_settings (
    channel_id     BIGINT PRIMARY KEY,
    guild_id       BIGINT NOT NULL,
    system_prompt  TEXT,                    -- NULL: the server's (or the operator's) system prompt
    default_model  TEXT,                    -- NULL: the server's default model
    off            INTEGER NOT NULL DEFAULT 0 CHECK (off IN (0, 1))
);
CREATE INDEX channel_settings_guild ON channel_settings (guild_id);

-- The server channel whose settings a conversation follows: the channel /chat was used in, or the parent
-- of the thread that became the conversation. Earlier conversations follow the channel they started in.
ALTER TABLE conversations ADD COLUMN home_channel_id BIGINT;
UPDATE conversations SET home_channel_id = channel_id WHERE guild_id IS NOT NULL;
