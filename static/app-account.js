// slugbase page: the account view: who is signed in, the two-step verification card and its
// turn-off / new-backup-codes confirmation, and signing out.
'use strict';

(function (sb) {
  const { $, state, api, errorText, codeErrorText, setPath, show } = sb; // app-core.js
  const { // app-ui.js
    busy, clearInvalid, codeMissingText, fieldError, fmtDate, fmtDateTime, hidePasswords,
    markInvalid, readCode, setAlert, setCodeMode,
  } = sb;
  const openLogin = sb.later('openLogin');
  const resumeEnroll = sb.later('resumeEnroll');
  const clearEnroll = sb.later('clearEnroll');
  const showCodes = sb.later('showCodes');
  const clearCodes = sb.later('clearCodes');
  const codesAtRisk = sb.later('codesAtRisk');
  const codesUnsavedSince = sb.later('codesUnsavedSince');
  const refreshTokens = sb.later('refreshTokens');
  const setTokenReauth = sb.later('setTokenReauth');
  const renderTokenReauth = sb.later('renderTokenReauth');
  const newestEvents = sb.later('newestEvents');
  const renderEvents = sb.later('renderEvents');
  const refreshSessions = sb.later('refreshSessions');

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

  /**
   * Shows the account of `user` once its cards are loaded; `opts.notice` says what just
   * happened, `opts.afterBackup` that a backup code was used (so the count left matters).
   */
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

  /** Reloads the two-step verification status and the newest security activity. */
  async function refreshMfa() {
    const [status, events] = await Promise.allSettled([
      api('GET', '/api/auth/mfa/status'),
      newestEvents(),
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

  /** Shows the MFA card as `state.mfa` and the open panel (`state.panel`) say. */
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

  // ------------------------------------------------------------ Sign out

  /** Clears every secret the account view may show (codes, keys, tokens, passwords). */
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

  sb.provide({ sessionEnded, openAccount, refreshMfa, renderMfa, resetAccountSecrets });
})(window.slugbase);
