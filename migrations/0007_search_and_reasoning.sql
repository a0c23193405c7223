-- Web search and reasoning, per server (`/config search`, `/config reasoning`).
--   web_search          off: never; on_request: when `/chat search:True` asks (the default); always
--   reasoning_effort    NULL: the model's own default; else the effort asked of models that take one
--   reasoning_excluded  1: models reason but their reasoning is left out of the answer
ALTER TABLE guild_settings ADD COLUMN web_search TEXT NOT NULL DEFAULT 'on_request'
    CHECK (web_search IN ('off', 'on_request', 'always'));
ALTER TABLE guild_settings ADD COLUMN reasoning_effort TEXT CHECK (reasoning_effort IN ('low', 'medium', 'high'));
ALTER TABLE guild_settings ADD COLUMN reasoning_excluded INTEGER NOT NULL DEFAULT 0;

-- The sources an answer cited (web search results' `url_citation` annotations): a JSON list of
-- [url, title], shown numbered under the answer; NULL when it cited none. Erased with the answer's text.
ALTER TABLE turns ADD COLUMN sources TEXT;
