// slugbase page: the security activity list, changing the password, and the list of signed-in
// sessions (sign out one, or every other).
'use strict';

(function (sb) {
  const { $, state, api, errorText, plural } = sb; // app-core.js
  const { // app-ui.js
    announce, busy, clearInvalid, fieldError, fmtDateTime, hidePasswords, setAlert, toDate,
  } = sb;
  const sessionEnded = sb.later('sessionEnded');
  const refreshMfa = sb.later('refreshMfa');

  function userAgentSummary(ua) {
    if (!ua) return '';
    let browser = '';
    if (/\bcurl\//i.test(ua)) return 'curl';
    if (/Edg\//.test(ua)) browser = 'Edge';
    else if (/OPR\//.test(ua)) browser = 'Opera';
    else if (/Firefox\//.test(ua)) browser = 'Firefox';
    else if (/HeadlessChrome\//.test(ua)) browser = 'Headless Chrome';
    else if (/Chromium\//.test(ua)) browser = 'Chromium';
    else if (/Chrome\//.test(ua)) browser = 'Chrome';
    else if (/Safari\//.test(ua)) browser = 'Safari';
    let os = '';
    if (/Android/.test(ua)) os = 'Android';
    else if (/iPhone|iPad|iPod/.test(ua)) os = 'iOS';
    else if (/Windows/.test(ua)) os = 'Windows';
    else if (/Mac OS X|Macintosh/.test(ua)) os = 'macOS';
    else if (/CrOS/.test(ua)) os = 'ChromeOS';
    else if (/Linux/.test(ua)) os = 'Linux';
    if (browser && os) return `${browser} on ${os}`;
    if (browser || os) return browser || os;
    return ua.length > 60 ? `${ua.slice(0, 57)}…` : ua;
  }

  // Event names of GET /api/auth/mfa/events: [label, tone of the dot].
  const EVENT_LABELS = {
    begin: ['Started setting up an authenticator app', ''],
    cancel: ['Cancelled setting up an authenticator app', ''],
    confirm_success: ['Turned on two-step verification', 'good'],
    confirm_failure: ['Wrong code while setting up two-step verification', 'bad'],
    verify_success: ['Signed in with two-step verification', 'good'],
    verify_failure: ['Wrong code at sign-in', 'bad'],
    backup_code_used: ['Used a backup code', 'warn'],
    totp_replay_rejected: ['Refused a code that was already used', 'bad'],
    rate_limited: ['Too many wrong attempts: attempts paused', 'bad'],
    disable_success: ['Turned off two-step verification', 'warn'],
    disable_failure: ['Failed attempt to turn off two-step verification', 'bad'],
    regenerate: ['Created new backup codes', ''],
    regenerate_failure: ['Failed attempt to create new backup codes', 'bad'],
    admin_reset: ['Two-step verification reset by an administrator', 'warn'],
    password_changed: ['Changed the password', 'warn'],
    oidc_login: ['Signed in through a sign-in provider', 'good'],
    oidc_linked: ['Linked to a sign-in provider', 'warn'],
    oidc_unlinked: ['Unlinked from a sign-in provider', 'warn'],
    oidc_failure: ['Refused a sign-in through a provider', 'bad'],
    password_sign_in: ['Signed in with the password', 'good'],
    password_failure: ['Wrong password at sign-in', 'bad'],
    verify_backup_success: ['Signed in with a backup code', 'warn'],
    reauth_failure: ['Wrong password or code when confirming it was you', 'bad'],
    token_created: ['Created an API token', ''],
    token_revoked: ['Revoked an API token', ''],
    signed_out: ['Signed out', ''],
    session_ended: ['Signed out a session', ''],
    other_sessions_ended: ['Signed out everywhere else', ''],
  };

  function eventInfo(name) {
    const raw = String(name || '');
    const known = Object.prototype.hasOwnProperty.call(EVENT_LABELS, raw) ? EVENT_LABELS[raw] : null;
    if (known) return { label: known[0], tone: known[1] };
    const words = raw
      .replace(/[._-]+/g, ' ')
      .replace(/\b(mfa|totp|ip)\b/gi, (w) => w.toUpperCase())
      .trim();
    return { label: words ? words[0].toUpperCase() + words.slice(1) : 'Event', tone: '' };
  }

  // Security activity comes a page at a time; "Show more" asks for the next older page.
  const EVENTS_PAGE = 10;

  /** `GET /api/auth/mfa/events`, the newest page (the account view loads it with the MFA status). */
  function newestEvents() {
    return api('GET', `/api/auth/mfa/events?limit=${EVENTS_PAGE}`);
  }

  /** Shows a page of events: the newest (`append` false) or the next older one. */
  function renderEvents(page, append) {
    const events = append ? state.events.concat(page) : page;
    state.events = events;
    state.eventsNext = page.length === EVENTS_PAGE ? page[page.length - 1].id : null;
    const list = $('events-list');
    if (!append) list.replaceChildren();
    $('events-empty').hidden = events.length > 0;
    $('events-more').hidden = !state.eventsNext;
    for (const e of page) {
      const info = eventInfo(e.event);
      const li = document.createElement('li');
      li.className = `event-row${info.tone ? ` event-${info.tone}` : ''}`;
      const dot = document.createElement('span');
      dot.className = 'event-dot';
      dot.setAttribute('aria-hidden', 'true');
      const main = document.createElement('div');
      main.className = 'list-main';
      const title = document.createElement('div');
      title.className = 'list-title';
      title.textContent = e.detail ? `${info.label} (${e.detail})` : info.label;
      const meta = document.createElement('div');
      meta.className = 'list-meta';
      const time = document.createElement('time');
      const d = toDate(e.at);
      if (d) time.dateTime = d.toISOString();
      time.textContent = fmtDateTime(e.at);
      meta.append(time);
      const extra = [e.ip, userAgentSummary(e.user_agent)].filter(Boolean).join(' · ');
      if (extra) meta.append(` · ${extra}`);
      if (e.user_agent) meta.title = e.user_agent;
      main.append(title, meta);
      li.append(dot, main);
      list.append(li);
    }
  }

  $('events-more').addEventListener('click', async (ev) => {
    const button = ev.currentTarget;
    if (!state.eventsNext) return;
    busy(button, true);
    try {
      const before = encodeURIComponent(state.eventsNext);
      const page = (await api('GET', `/api/auth/mfa/events?before=${before}&limit=${EVENTS_PAGE}`)) || [];
      const shown = state.events.length;
      renderEvents(page, true);
      announce(page.length ? `${plural(page.length, 'older event')} shown.` : 'No older events.');
      const first = $('events-list').children[shown];
      if (first) {
        first.tabIndex = -1;
        first.focus();
      }
    } catch (err) {
      if (sessionEnded(err)) return;
      setAlert('account-error', `Could not load older activity. ${errorText(err)}`);
    } finally {
      busy(button, false);
    }
  });

  // ------------------------------------------------------- Change password

  $('password-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    clearInvalid(form);
    setAlert('password-error', '');
    setAlert('password-notice', '');
    const current = $('password-current').value;
    const next = $('password-new').value;
    if (!current) return fieldError('password-error', 'password-current', 'Enter your current password.');
    if (next.length < 12) return fieldError('password-error', 'password-new', 'Choose a new password with at least 12 characters.');
    if (next !== $('password-new2').value) return fieldError('password-error', 'password-new2', 'The two new passwords do not match.');
    const button = $('password-submit');
    busy(button, true);
    try {
      await api('POST', '/api/auth/password', { current_password: current, new_password: next });
      form.reset();
      hidePasswords();
      setAlert('password-notice', 'Your password is changed. You were signed out everywhere else.');
      refreshSessions();
      refreshMfa();
    } catch (err) {
      if (sessionEnded(err)) return;
      if (err.code === 'INVALID_PASSWORD') {
        fieldError('password-error', 'password-current', 'That is not your current password.');
      } else if (err.code === 'WEAK_PASSWORD' || (err.code === 'VALIDATION_ERROR' && err.details && err.details.field === 'new_password')) {
        fieldError('password-error', 'password-new', errorText(err));
      } else if (err.code === 'PASSWORD_NOT_SET') {
        setAlert('password-error', 'Your account signs in without a password here, so there is none to change.');
      } else {
        setAlert('password-error', errorText(err));
      }
    } finally {
      busy(button, false);
    }
  });

  // -------------------------------------------------------------- Sessions

  /** Reloads the list of signed-in sessions. */
  async function refreshSessions() {
    try {
      renderSessions((await api('GET', '/api/auth/sessions')) || []);
    } catch (err) {
      if (sessionEnded(err)) return;
      setAlert('sessions-error', `Could not load your sessions. ${errorText(err)}`);
    }
  }

  function renderSessions(sessions) {
    state.sessions = sessions;
    const list = $('sessions-list');
    list.replaceChildren();
    for (const x of sessions) {
      const li = document.createElement('li');
      li.dataset.sessionId = String(x.id);
      const main = document.createElement('div');
      main.className = 'list-main';
      const title = document.createElement('div');
      title.className = 'list-title';
      const where = userAgentSummary(x.user_agent) || 'Unknown device';
      title.textContent = x.ip ? `${where} · ${x.ip}` : where;
      const badges = document.createElement('span');
      badges.className = 'session-badges';
      if (x.current) badges.append(badge('This device', 'badge-on'));
      badges.append(badge(x.mfa ? 'Two-step verified' : 'Password only', 'badge-neutral'));
      title.append(badges);
      const meta = document.createElement('div');
      meta.className = 'list-meta';
      meta.textContent = `Signed in ${fmtDateTime(x.created_at)}` + (x.last_seen_at ? ` · last active ${fmtDateTime(x.last_seen_at)}` : '');
      if (x.user_agent) meta.title = x.user_agent;
      main.append(title, meta);
      li.append(main);
      if (!x.current) {
        const actions = document.createElement('div');
        actions.className = 'list-actions';
        const end = document.createElement('button');
        end.type = 'button';
        end.className = 'btn btn-small btn-danger-outline';
        end.dataset.action = 'end-session';
        end.textContent = 'Sign out';
        end.setAttribute('aria-label', `Sign out ${where}, signed in ${fmtDateTime(x.created_at)}`);
        actions.append(end);
        li.append(actions);
      }
      list.append(li);
    }
    const others = sessions.some((x) => !x.current);
    $('sessions-end-others').hidden = !others;
    $('sessions-end-others').parentElement.hidden = !others; // no empty row under the list
  }

  function badge(text, cls) {
    const b = document.createElement('span');
    b.className = `badge ${cls}`;
    b.textContent = text;
    return b;
  }

  $('sessions-list').addEventListener('click', async (ev) => {
    const button = ev.target.closest('button[data-action="end-session"]');
    if (!button) return;
    const id = button.closest('li').dataset.sessionId;
    setAlert('sessions-error', '');
    busy(button, true);
    try {
      await api('DELETE', `/api/auth/sessions/${encodeURIComponent(id)}`);
      announce('That session is signed out.');
    } catch (err) {
      if (sessionEnded(err)) return;
      if (err.code !== 'SESSION_NOT_FOUND') setAlert('sessions-error', errorText(err));
    }
    await refreshSessions();
    refreshMfa();
    $('sessions-title').tabIndex = -1;
    $('sessions-title').focus();
  });

  $('sessions-end-others').addEventListener('click', async (ev) => {
    const button = ev.currentTarget;
    setAlert('sessions-error', '');
    busy(button, true);
    try {
      const r = await api('POST', '/api/auth/sessions/revoke-others');
      const n = (r && r.revoked) || 0;
      announce(n ? `${plural(n, 'other session')} signed out.` : 'No other sessions were signed in.');
      await refreshSessions();
      refreshMfa();
      $('sessions-title').tabIndex = -1;
      $('sessions-title').focus();
    } catch (err) {
      if (sessionEnded(err)) return;
      setAlert('sessions-error', errorText(err));
    } finally {
      busy(button, false);
    }
  });

  sb.provide({ newestEvents, renderEvents, refreshSessions });
})(window.slugbase);
