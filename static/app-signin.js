// slugbase page: first-start setup, the password step of sign-in (with its OpenID provider
// buttons) and the second step, a code from the authenticator app or a backup code.
'use strict';

(function (sb) {
  const { $, state, api, errorText, codeErrorText, leaveFor, setPath, show } = sb; // app-core.js
  const { // app-ui.js
    busy, clearInvalid, codeMissingText, fieldError, markInvalid, readCode, setAlert, setCodeMode,
  } = sb;
  const openAccount = sb.later('openAccount');
  const resetAccountSecrets = sb.later('resetAccountSecrets');

  // ------------------------------------------------------------- Setup

  /** Shows the first-start form, or why it cannot be used (no token in the link, or already set up). */
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

  /**
   * Shows sign-in with `opts.notice` or `opts.error`; forgets the account and every secret
   * it showed, since whoever signs in next may be someone else.
   */
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

  // ------------------------------------------------- Sign in: second step

  function setMfaMode(mode) {
    state.mfaMode = mode;
    setCodeMode('mfa', mode);
    $('mfa-lead').textContent =
      mode === 'backup'
        ? 'Enter one of the backup codes you saved when you set up two-step verification. Each code works once.'
        : 'Enter the 6-digit code from your authenticator app.';
  }

  /** Shows the code step of the sign-in of `email` (kept from before when not given). */
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

  sb.provide({ openSetup, openLogin, openMfa });
})(window.slugbase);
