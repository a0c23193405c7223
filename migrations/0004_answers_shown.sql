-- Whether an answer's final form (its text without the cursor, its footer, no Stop button) is known to
-- have reached Discord. An answer whose final edit never landed (Discord down past every retry) is
-- shown again at the next start. Answers from before this migration count as shown.
ALTER TABLE turns ADD COLUMN shown INTEGER NOT NULL DEFAULT 1;
CREATE INDEX turns_unshown ON turns (id) WHERE shown = 0;
