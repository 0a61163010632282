// slugbase page: helpers every view uses: alerts and field errors, busy buttons, dates,
// code fields (a TOTP or a backup code), copying to the clipboard and show-password toggles.
'use strict';

(function (sb) {
  const { $ } = sb; // app-core.js

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

  /** Says `text` through the live region, even when it is the same as last time. */
  function announce(text) {
    const el = $('announcer');
    el.textContent = '';
    window.setTimeout(() => {
      el.textContent = text;
    }, 60);
  }

  /** Marks a field invalid, or valid again (which also empties its error line). */
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

  /** Disables a button while its request runs, so a double click sends it once. */
  function busy(button, on) {
    button.disabled = on;
    button.classList.toggle('is-busy', on);
    if (on) button.setAttribute('aria-busy', 'true');
    else button.removeAttribute('aria-busy');
  }

  /** Marks every field of `form` valid again (before a new submit is checked). */
  function clearInvalid(form) {
    form.querySelectorAll('[aria-invalid]').forEach((el) => markInvalid(el, false));
  }

  // ------------------------------------------------------------ Formatting

  /** A Date from the API's Unix seconds or ISO text; null when there is none. */
  function toDate(value) {
    if (value == null || value === '') return null;
    const d = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  /** Date and time in the reader's locale (the raw value when it is no date). */
  function fmtDateTime(value) {
    const d = toDate(value);
    return d ? d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : String(value || '');
  }

  /** The date alone in the reader's locale (the raw value when it is no date). */
  function fmtDate(value) {
    const d = toDate(value);
    return d ? d.toLocaleDateString(undefined, { dateStyle: 'medium' }) : String(value || '');
  }

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

  /** The error for an empty or malformed code in `mode` ('totp' or 'backup'). */
  function codeMissingText(mode) {
    return mode === 'backup' ? 'Enter one of your backup codes.' : 'Enter the 6-digit code from your authenticator app.';
  }

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

  sb.provide({
    setAlert, announce, markInvalid, fieldError, busy, clearInvalid, toDate, fmtDateTime, fmtDate,
    setCodeMode, readCode, codeMissingText, copyText, addPasswordToggles, hidePasswords,
  });
})(window.slugbase);
