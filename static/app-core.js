// slugbase page, the shared core: the namespace the page's scripts share, the state of the
// page, the API client and its error texts, and moving between views. The page is plain
// JavaScript in classic `defer` scripts (no build step, no modules): index.html lists them in
// the order they run, this one first and app-start.js last. The server's CSP forbids inline
// scripts and styles, so all behaviour lives in these files and all looks live in app.css.
'use strict';

/**
 * The page's one global. Each script wraps itself in a function, takes what it needs from
 * here and adds what others call with `provide`; app-start.js freezes it once every script
 * has run. Core and app-ui.js parts are taken directly (they run first); a part of any
 * other script is taken with `later`, since those scripts call each other in both directions.
 */
window.slugbase = (function () {
  const sb = { provide, later };

  /** Adds `parts` to the namespace; a name given twice is a mistake in the page's scripts. */
  function provide(parts) {
    for (const [name, value] of Object.entries(parts)) {
      if (Object.prototype.hasOwnProperty.call(sb, name)) throw new Error(`slugbase: ${name} is provided twice`);
      sb[name] = value;
    }
  }

  /**
   * A stand-in for the function `name` of another script, looked up on each call: the
   * script that provides it may run after the one that takes it.
   */
  function later(name) {
    return (...args) => {
      if (typeof sb[name] !== 'function') throw new Error(`slugbase: ${name} is not provided`);
      return sb[name](...args);
    };
  }

  /** `document.getElementById`, short because nearly every line of the page's scripts uses it. */
  const $ = (id) => document.getElementById(id);

  /** What the page shows and holds; one object, so every script sees the same values. */
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

  /**
   * Calls the API with the session cookie; the JSON answer, or an ApiError (status 0 when the
   * server could not be reached).
   */
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

  /** `1 minute`, `2 minutes`. */
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

  // --------------------------------------------------------- Navigation

  const VIEWS = ['loading', 'setup', 'login', 'mfa', 'account'];
  const TITLES = {
    setup: 'Set up',
    login: 'Sign in',
    mfa: 'Two-step verification',
    account: 'Your account',
  };

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

  /** Puts `bare` (with what withReturn keeps) in the address bar; `replace` adds no history entry. */
  function setPath(bare, replace) {
    const path = withReturn(bare);
    if (location.pathname + location.search === path) return;
    if (replace) history.replaceState(null, '', path);
    else history.pushState(null, '', path);
  }

  /**
   * Shows one view and hides the others; moves the focus to `focusId` when the view changed
   * (or nothing had the focus), so a screen reader starts at the new view.
   */
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

  provide({ $, state, leaveFor, leaveForRd, api, plural, errorText, codeErrorText, setPath, show });
  return sb;
})();
