-- Regenerate, retry with another model, and edit to rerun: a question can have several answers. The
-- newest one with something to say replaces the earlier ones in the conversation's history; they stay
-- stored, marked with the answer that replaced them. `edited_at`: the question's text was edited.
ALTER TABLE turns ADD COLUMN superseded_by INTEGER REFERENCES turns (id);
ALTER TABLE turns ADD COLUMN edited_at TEXT;
