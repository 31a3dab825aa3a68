-- The number of the last frame a session's turns sent (frames are numbered per session, across
-- turns, so that a client that reconnects can say which one it saw last).
ALTER TABLE sessions ADD COLUMN frame_seq bigint NOT NULL DEFAULT 0;
