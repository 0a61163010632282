-- Groups for forward-auth access rules (issue 15). The built-in `admins` group is the
-- users.is_admin flag and is never stored here.
CREATE TABLE user_groups (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name    TEXT    NOT NULL,
    PRIMARY KEY (user_id, name)
) WITHOUT ROWID;

-- (The detail of a forward_auth_denied event, its rule, host and path, goes in the
-- mfa_events.detail column that V4 adds.)
