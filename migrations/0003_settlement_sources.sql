-- Where a settled cost came from, now checked by the database (bot/states.py CostSource):
--   usage       usage.cost in the stream
--   generation  OpenRouter's /generation endpoint
--   estimate    the catalogue's prices × counted tokens
--   turn        a crash left the hold open; the answer had recorded its cost
--   reserved    the cost could not be known: the full hold is charged
--   released    nothing was requested (the answer failed before its request): $0
-- SQLite cannot add a CHECK to a column, so the table is rebuilt with its rows and index.

CREATE TABLE reservations_new (
    id            INTEGER PRIMARY KEY,
    guild_id      INTEGER NOT NULL,
    user_id       INTEGER NOT NULL,
    month         TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    amount_nusd   INTEGER NOT NULL CHECK (amount_nusd >= 0),
    turn_id       INTEGER REFERENCES turns (id),
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    settled_nusd  INTEGER,
    settled_from  TEXT    CHECK (settled_from IN ('usage', 'generation', 'estimate', 'turn', 'reserved', 'released')),
    settled_at    TEXT,
    CHECK ((settled_at IS NULL) = (settled_from IS NULL))
);
INSERT INTO reservations_new SELECT id, guild_id, user_id, month, model, amount_nusd, turn_id, created_at,
                                    settled_nusd, settled_from, settled_at FROM reservations;
DROP TABLE reservations;
ALTER TABLE reservations_new RENAME TO reservations;
CREATE INDEX reservations_open ON reservations (id) WHERE settled_at IS NULL;
-- Answers that cost more than their hold (a provider dearer than the catalogue, an estimate too low):
-- few, and shown to moderators in /usage, so only they are indexed.
CREATE INDEX reservations_over_hold ON reservations (guild_id, month) WHERE settled_nusd > amount_nusd;
