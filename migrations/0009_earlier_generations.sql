-- A stream retried before its first token: the generations of the tries before the last one (a JSON
-- list of ids), saved with the answer's progress, so that a crash still settles what OpenRouter billed
-- for them (usually nothing) with the answer.
ALTER TABLE turns ADD COLUMN earlier_generations TEXT NOT NULL DEFAULT '[]';
