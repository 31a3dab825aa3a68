-- The final frame of the session's last turn that ended with its answer: the answer, the lease's
-- release and this frame are one commit (store/sessions.ts `append` with a turn's end), and the
-- frame reaches the frame log just after it. Should the log miss it (the runtime died between the
-- two, the next turn fenced the log first), whoever finds the log one frame behind `frame_seq`
-- appends it from here (turn/interrupted-turns.ts), so every follower gets the turn's end.
ALTER TABLE sessions ADD COLUMN final_frame text;
