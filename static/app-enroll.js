// slugbase page: setting up an authenticator app (new, resumed or restarted key, QR code,
// confirming code) and showing new backup codes until the person says they saved them.
'use strict';

(function (sb) {
  const { $, state, api, errorText, codeErrorText, leaveForRd } = sb; // app-core.js
  const { // app-ui.js
    announce, busy, codeMissingText, copyText, fieldError, markInvalid, readCode, setAlert,
  } = sb;
  const sessionEnded = sb.later('sessionEnded');
  const refreshMfa = sb.later('refreshMfa');
  const renderMfa = sb.later('renderMfa');

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

  /**
   * Shows new backup codes (after enrolling, or regenerated) with copy and download; they
   * count as unsaved until the person ticks that they saved them.
   */
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

  /** When the newest backup codes were shown without being confirmed as saved, or null. */
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

  /**
   * Forgets the shown backup codes; the download URL is revoked a moment later, so a
   * download just started still works.
   */
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

  sb.provide({ resumeEnroll, clearEnroll, showCodes, codesUnsavedSince, codesAtRisk, clearCodes });
})(window.slugbase);
