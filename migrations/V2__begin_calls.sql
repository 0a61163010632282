-- Enrollment begins, for the rolling per-user limit on POST /api/auth/mfa/enroll/begin.
-- Kept in the database rather than in memory: the server's footprint then does not grow with
-- the number of users who enroll within the hour, and a restart does not reset the limit.
CREATE TABLE mfa_begin_calls (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    at      INTEGER NOT NULL
);
CREATE INDEX mfa_begin_calls_user ON mfa_begin_calls(user_id, at);
