-- PostgreSQL's form of ../0008_regenerate_and_edit.sql (turn ids are BIGINT).
ALTER TABLE turns ADD COLUMN superseded_by BIGINT REFERENCES turns (id);
ALTER TABLE turns ADD COLUMN edited_at TEXT;
