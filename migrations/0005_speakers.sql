-- Who said what: the display name a member had when they wrote, so that a conversation several members
-- share reads to the model as a group conversation (bot/chat/speakers.py). NULL for answers, and for
-- questions stored before this migration (the model then sees no name for them).
ALTER TABLE turns ADD COLUMN author_name TEXT;
