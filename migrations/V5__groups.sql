-- Groups for forward-auth access rules (issue 15). The built-in `admins` group is the
-- users.is_admin flag and is never stored here.
CREATE TABLE user_groups (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name    TEXT    NOT NULL,
    PRIMARY KEY (user_id, name)
) WITHOUT ROWID;

-- What an audit event was about, e.g. the rule, host and path of a forward_auth_denied event.
ALTER TABLE mfa_events ADD COLUMN detail TEXT;
