// slugbase page, run last: picks the view for the address (and Back/Forward), and the wiring
// every view shares. Every other script has run, so the namespace is frozen here.
'use strict';

(function (sb) {
  const { state, api, errorText, leaveForRd, setPath } = sb; // app-core.js
  const { addPasswordToggles, markInvalid } = sb; // app-ui.js
  const openSetup = sb.later('openSetup');
  const openLogin = sb.later('openLogin');
  const openMfa = sb.later('openMfa');
  const openAccount = sb.later('openAccount');

  // Every script has provided its parts: from here on nothing can add or replace one.
  Object.freeze(sb);

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

  // ?error=<CODE> from a sign-in through an OpenID provider, in words.
  const OIDC_ERRORS = {
    OIDC_STATE_INVALID: 'That sign-in link expired or was already used. Please start the sign-in again.',
    OIDC_PROVIDER_UNAVAILABLE: 'The sign-in provider could not be reached. Please try again in a moment, or tell your administrator.',
    OIDC_PROVIDER_ERROR: 'The sign-in provider did not sign you in (it was cancelled or refused). Please try again.',
    OIDC_TOKEN_INVALID: 'The sign-in provider sent an answer that could not be verified, so you were not signed in. Please try again, or tell your administrator.',
    OIDC_ACCOUNT_NOT_LINKED: 'An account with this email exists here but is not linked to that provider. Sign in with your password, or ask your administrator to link it.',
    OIDC_ACCOUNT_NOT_FOUND: 'There is no account here for that sign-in, and new accounts cannot be created this way. Ask your administrator for an account (the provider must also confirm your email address).',
  };

  /** Shows the view the address asks for, given what the server says about the session. */
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
})(window.slugbase);
