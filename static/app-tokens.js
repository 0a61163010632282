// slugbase page: the API tokens card: list, create (asking for the password and a code again
// when the sign-in is not recent), show the new token once, revoke.
'use strict';

(function (sb) {
  const { $, state, api, errorText, codeErrorText } = sb; // app-core.js
  const { // app-ui.js
    announce, busy, clearInvalid, codeMissingText, copyText, fieldError, fmtDate, fmtDateTime,
    markInvalid, readCode, setAlert, setCodeMode, toDate,
  } = sb;
  const sessionEnded = sb.later('sessionEnded');

  // ------------------------------------------------------------ Tokens

  /** Reloads the list of tokens. */
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

  sb.provide({ refreshTokens, setTokenReauth, renderTokenReauth });
})(window.slugbase);
