// slugbase account page: first-start setup, sign-in with a second step, and
// the account page (two-step verification, recent activity, API tokens).
// Plain JavaScript, no dependencies. The server's CSP forbids inline scripts
// and styles, so all behaviour lives here and all looks live in app.css.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);

  const state = {
    view: 'loading',
    user: null,
    mfa: null, // last GET /api/auth/mfa/status
    panel: null, // 'enroll' | 'codes' | 'confirm' | null
    confirmAction: 'disable', // 'disable' | 'regenerate'
    codesUrl: null, // object URL of the backup codes download
    codesContext: 'enroll',
    mfaMode: 'totp', // sign-in second step: 'totp' | 'backup'
    confirmMode: 'totp',
    setupToken: '',
    events: [], // last GET /api/auth/mfa/events
    eventsAll: false, // show every event, not just the newest
    enrollResumed: false, // the enroll panel shows a key begun earlier (GET .../enroll/pending)
    tokenReauth: false, // creating a token needs the password (and a code) in the body
    tokenCodeMode: 'totp',
    pendingEmail: '', // the account of a sign-in waiting for its code (GET /api/auth/session)
    eventsNext: null, // `before` cursor of the next (older) page of security activity
    sessions: [], // last GET /api/auth/sessions
  };

  // Forward-auth: where the person was going (`rd`), and whether an application sent them to
  // set up two-step verification first (`enroll=1`). Read once; setPath keeps them in the
  // address while they matter.
  const startParams = new URLSearchParams(location.search);
  state.rd = startParams.get('rd') || '';
  state.enrollFor = startParams.get('enroll') === '1';

  /** Leaves for `to` (a URL the server approved); true when leaving. */
  function leaveFor(to) {
    if (!to) return false;
    state.rd = '';
    location.assign(to);
    return true;
  }

  /** Asks the server whether `rd` may be followed, then follows it. */
  async function leaveForRd() {
    if (!state.rd) return false;
    try {
      const r = await api('GET', `/api/authz/return-to?rd=${encodeURIComponent(state.rd)}`);
      return leaveFor(r && r.redirect_to);
    } catch (_) {
      return false;
    }
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, body, retryHeader) {
      super((body && body.message) || (status ? `Request failed (HTTP ${status}).` : 'Network error.'));
      this.status = status;
      this.code = (body && body.code) || (status === 0 ? 'NETWORK' : `HTTP_${status}`);
      this.details = (body && body.details) || null;
      let retry = body && body.retryAfter != null ? Number(body.retryAfter) : Number(retryHeader);
      this.retryAfter = Number.isFinite(retry) && retry > 0 ? retry : null;
    }
  }

  async function api(method, path, body) {
    const init = {
      method,
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { Accept: 'application/json' },
    };
    if (method !== 'GET') {
      init.headers['Content-Type'] = 'application/json';
      if (body !== undefined) init.body = JSON.stringify(body);
    }
    let res;
    let data = null;
    try {
      res = await fetch(path, init);
      const text = await res.text();
      if (text) {
        try {
          data = JSON.parse(text);
        } catch (_) {
          data = null;
        }
      }
    } catch (_) {
      throw new ApiError(0, null);
    }
    if (!res.ok) throw new ApiError(res.status, data, res.headers.get('Retry-After'));
    return data;
  }

  // ------------------------------------------------------------ Messages

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? '' : 's'}`;
  }

  function retryText(seconds) {
    if (!seconds) return 'Too many attempts. Wait a while, then try again.';
    if (seconds < 60) return `Too many attempts. Try again in ${plural(Math.ceil(seconds), 'second')}.`;
    if (seconds < 3600) return `Too many attempts. Try again in ${plural(Math.ceil(seconds / 60), 'minute')}.`;
    return `Too many attempts. Try again in ${plural(Math.ceil(seconds / 3600), 'hour')}.`;
  }

  /** A clear sentence for an API error; `mode` tells TOTP from backup codes. */
  function errorText(err, mode) {
    switch (err.code) {
      case 'RATE_LIMITED':
        return retryText(err.retryAfter);
      case 'NETWORK':
        return 'Cannot reach the server. Check your connection and try again.';
      case 'INVALID_CREDENTIALS':
        return 'Wrong email or password. Check both and try again.';
      case 'INVALID_CODE':
        return mode === 'backup'
          ? 'That backup code is not valid or has already been used.'
          : 'That code is not correct or was already used. Wait for the next code in your app and try again.';
      case 'MFA_PENDING_INVALID':
        return 'Your sign-in attempt expired. Please sign in again with your password.';
      case 'SETUP_CLOSED':
        return 'This server is already set up. Sign in with your account instead.';
      case 'SETUP_TOKEN_INVALID':
        return 'This setup link is not valid. Open the exact link from the server log.';
      case 'PASSWORD_REQUIRED':
        return 'Enter your password to confirm.';
      case 'INVALID_PASSWORD':
        return 'That password is not correct.';
      case 'MFA_NOT_ENABLED':
        return 'Two-step verification is already off.';
      case 'MFA_ALREADY_ENABLED':
        return 'Two-step verification is already on.';
      case 'MFA_NO_PENDING':
        return 'This setup expired or was cancelled. Please start again.';
      case 'CSRF_REJECTED':
        return 'The request was refused because it did not come from this page. Reload the page and try again.';
      case 'REAUTH_REQUIRED':
        return 'For your security, confirm that it is you before creating a token.';
      case 'TOKEN_LIMIT':
        return 'You have as many tokens as an account can hold. Revoke one you no longer use, then try again.';
      case 'WEAK_PASSWORD':
        return 'Choose a stronger password: 12 to 256 characters, and not a common one.';
      case 'SESSION_NOT_FOUND':
        return 'That session has already ended.';
      case 'MFA_PENDING_LOCKED':
        return 'Too many wrong codes: this sign-in was cancelled. Sign in again with your password.';
      case 'CODE_ALREADY_USED':
        return codeErrorText(err, mode, 'confirm');
      default:
        if (err.status >= 500) return 'The server ran into a problem. Please try again in a moment.';
        return err.message;
    }
  }

  /**
   * Words for a refused code, by where it was typed: `context` is 'signin' (the second
   * sign-in step), 'setup' (confirming a new authenticator app) or 'confirm' (turning
   * off, new backup codes, creating a token). Tells a wrong code, a replayed one and one
   * from a phone whose clock is off apart, and says how many attempts are left.
   */
  function codeErrorText(err, mode, context) {
    const details = err.details || {};
    let text;
    if (err.code === 'RATE_LIMITED') {
      const wait = err.retryAfter ? ` Try again in ${retryText(err.retryAfter).replace(/^Too many attempts\. Try again in /, '').replace(/\.$/, '')}.` : ' Try again later.';
      return (
        'Too many wrong codes: code entry is paused for this account, and backup codes are blocked too.' +
        wait +
        ' If you cannot get in, an administrator can reset two-step verification for your account.'
      );
    }
    if (err.code === 'CODE_ALREADY_USED') {
      text =
        context === 'setup'
          ? 'Wait for the next code in your app, then enter that one. A new code appears every 30 seconds.'
          : 'That code was already used. Wait for the next code in your app (a new one appears every 30 seconds) and enter it.';
    } else if (mode === 'backup') {
      text = 'That backup code is not valid or has already been used.';
    } else if (details.reason === 'clock_drift') {
      text =
        'That code is from a different time: the clock on your phone seems to be off. ' +
        'Turn on automatic date and time in its settings, then enter the new code.';
    } else if (context === 'setup') {
      text =
        'That code does not match this key. Check that your app shows the slugbase entry you just added ' +
        '(scanned from the QR code here, or with the key typed exactly), then enter the code it shows now.';
    } else {
      text = 'That code is not correct. Check that you use the slugbase entry for this account and enter the code your app shows now.';
    }
    if (typeof details.attempts_left === 'number') {
      const n = details.attempts_left;
      const left = n === 0 ? 'No attempts are left' : `${n === 1 ? '1 attempt is' : `${n} attempts are`} left`;
      text += context === 'signin' ? ` ${left} before this sign-in is cancelled.` : ` ${left} before code entry is paused.`;
    }
    return text;
  }

  /** Shows `text` in an alert region; repeats of the same text are re-announced. */
  function setAlert(id, text) {
    const el = $(id);
    if (!text) {
      el.textContent = '';
      return;
    }
    if (el.textContent === text) {
      el.textContent = '';
      window.setTimeout(() => {
        el.textContent = text;
      }, 60);
    } else {
      el.textContent = text;
    }
  }

  function announce(text) {
    const el = $('announcer');
    el.textContent = '';
    window.setTimeout(() => {
      el.textContent = text;
    }, 60);
  }

  function markInvalid(input, invalid) {
    if (invalid) input.setAttribute('aria-invalid', 'true');
    else {
      input.removeAttribute('aria-invalid');
      const msg = $(`${input.id}-error`);
      if (msg) msg.textContent = '';
    }
  }

  /**
   * The error line under a field (made on first use): `<p id="<input>-error">`, named in
   * the field's aria-describedby next to its hint, so a screen reader reads it with the field.
   */
  function fieldErrorLine(input) {
    const id = `${input.id}-error`;
    let msg = $(id);
    if (!msg) {
      msg = document.createElement('p');
      msg.id = id;
      msg.className = 'field-error';
      msg.setAttribute('aria-live', 'polite');
      (input.closest('.inline-form, .pw-wrap') || input).after(msg);
      const described = (input.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean);
      if (!described.includes(id)) input.setAttribute('aria-describedby', [id, ...described].join(' '));
    }
    return msg;
  }

  /** Shows an error under one field, marks it and moves the focus there. */
  function fieldError(alertId, inputId, text) {
    setAlert(alertId, '');
    const input = $(inputId);
    setAlert(fieldErrorLine(input).id, text);
    markInvalid(input, true);
    input.focus();
    if (typeof input.select === 'function') input.select();
  }

  function busy(button, on) {
    button.disabled = on;
    button.classList.toggle('is-busy', on);
    if (on) button.setAttribute('aria-busy', 'true');
    else button.removeAttribute('aria-busy');
  }

  function clearInvalid(form) {
    form.querySelectorAll('[aria-invalid]').forEach((el) => markInvalid(el, false));
  }

  // ------------------------------------------------------------ Formatting

  function toDate(value) {
    if (value == null || value === '') return null;
    const d = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  function fmtDateTime(value) {
    const d = toDate(value);
    return d ? d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : String(value || '');
  }

  function fmtDate(value) {
    const d = toDate(value);
    return d ? d.toLocaleDateString(undefined, { dateStyle: 'medium' }) : String(value || '');
  }


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

  // --------------------------------------------------------- Navigation

  const VIEWS = ['loading', 'setup', 'login', 'mfa', 'account'];
  const TITLES = {
    setup: 'Set up',
    login: 'Sign in',
    mfa: 'Two-step verification',
    account: 'Your account',
  };

  /**
   * `GET /api/auth/session`: 200 in every state (so a signed-out load logs no error),
   * `{signed_in, user?, mfa_pending?: {email}}`.
   */
  async function probeSession() {
    try {
      return { state: (await api('GET', '/api/auth/session')) || {}, error: '' };
    } catch (err) {
      return { state: {}, error: errorText(err) };
    }
  }

  /**
   * While an application waits (`rd`, and `enroll=1` when it asked for two-step setup), the
   * sign-in and code-step addresses keep it, so a reload there still ends on the application.
   */
  function withReturn(path) {
    const keep = path === '/login' || path === '/login/code' || (path === '/account' && state.enrollFor);
    if (!state.rd || !keep) return path;
    const q = new URLSearchParams();
    if (state.enrollFor) q.set('enroll', '1');
    q.set('rd', state.rd);
    return `${path}?${q}`;
  }

  function setPath(bare, replace) {
    const path = withReturn(bare);
    if (location.pathname + location.search === path) return;
    if (replace) history.replaceState(null, '', path);
    else history.pushState(null, '', path);
  }

  function show(view, focusId) {
    const changed = state.view !== view;
    state.view = view;
    for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
    document.title = TITLES[view] ? `${TITLES[view]} · slugbase` : 'slugbase';
    $('topbar-user').hidden = !(view === 'account' && state.user);
    if (focusId && (changed || document.activeElement === document.body)) {
      const el = $(focusId);
      if (el) el.focus();
    }
  }

  // ?error=<CODE> from a sign-in through an OpenID provider, in words.
  const OIDC_ERRORS = {
    OIDC_STATE_INVALID: 'That sign-in link expired or was already used. Please start the sign-in again.',
    OIDC_PROVIDER_UNAVAILABLE: 'The sign-in provider could not be reached. Please try again in a moment, or tell your administrator.',
    OIDC_PROVIDER_ERROR: 'The sign-in provider did not sign you in (it was cancelled or refused). Please try again.',
    OIDC_TOKEN_INVALID: 'The sign-in provider sent an answer that could not be verified, so you were not signed in. Please try again, or tell your administrator.',
    OIDC_ACCOUNT_NOT_LINKED: 'An account with this email exists here but is not linked to that provider. Sign in with your password, or ask your administrator to link it.',
    OIDC_ACCOUNT_NOT_FOUND: 'There is no account here for that sign-in, and new accounts cannot be created this way. Ask your administrator for an account (the provider must also confirm your email address).',
  };

  async function route() {
    if (location.pathname === '/setup') {
      await openSetup();
      return;
    }
    const query = new URLSearchParams(location.search);
    const oidcError = query.get('error');
    if (location.pathname === '/login' && oidcError) {
      setPath('/login', true);
      openLogin({
        error: OIDC_ERRORS[oidcError] || 'Signing in with the provider failed. Please try again.',
      });
      return;
    }
    const probe = await probeSession();
    const user = probe.state.signed_in ? probe.state.user : null;
    const error = probe.error;
    const pending = probe.state.mfa_pending;
    // The provider signed the person in (/login?mfa=1), or a reload or Back/Forward landed
    // on the code step, while the sign-in still waits for its code.
    const codeStep =
      (location.pathname === '/login' && query.get('mfa') === '1') ||
      location.pathname === '/login/code';
    if (user && state.rd && !state.enrollFor && location.pathname === '/login') {
      // An application sent a signed-in person here: it needs a new sign-in (with the
      // second step).
      setPath('/login', true);
      openLogin({ notice: 'Sign in again to continue to the application.' });
    } else if (user && state.enrollFor && user.mfa_enabled && (await leaveForRd())) {
      // Already set up: straight back.
    } else if (user) {
      setPath('/account', true);
      await openAccount(user, state.enrollFor ? { notice: 'The application you opened asks for two-step verification. Set it up below; you will then be sent back.' } : undefined);
    } else if (codeStep && pending) {
      setPath('/login/code', true);
      openMfa(pending.email);
    } else {
      const ended = location.pathname === '/login/code' && !error;
      setPath('/login', true);
      openLogin({ error: error || (ended ? 'Your sign-in attempt expired. Please sign in again with your password.' : '') });
    }
  }

  // ------------------------------------------------------------- Setup

  async function openSetup() {
    state.setupToken = new URLSearchParams(location.search).get('token') || '';
    let open = true;
    try {
      const s = await api('GET', '/api/auth/setup');
      open = !!(s && s.open);
    } catch (_) {
      // Unknown: let the form try; the POST reports what is wrong.
    }
    setSetupMode(open ? (state.setupToken ? 'form' : 'notoken') : 'closed');
    show('setup', open && state.setupToken ? 'setup-email' : 'setup-title');
  }

  function setSetupMode(mode) {
    $('setup-form').hidden = mode !== 'form';
    $('setup-notoken').hidden = mode !== 'notoken';
    $('setup-closed').hidden = mode !== 'closed';
    $('setup-title').textContent = mode === 'closed' ? 'Already set up' : 'Create the administrator';
    document.querySelector('#view-setup .lead').hidden = mode === 'closed';
  }

  $('setup-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    clearInvalid(form);
    setAlert('setup-error', '');
    const email = $('setup-email').value.trim();
    const name = $('setup-name').value.trim();
    const password = $('setup-password').value;
    const password2 = $('setup-password2').value;
    if (!/^[^@\s]+@[^@\s]+$/.test(email)) return fieldError('setup-error', 'setup-email', 'Enter a valid email address.');
    if (!name) return fieldError('setup-error', 'setup-name', 'Enter your name.');
    if (password.length < 12) return fieldError('setup-error', 'setup-password', 'Choose a password with at least 12 characters.');
    if (password !== password2) return fieldError('setup-error', 'setup-password2', 'The two passwords do not match.');
    const button = $('setup-submit');
    busy(button, true);
    try {
      const user = await api('POST', '/api/auth/setup', { token: state.setupToken, email, name, password });
      form.reset();
      state.setupToken = '';
      setPath('/account', true); // drops the one-time token from the address bar
      await openAccount(user, { notice: 'Your administrator account is ready and you are signed in.' });
    } catch (err) {
      if (err.code === 'SETUP_CLOSED') {
        setSetupMode('closed');
        setAlert('setup-error', errorText(err));
        $('setup-closed-login').focus();
      } else if ((err.code === 'VALIDATION_ERROR' || err.code === 'WEAK_PASSWORD') && err.details && err.details.field) {
        const id = { email: 'setup-email', name: 'setup-name', password: 'setup-password' }[err.details.field];
        if (id) fieldError('setup-error', id, errorText(err));
        else setAlert('setup-error', errorText(err));
      } else {
        setAlert('setup-error', errorText(err));
      }
    } finally {
      busy(button, false);
    }
  });

  // ------------------------------------------------------------- Sign in

  function openLogin(opts) {
    const o = opts || {};
    state.user = null;
    state.mfa = null;
    resetAccountSecrets();
    setAlert('login-notice', o.notice || '');
    setAlert('login-error', o.error || '');
    $('login-password').value = '';
    clearInvalid($('login-form'));
    show('login', $('login-email').value ? 'login-password' : 'login-email');
    api('GET', '/api/auth/setup')
      .then((s) => {
        $('login-setup-hint').hidden = !(s && s.open);
      })
      .catch(() => {});
    loadProviders();
  }

  /** One "Sign in with <name>" button per configured OpenID provider. */
  function loadProviders() {
    api('GET', '/api/auth/oidc/providers')
      .then((list) => {
        const box = $('login-provider-buttons');
        box.textContent = '';
        for (const p of list || []) {
          const a = document.createElement('a');
          a.className = 'btn btn-block';
          a.href = `/api/auth/oidc/${encodeURIComponent(p.id)}/start`;
          a.textContent = `Sign in with ${p.name}`;
          a.dataset.provider = p.id;
          box.appendChild(a);
        }
        $('login-providers').hidden = !(list && list.length);
      })
      .catch(() => {
        $('login-providers').hidden = true;
      });
  }

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearInvalid(ev.currentTarget);
    setAlert('login-error', '');
    setAlert('login-notice', '');
    const email = $('login-email').value.trim();
    const password = $('login-password').value;
    if (!email) return fieldError('login-error', 'login-email', 'Enter your email address.');
    if (!password) return fieldError('login-error', 'login-password', 'Enter your password.');
    const button = $('login-submit');
    busy(button, true);
    try {
      const body = { email, password };
      if (state.rd && !state.enrollFor) body.rd = state.rd;
      const res = await api('POST', '/api/auth/login', body);
      $('login-password').value = '';
      if (res && res.mfa_required) {
        setPath('/login/code');
        openMfa(email);
      } else if (leaveFor(res && res.redirect_to)) {
        // Back to the application.
      } else {
        setPath('/account');
        await openAccount(res);
      }
    } catch (err) {
      if (err.code === 'INVALID_CREDENTIALS') {
        setAlert('login-error', errorText(err));
        markInvalid($('login-password'), true);
        $('login-password').focus();
      } else {
        setAlert('login-error', errorText(err));
      }
    } finally {
      busy(button, false);
    }
  });

  // ------------------------------------------- Code fields (TOTP or backup)

  /** Switches a code input between a 6-digit TOTP and a backup code. */
  function setCodeMode(prefix, mode) {
    const input = $(`${prefix}-code`);
    const label = $(`${prefix}-code-label`);
    const toggle = $(`${prefix}-toggle`);
    input.value = '';
    markInvalid(input, false);
    if (mode === 'backup') {
      label.textContent = 'Backup code';
      input.setAttribute('inputmode', 'text');
      input.setAttribute('autocomplete', 'off');
      input.setAttribute('maxlength', '24');
      input.setAttribute('placeholder', 'xxxx-xxxx-xxxx-xxxx');
      input.classList.add('input-backup');
      toggle.textContent = 'Use your authenticator app instead';
    } else {
      label.textContent = 'Authentication code';
      input.setAttribute('inputmode', 'numeric');
      input.setAttribute('autocomplete', 'one-time-code');
      input.setAttribute('maxlength', '7');
      input.removeAttribute('placeholder');
      input.classList.remove('input-backup');
      toggle.textContent = 'Use a backup code instead';
    }
  }

  /** The code to send, or null when it cannot be right. Backup codes go as typed. */
  function readCode(input, mode) {
    if (mode === 'backup') {
      const v = input.value.trim();
      return v ? v : null;
    }
    const v = input.value.replace(/\s+/g, '');
    return /^\d{6}$/.test(v) ? v : null;
  }

  function codeMissingText(mode) {
    return mode === 'backup' ? 'Enter one of your backup codes.' : 'Enter the 6-digit code from your authenticator app.';
  }

  // ------------------------------------------------- Sign in: second step

  function setMfaMode(mode) {
    state.mfaMode = mode;
    setCodeMode('mfa', mode);
    $('mfa-lead').textContent =
      mode === 'backup'
        ? 'Enter one of the backup codes you saved when you set up two-step verification. Each code works once.'
        : 'Enter the 6-digit code from your authenticator app.';
  }

  function openMfa(email) {
    state.pendingEmail = email || state.pendingEmail || '';
    $('mfa-account-email').textContent = state.pendingEmail;
    $('mfa-account').hidden = !state.pendingEmail;
    setMfaMode('totp');
    setAlert('mfa-error', '');
    show('mfa', 'mfa-code');
  }

  $('mfa-toggle').addEventListener('click', () => {
    setMfaMode(state.mfaMode === 'totp' ? 'backup' : 'totp');
    setAlert('mfa-error', '');
    $('mfa-code').focus();
  });

  $('mfa-start-over').addEventListener('click', () => {
    setPath('/login');
    openLogin();
  });

  $('mfa-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setAlert('mfa-error', '');
    const input = $('mfa-code');
    markInvalid(input, false);
    const mode = state.mfaMode;
    const code = readCode(input, mode);
    if (!code) return fieldError('mfa-error', 'mfa-code', codeMissingText(mode));
    const button = $('mfa-submit');
    busy(button, true);
    try {
      const body = { code };
      if (state.rd && !state.enrollFor) body.rd = state.rd;
      const user = await api('POST', '/api/auth/mfa/verify', body);
      input.value = '';
      if (leaveFor(user && user.redirect_to)) return;
      setPath('/account');
      await openAccount(user, { afterBackup: mode === 'backup' });
    } catch (err) {
      if (err.code === 'MFA_PENDING_INVALID' || err.code === 'MFA_PENDING_LOCKED') {
        setPath('/login', true);
        openLogin({ error: errorText(err) });
      } else if (err.code === 'INVALID_CODE' || err.code === 'CODE_ALREADY_USED') {
        fieldError('mfa-error', 'mfa-code', codeErrorText(err, mode, 'signin'));
      } else if (err.code === 'RATE_LIMITED') {
        setAlert('mfa-error', codeErrorText(err, mode, 'signin'));
      } else {
        setAlert('mfa-error', errorText(err, mode));
      }
    } finally {
      busy(button, false);
    }
  });

  // ------------------------------------------------------------- Account

  /** Handles a 401 on an account call: the session is gone, so back to sign-in. */
  function sessionEnded(err) {
    if (err && err.status === 401 && !['INVALID_PASSWORD', 'INVALID_CODE', 'CODE_ALREADY_USED'].includes(err.code)) {
      setPath('/login');
      openLogin({ error: 'Your session has ended. Please sign in again.' });
      return true;
    }
    return false;
  }

  function renderUser() {
    const u = state.user || {};
    $('account-name').textContent = u.name || '';
    $('account-email').textContent = u.email || '';
    $('account-admin').hidden = !u.is_admin;
    $('topbar-email').textContent = u.email || '';
    $('account-signin').hidden = true;
    if (u.id) {
      api('GET', '/api/auth/oidc/identities')
        .then((list) => {
          const names = (list || []).map((p) => p.name);
          const el = $('account-signin');
          if (!names.length && u.has_password) return;
          el.textContent = names.length
            ? `You sign in ${u.has_password ? 'with your password or ' : ''}with ${names.join(', ')}.`
            : 'This account has no password and no linked sign-in provider yet.';
          el.hidden = false;
        })
        .catch(() => {});
    }
  }

  async function openAccount(user, opts) {
    const o = opts || {};
    state.user = user;
    state.panel = null;
    resetAccountSecrets();
    renderUser();
    setAlert('account-error', '');
    setAlert('account-notice', o.notice || '');
    setAlert('tokens-error', '');
    renderMfa();
    await refreshAccount();
    if (!state.user) return; // the session ended while loading
    // A setup begun earlier (before a reload or on another visit): show the same key
    // again, which the person may already have scanned, rather than making a new one.
    if (state.mfa && !state.mfa.enabled && state.mfa.pending && state.panel === null) {
      await resumeEnroll();
      if (!state.user) return;
    }
    if (o.afterBackup && state.mfa) {
      const n = state.mfa.backup_codes_remaining;
      setAlert(
        'account-notice',
        `You signed in with a backup code. ${n === 1 ? '1 backup code is' : `${n} backup codes are`} left.` +
          (n <= 3 ? ' Get new ones soon.' : ''),
      );
    }
    show('account', 'account-title');
  }

  async function refreshAccount() {
    await Promise.all([refreshMfa(), refreshTokens(), refreshSessions()]);
  }

  async function refreshMfa() {
    const [status, events] = await Promise.allSettled([
      api('GET', '/api/auth/mfa/status'),
      api('GET', `/api/auth/mfa/events?limit=${EVENTS_PAGE}`),
    ]);
    for (const r of [status, events]) {
      if (r.status === 'rejected' && sessionEnded(r.reason)) return;
    }
    if (status.status === 'fulfilled') {
      state.mfa = status.value;
    } else {
      setAlert('account-error', `Could not load the two-step verification status. ${errorText(status.reason)}`);
    }
    renderMfa();
    if (events.status === 'fulfilled') renderEvents(events.value || [], false);
  }

  function renderMfa() {
    const s = state.mfa;
    const p = state.panel;
    const badge = $('mfa-badge');
    const on = !!(s && s.enabled);
    badge.textContent = s ? (on ? 'On' : 'Off') : '…';
    badge.className = `badge ${s ? (on ? 'badge-on' : 'badge-off') : ''}`;
    let summary = 'Checking…';
    if (s && on) {
      const n = s.backup_codes_remaining;
      summary =
        `On since ${fmtDate(s.enrolled_at)}. ` +
        (n === 0
          ? 'You have no backup codes left: get new ones so you can still sign in if you lose your phone.'
          : `${n === 1 ? '1 unused backup code' : `${n} unused backup codes`} left.`);
    } else if (s) {
      summary = 'Protect your account with a second step: after your password, enter a code from an authenticator app on your phone.';
    }
    const unsaved = s && on && p !== 'codes' && codesUnsavedSince();
    if (unsaved) {
      summary +=
        ` Your newest backup codes (made ${fmtDateTime(unsaved)}) were not confirmed as saved. ` +
        'If you did not save them, get new ones now.';
    }
    $('mfa-summary').textContent = summary;
    // A pending setup: either its key is shown again below (resumed), or it could not
    // be loaded and the person may try again, start over or cancel.
    const resumed = p === 'enroll' && state.enrollResumed;
    $('mfa-pending').hidden = !(s && !on && s.pending && (p === null || resumed));
    $('mfa-pending-text').textContent = resumed
      ? 'You started setting up an authenticator app but did not finish. Below is the same key as before: ' +
        'if your app already has it, just enter the code the app shows. ' +
        'Starting over makes a new key, and the entry already in your app would then stop working.'
      : 'You started setting up an authenticator app but did not finish.';
    $('mfa-pending-resume').hidden = resumed;
    $('enroll-cancel').hidden = resumed; // the note above has its own Cancel setup
    renderTokenReauth();
    $('mfa-actions-off').hidden = !(s && !on && !s.pending && p === null);
    $('mfa-actions-on').hidden = !(s && on && p === null);
    $('enroll-panel').hidden = p !== 'enroll';
    $('codes-panel').hidden = p !== 'codes';
    $('confirm-panel').hidden = p !== 'confirm';
  }

  // Security activity comes a page at a time; "Show more" asks for the next older page.
  const EVENTS_PAGE = 10;

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

  // --------------------------------------------------------- Enrollment

  /** Fills the enrollment panel with a pending key: `{otpauth_url, secret}`. */
  function fillEnroll(r) {
    state.panel = 'enroll';
    showSecret(r.secret);
    $('enroll-secret').dataset.secret = String(r.secret || '').replace(/\s+/g, '');
    loadQr();
    $('enroll-open-app').href = r.otpauth_url || '#';
    $('enroll-code').value = '';
    markInvalid($('enroll-code'), false);
    setAlert('enroll-error', '');
  }

  /** Starts a setup with a new key; `restart` when one was pending already. */
  async function beginEnroll(button, restart) {
    setAlert('account-error', '');
    setAlert('account-notice', '');
    busy(button, true);
    try {
      const r = await api('POST', '/api/auth/mfa/enroll/begin');
      state.enrollResumed = false;
      fillEnroll(r);
      $('enroll-restarted').hidden = !restart;
      renderMfa();
      $('enroll-title').focus();
      if (restart) announce('A new key was made. Delete the old slugbase entry in your authenticator app, then scan the new code.');
      refreshMfa(); // the new event, and "pending" in the status
    } catch (err) {
      if (sessionEnded(err)) return;
      setAlert('account-error', errorText(err));
      if (err.code === 'MFA_ALREADY_ENABLED') await refreshMfa();
    } finally {
      busy(button, false);
    }
  }

  /**
   * Shows the pending setup's key again (`GET /api/auth/mfa/enroll/pending`), so that
   * a reload does not make a new key for someone who already scanned the old one.
   * Without a `button` (on page load) a failure leaves the pending note to act on.
   */
  async function resumeEnroll(button) {
    if (button) {
      setAlert('account-error', '');
      setAlert('account-notice', '');
      busy(button, true);
    }
    try {
      const r = await api('GET', '/api/auth/mfa/enroll/pending');
      state.enrollResumed = true;
      fillEnroll(r);
      $('enroll-restarted').hidden = true;
      renderMfa();
      if (button) $('enroll-title').focus();
    } catch (err) {
      if (sessionEnded(err)) return;
      if (err.code === 'MFA_NO_PENDING' || err.code === 'MFA_ALREADY_ENABLED') {
        if (button) setAlert('account-error', errorText(err));
        await refreshMfa();
      } else if (button) {
        setAlert('account-error', errorText(err));
      }
    } finally {
      if (button) busy(button, false);
    }
  }

  /**
   * Shows the QR code of the pending setup, drawn by this server (never by a third
   * party) from the caller's own pending key. The query string only keeps the
   * browser from showing a cached picture of an earlier key.
   */
  function loadQr() {
    const img = $('enroll-qr');
    $('enroll-qr-failed').hidden = true;
    img.hidden = false;
    img.src = `/api/auth/mfa/enroll/qr?t=${Date.now()}`;
  }

  /** Shows the setup key in groups of four (two rows of four groups). */
  function showSecret(secret) {
    const el = $('enroll-secret');
    const clean = String(secret || '').replace(/\s+/g, '');
    el.replaceChildren();
    for (const group of clean.match(/.{1,4}/g) || []) {
      const span = document.createElement('span');
      span.textContent = group;
      el.append(span, ' ');
    }
  }

  $('mfa-enable').addEventListener('click', (ev) => beginEnroll(ev.currentTarget, false));
  $('mfa-pending-restart').addEventListener('click', (ev) => beginEnroll(ev.currentTarget, true));
  $('mfa-pending-resume').addEventListener('click', (ev) => resumeEnroll(ev.currentTarget));

  $('enroll-qr').addEventListener('error', () => {
    if (!$('enroll-qr').getAttribute('src')) return;
    $('enroll-qr').hidden = true;
    $('enroll-qr-failed').hidden = false;
  });

  $('enroll-secret-copy').addEventListener('click', (ev) =>
    copyText($('enroll-secret').dataset.secret || '', ev.currentTarget, $('enroll-secret')),
  );

  async function cancelEnroll(button) {
    busy(button, true);
    try {
      await api('POST', '/api/auth/mfa/enroll/cancel');
      state.panel = null;
      clearEnroll();
      setAlert('account-error', '');
      setAlert('account-notice', 'Setup cancelled. Two-step verification stays off.');
      await refreshMfa();
      $('mfa-card-title').focus();
    } catch (err) {
      if (sessionEnded(err)) return;
      setAlert(state.panel === 'enroll' ? 'enroll-error' : 'account-error', errorText(err));
    } finally {
      busy(button, false);
    }
  }

  /** Forgets the key shown in the enrollment panel. */
  function clearEnroll() {
    state.enrollResumed = false;
    $('enroll-qr').removeAttribute('src');
    $('enroll-secret').textContent = '';
    $('enroll-secret').dataset.secret = '';
    $('enroll-open-app').setAttribute('href', '#');
    $('enroll-restarted').hidden = true;
  }

  $('enroll-cancel').addEventListener('click', (ev) => cancelEnroll(ev.currentTarget));
  $('mfa-pending-cancel').addEventListener('click', (ev) => cancelEnroll(ev.currentTarget));

  $('enroll-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setAlert('enroll-error', '');
    const input = $('enroll-code');
    markInvalid(input, false);
    const code = readCode(input, 'totp');
    if (!code) return fieldError('enroll-error', 'enroll-code', codeMissingText('totp'));
    const button = $('enroll-submit');
    busy(button, true);
    try {
      const r = await api('POST', '/api/auth/mfa/enroll/confirm', { code });
      input.value = '';
      clearEnroll();
      showCodes(r.backup_codes || [], 'enroll');
      refreshMfa();
    } catch (err) {
      if (sessionEnded(err)) return;
      if (err.code === 'MFA_NO_PENDING' || err.code === 'MFA_ALREADY_ENABLED') {
        state.panel = null;
        setAlert('account-error', errorText(err));
        await refreshMfa();
        $('mfa-card-title').focus();
      } else if (err.code === 'INVALID_CODE' || err.code === 'CODE_ALREADY_USED') {
        fieldError('enroll-error', 'enroll-code', codeErrorText(err, 'totp', 'setup'));
      } else if (err.code === 'RATE_LIMITED') {
        setAlert('enroll-error', codeErrorText(err, 'totp', 'setup'));
      } else {
        setAlert('enroll-error', errorText(err, 'totp'));
      }
    } finally {
      busy(button, false);
    }
  });

  // ------------------------------------------------------- Backup codes

  function showCodes(codes, context) {
    state.panel = 'codes';
    state.codesContext = context;
    $('codes-title').textContent = context === 'enroll' ? 'Two-step verification is on. Save your backup codes' : 'Save your new backup codes';
    $('codes-lead').textContent =
      (context === 'enroll' ? '' : 'Your old backup codes no longer work. ') +
      'If you lose access to your authenticator app, each of these codes signs you in once. ' +
      'Keep them somewhere safe, such as a password manager. They will not be shown again.';
    const list = $('backup-codes');
    list.replaceChildren();
    for (const c of codes) {
      const li = document.createElement('li');
      const code = document.createElement('code');
      code.textContent = c;
      li.append(code);
      list.append(li);
    }
    const email = (state.user && state.user.email) || '';
    const text =
      'slugbase backup codes\n' +
      (email ? `Account: ${email}\n` : '') +
      `Created: ${new Date().toLocaleString()}\n\n` +
      'Each code signs you in once instead of a code from your authenticator app.\n\n' +
      codes.map((c, i) => `${String(i + 1).padStart(2, ' ')}. ${c}`).join('\n') +
      '\n';
    if (state.codesUrl) URL.revokeObjectURL(state.codesUrl);
    state.codesUrl = URL.createObjectURL(new Blob([text], { type: 'text/plain;charset=utf-8' }));
    $('codes-download').href = state.codesUrl;
    $('codes-copy').dataset.text = codes.join('\n');
    $('codes-saved').checked = false;
    $('codes-continue').disabled = true;
    markCodesUnsaved(true);
    renderMfa();
    $('codes-title').focus();
  }

  // New backup codes not yet confirmed as saved: the browser asks before the page is left,
  // and after a reload the status says so (the old codes are already dead by then).
  function unsavedKey() {
    return `slugbase.codes-unsaved.${(state.user && state.user.id) || ''}`;
  }

  function markCodesUnsaved(on) {
    try {
      if (on) localStorage.setItem(unsavedKey(), new Date().toISOString());
      else localStorage.removeItem(unsavedKey());
    } catch (_) {
      // Storage off: the prompt before leaving still works.
    }
  }

  function codesUnsavedSince() {
    try {
      return localStorage.getItem(unsavedKey());
    } catch (_) {
      return null;
    }
  }

  /** Whether leaving now would lose backup codes that were not confirmed as saved. */
  function codesAtRisk() {
    return state.panel === 'codes' && !$('codes-saved').checked;
  }

  window.addEventListener('beforeunload', (ev) => {
    if (!codesAtRisk()) return;
    ev.preventDefault();
    ev.returnValue = '';
  });

  function clearCodes() {
    $('backup-codes').replaceChildren();
    $('codes-copy').dataset.text = '';
    $('codes-download').setAttribute('href', '#');
    if (state.codesUrl) {
      const url = state.codesUrl;
      state.codesUrl = null;
      window.setTimeout(() => URL.revokeObjectURL(url), 1000);
    }
  }

  $('codes-copy').addEventListener('click', (ev) =>
    copyText(ev.currentTarget.dataset.text || '', ev.currentTarget, $('backup-codes')),
  );

  $('codes-download').addEventListener('click', (ev) => {
    if (!state.codesUrl) ev.preventDefault();
  });

  $('codes-saved').addEventListener('change', (ev) => {
    $('codes-continue').disabled = !ev.currentTarget.checked;
  });

  $('codes-continue').addEventListener('click', async () => {
    if (!$('codes-saved').checked) return;
    markCodesUnsaved(false);
    const context = state.codesContext;
    state.panel = null;
    clearCodes();
    if (context === 'enroll' && state.enrollFor && (await leaveForRd())) return;
    setAlert(
      'account-notice',
      context === 'enroll'
        ? 'Two-step verification is on. You were signed out everywhere else.'
        : 'Your new backup codes are ready to use.',
    );
    renderMfa();
    $('mfa-card-title').focus();
    await refreshMfa();
  });

  // ---------------------------------------- Disable / regenerate (confirm)

  function setConfirmMode(mode) {
    state.confirmMode = mode;
    setCodeMode('confirm', mode);
  }

  function openConfirm(action) {
    state.panel = 'confirm';
    state.confirmAction = action;
    const hasPassword = !!(state.user && state.user.has_password);
    const how = `Confirm with a code from your authenticator app or a backup code${hasPassword ? ', and your password' : ''}.`;
    if (action === 'disable') {
      $('confirm-title').textContent = 'Turn off two-step verification';
      const first = hasPassword ? 'your password' : 'your sign-in provider';
      $('confirm-lead').textContent = `Your account will then be protected by ${first} only, and your backup codes stop working. ${how}`;
      $('confirm-submit').textContent = 'Turn off';
      $('confirm-submit').className = 'btn btn-danger';
    } else {
      $('confirm-title').textContent = 'Get new backup codes';
      $('confirm-lead').textContent = `You get 10 new codes and your current backup codes stop working. ${how}`;
      $('confirm-submit').textContent = 'Get new codes';
      $('confirm-submit').className = 'btn btn-primary';
    }
    $('confirm-password-field').hidden = !hasPassword;
    $('confirm-password').value = '';
    markInvalid($('confirm-password'), false);
    setConfirmMode('totp');
    setAlert('confirm-error', '');
    setAlert('account-error', '');
    setAlert('account-notice', '');
    renderMfa();
    $('confirm-code').focus();
  }

  $('disable-open').addEventListener('click', () => openConfirm('disable'));
  $('regen-open').addEventListener('click', () => openConfirm('regenerate'));

  $('confirm-toggle').addEventListener('click', () => {
    setConfirmMode(state.confirmMode === 'totp' ? 'backup' : 'totp');
    setAlert('confirm-error', '');
    $('confirm-code').focus();
  });

  $('confirm-cancel').addEventListener('click', () => {
    state.panel = null;
    $('confirm-code').value = '';
    $('confirm-password').value = '';
    renderMfa();
    $(state.confirmAction === 'disable' ? 'disable-open' : 'regen-open').focus();
  });

  $('confirm-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearInvalid(ev.currentTarget);
    setAlert('confirm-error', '');
    const mode = state.confirmMode;
    const code = readCode($('confirm-code'), mode);
    if (!code) return fieldError('confirm-error', 'confirm-code', codeMissingText(mode));
    const body = { code };
    if (!$('confirm-password-field').hidden) {
      const password = $('confirm-password').value;
      if (!password) return fieldError('confirm-error', 'confirm-password', 'Enter your password to confirm.');
      body.password = password;
    }
    const action = state.confirmAction;
    const button = $('confirm-submit');
    busy(button, true);
    try {
      if (action === 'disable') {
        await api('POST', '/api/auth/mfa/disable', body);
        state.panel = null;
        setAlert('account-notice', 'Two-step verification is off. You were signed out everywhere else.');
        renderMfa();
        await refreshMfa();
        $('mfa-card-title').focus();
      } else {
        const r = await api('POST', '/api/auth/mfa/backup/regenerate', body);
        showCodes(r.backup_codes || [], 'regenerate');
        refreshMfa();
      }
      $('confirm-code').value = '';
      $('confirm-password').value = '';
    } catch (err) {
      if (sessionEnded(err)) return;
      if (err.code === 'INVALID_PASSWORD') {
        fieldError('confirm-error', 'confirm-password', errorText(err));
      } else if (err.code === 'PASSWORD_REQUIRED') {
        $('confirm-password-field').hidden = false;
        fieldError('confirm-error', 'confirm-password', errorText(err));
      } else if (err.code === 'INVALID_CODE' || err.code === 'CODE_ALREADY_USED') {
        fieldError('confirm-error', 'confirm-code', codeErrorText(err, mode, 'confirm'));
      } else if (err.code === 'RATE_LIMITED') {
        setAlert('confirm-error', codeErrorText(err, mode, 'confirm'));
      } else if (err.code === 'MFA_NOT_ENABLED') {
        state.panel = null;
        setAlert('account-error', errorText(err));
        await refreshMfa();
      } else {
        setAlert('confirm-error', errorText(err, mode));
      }
    } finally {
      busy(button, false);
    }
  });

  // ------------------------------------------------------------ Tokens

  async function refreshTokens() {
    try {
      renderTokens((await api('GET', '/api/tokens')) || []);
    } catch (err) {
      if (sessionEnded(err)) return;
      setAlert('tokens-error', `Could not load your tokens. ${errorText(err)}`);
    }
  }

  function renderTokens(tokens) {
    const list = $('tokens-list');
    list.replaceChildren();
    $('tokens-empty').hidden = tokens.length > 0;
    for (const t of tokens) {
      const li = document.createElement('li');
      li.dataset.tokenId = String(t.id);
      const main = document.createElement('div');
      main.className = 'list-main';
      const title = document.createElement('div');
      title.className = 'list-title';
      title.textContent = t.name;
      const meta = document.createElement('div');
      meta.className = 'list-meta';
      const expires = toDate(t.expires_at);
      meta.textContent =
        `Created ${fmtDate(t.created_at)} · ` +
        (t.last_used_at ? `last used ${fmtDateTime(t.last_used_at)}` : 'never used') +
        (expires ? ` · ${expires.getTime() <= Date.now() ? 'expired' : 'expires'} ${fmtDate(t.expires_at)}` : '');
      main.append(title, meta);
      const actions = document.createElement('div');
      actions.className = 'list-actions';
      const revoke = document.createElement('button');
      revoke.type = 'button';
      revoke.className = 'btn btn-small btn-danger-outline';
      revoke.dataset.action = 'revoke';
      revoke.textContent = 'Revoke';
      revoke.setAttribute('aria-label', `Revoke token ${t.name}`);
      actions.append(revoke);
      li.append(main, actions);
      list.append(li);
    }
  }

  function askRevoke(li) {
    const name = li.querySelector('.list-title').textContent;
    const actions = li.querySelector('.list-actions');
    actions.replaceChildren();
    const q = document.createElement('span');
    q.className = 'small muted';
    q.textContent = 'Revoke?';
    const yes = document.createElement('button');
    yes.type = 'button';
    yes.className = 'btn btn-small btn-danger';
    yes.dataset.action = 'revoke-confirm';
    yes.textContent = 'Revoke';
    yes.setAttribute('aria-label', `Yes, revoke token ${name}`);
    const no = document.createElement('button');
    no.type = 'button';
    no.className = 'btn btn-small btn-ghost';
    no.dataset.action = 'revoke-keep';
    no.textContent = 'Keep';
    actions.append(q, yes, no);
    yes.focus();
  }

  $('tokens-list').addEventListener('click', async (ev) => {
    const button = ev.target.closest('button[data-action]');
    if (!button) return;
    const li = button.closest('li');
    const id = li.dataset.tokenId;
    const action = button.dataset.action;
    setAlert('tokens-error', '');
    if (action === 'revoke') return askRevoke(li);
    if (action === 'revoke-keep') return refreshTokens();
    busy(button, true);
    try {
      const name = li.querySelector('.list-title').textContent;
      await api('DELETE', `/api/tokens/${encodeURIComponent(id)}`);
      await refreshTokens();
      announce(`Token ${name} revoked.`);
      $('token-name').focus();
    } catch (err) {
      if (sessionEnded(err)) return;
      busy(button, false);
      setAlert('tokens-error', errorText(err));
    }
  });

  /** Shows or hides the password (and code) that creating a token may need. */
  function setTokenReauth(on) {
    state.tokenReauth = on;
    $('token-reauth').hidden = !on;
    $('token-password').value = '';
    markInvalid($('token-password'), false);
    state.tokenCodeMode = 'totp';
    setCodeMode('token', 'totp');
    renderTokenReauth();
  }

  /** The code field follows the MFA status: asked for only while MFA is on. */
  function renderTokenReauth() {
    const mfaOn = !!(state.mfa && state.mfa.enabled);
    $('token-code-field').hidden = !mfaOn;
    $('token-reauth-lead').textContent = mfaOn
      ? 'Creating a token needs a recent sign-in. Enter your password and a code from your authenticator app (or a backup code) to go on.'
      : 'Creating a token needs a recent sign-in. Enter your password to go on.';
  }

  $('token-toggle').addEventListener('click', () => {
    state.tokenCodeMode = state.tokenCodeMode === 'totp' ? 'backup' : 'totp';
    setCodeMode('token', state.tokenCodeMode);
    $('token-code').focus();
  });

  $('token-reauth-cancel').addEventListener('click', () => {
    setTokenReauth(false);
    setAlert('tokens-error', '');
    $('token-name').focus();
  });

  $('token-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setAlert('tokens-error', '');
    clearInvalid(ev.currentTarget);
    const input = $('token-name');
    const name = input.value.trim();
    if (!name) return fieldError('tokens-error', 'token-name', 'Give the token a name, for example what it is used for.');
    const body = { name };
    const days = $('token-expiry').value;
    if (days) body.expires_in_days = Number(days);
    const mode = state.tokenCodeMode;
    if (state.tokenReauth) {
      const password = $('token-password').value;
      if (!password) return fieldError('tokens-error', 'token-password', 'Enter your password to confirm.');
      body.password = password;
      if (!$('token-code-field').hidden) {
        const code = readCode($('token-code'), mode);
        if (!code) return fieldError('tokens-error', 'token-code', codeMissingText(mode));
        body.code = code;
      }
    }
    const button = state.tokenReauth ? $('token-reauth-submit') : $('token-create');
    busy(button, true);
    try {
      const r = await api('POST', '/api/tokens', body);
      input.value = '';
      setTokenReauth(false); // the next token asks again if it must
      $('token-new-value').textContent = r.token;
      $('token-new').hidden = false;
      await refreshTokens();
      $('token-new-copy').focus();
      announce('Token created. Copy it now; it will not be shown again.');
    } catch (err) {
      if (sessionEnded(err)) return;
      if (err.code === 'REAUTH_REQUIRED') {
        if (state.user && state.user.has_password) {
          setTokenReauth(true);
          setAlert('tokens-error', errorText(err));
          $('token-password').focus();
        } else {
          setAlert('tokens-error', 'For your security, sign out and sign in again, then create the token.');
        }
      } else if (err.code === 'INVALID_PASSWORD' && state.tokenReauth) {
        fieldError('tokens-error', 'token-password', errorText(err));
      } else if ((err.code === 'INVALID_CODE' || err.code === 'CODE_ALREADY_USED') && state.tokenReauth && !$('token-code-field').hidden) {
        fieldError('tokens-error', 'token-code', codeErrorText(err, mode, 'confirm'));
      } else if (err.code === 'VALIDATION_ERROR') {
        const field = err.details && err.details.field === 'expires_in_days' ? 'token-expiry' : 'token-name';
        fieldError('tokens-error', field, errorText(err));
      } else {
        setAlert('tokens-error', errorText(err, mode));
      }
    } finally {
      busy(button, false);
    }
  });

  $('token-new-copy').addEventListener('click', (ev) =>
    copyText($('token-new-value').textContent, ev.currentTarget, $('token-new-value')),
  );

  $('token-new-done').addEventListener('click', () => {
    $('token-new').hidden = true;
    $('token-new-value').textContent = '';
    $('token-name').focus();
  });

  // ------------------------------------------------------------ Sign out

  function resetAccountSecrets() {
    state.panel = null;
    clearCodes();
    clearEnroll();
    $('token-new').hidden = true;
    $('token-new-value').textContent = '';
    setTokenReauth(false);
    $('confirm-code').value = '';
    $('confirm-password').value = '';
    $('password-form').reset();
    setAlert('password-notice', '');
    setAlert('password-error', '');
    hidePasswords();
  }

  $('logout-button').addEventListener('click', async (ev) => {
    const button = ev.currentTarget;
    if (codesAtRisk() && !window.confirm('Your new backup codes are not confirmed as saved and will not be shown again. Sign out anyway?')) {
      return;
    }
    busy(button, true);
    try {
      await api('POST', '/api/auth/logout');
    } catch (err) {
      if (err.status !== 401) {
        busy(button, false);
        setAlert('account-error', errorText(err));
        return;
      }
    }
    busy(button, false);
    setPath('/login');
    openLogin({ notice: 'You are signed out.' });
  });

  // ------------------------------------------------------------ Clipboard

  /** Copies `text`; falls back to a hidden textarea, then to selecting `source`. */
  async function copyText(text, button, source) {
    let ok = false;
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        ok = true;
      } catch (_) {
        ok = false;
      }
    }
    if (!ok) {
      const ta = document.createElement('textarea');
      ta.value = text;
      ta.setAttribute('readonly', '');
      ta.className = 'offscreen';
      document.body.append(ta);
      ta.select();
      try {
        ok = document.execCommand('copy');
      } catch (_) {
        ok = false;
      }
      ta.remove();
      button.focus();
    }
    const label = button.dataset.copyLabel || button.textContent;
    if (ok) {
      button.textContent = 'Copied';
      announce('Copied to the clipboard.');
      window.setTimeout(() => {
        button.textContent = label;
      }, 2000);
    } else {
      if (source) {
        const range = document.createRange();
        range.selectNodeContents(source);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
      }
      announce('Copying is not available here. The text is selected: copy it with your keyboard or menu.');
      button.textContent = 'Select and copy';
      window.setTimeout(() => {
        button.textContent = label;
      }, 3000);
    }
  }

  // ------------------------------------------------ Show-password toggles

  /** Puts a "Show" button into every password field (they are plain text while shown). */
  function addPasswordToggles() {
    document.querySelectorAll('input[type="password"]').forEach((input) => {
      const wrap = document.createElement('div');
      wrap.className = 'pw-wrap';
      input.before(wrap);
      wrap.append(input);
      const toggle = document.createElement('button');
      toggle.type = 'button';
      toggle.className = 'pw-toggle';
      toggle.textContent = 'Show';
      toggle.setAttribute('aria-pressed', 'false');
      toggle.setAttribute('aria-controls', input.id);
      const label = document.querySelector(`label[for="${input.id}"]`);
      toggle.setAttribute('aria-label', `Show ${label ? label.textContent.trim().toLowerCase() : 'password'}`);
      toggle.addEventListener('click', () => {
        const shown = input.type === 'password';
        input.type = shown ? 'text' : 'password';
        toggle.setAttribute('aria-pressed', String(shown));
        toggle.textContent = shown ? 'Hide' : 'Show';
      });
      wrap.append(toggle);
    });
  }

  /** Hides every shown password again (after a submit, or on leaving a screen). */
  function hidePasswords() {
    document.querySelectorAll('.pw-wrap').forEach((wrap) => {
      const input = wrap.querySelector('input');
      const toggle = wrap.querySelector('.pw-toggle');
      if (input && toggle && input.type === 'text') {
        input.type = 'password';
        toggle.setAttribute('aria-pressed', 'false');
        toggle.textContent = 'Show';
      }
    });
  }

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

  // ------------------------------------------------------------ Start

  addPasswordToggles();

  document.querySelectorAll('input').forEach((input) =>
    input.addEventListener('input', () => markInvalid(input, false)),
  );
  document.querySelectorAll('select').forEach((select) =>
    select.addEventListener('change', () => markInvalid(select, false)),
  );

  window.addEventListener('popstate', () => {
    route();
  });

  route();
})();
