// The administration pages' forms (units, accounts): an API error shown next to its
// field (the API's `field`) or at the top of the form, the buttons held while a
// request runs, and after a change a reload that shows what is stored, with the
// result message carried over in sessionStorage into the page's status region.

import { t } from "./i18n.js";

// Codes every form may meet (web/errors.py, web/auth.py).
export const COMMON_ERRORS = {
  missing_field: t("Please fill this in."),
  invalid_field: t("Please check this field."),
  unknown_field: t("Please check this field."),
  unknown_unit: t("Unknown unit."),
  forbidden: t("You may not do this."),
  csrf_failed: t("The page has expired: please reload it."),
};

/**
 * @param errors     code -> text, on top of COMMON_ERRORS
 * @param codeField  code -> the field it belongs to when the API names none
 * @param flashKey   the sessionStorage key of the message kept over a reload
 * @param status     the element that announces it
 */
export function adminForms({ errors, codeField = {}, flashKey, status }) {
  const texts = { ...COMMON_ERRORS, ...errors };

  const errorText = (error, fallback) => texts[error.code] || error.message || fallback;

  function clearErrors(form) {
    form.querySelector("[data-form-message]").textContent = "";
    for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
    for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  }

  function focusField(form, field) {
    const input = form.elements.namedItem(field);
    // A group of checkboxes (roles) comes as a RadioNodeList: mark its first box.
    const target = input && input.length !== undefined && !input.tagName ? input[0] : input;
    if (target && target.setAttribute) {
      target.setAttribute("aria-invalid", "true");
      target.focus();
    }
  }

  /** Shows `error` next to its field in `form` (or at the top when it names none). */
  function showError(form, error, fallback) {
    // A list's error names an item ("roles.0"): it is the list's.
    const field = (error.field || codeField[error.code] || "").split(".")[0];
    const text = errorText(error, fallback);
    const slot = field ? form.querySelector(`.field-error[data-field="${field}"]`) : null;
    if (slot) {
      slot.textContent = text;
      focusField(form, field);
    }
    form.querySelector("[data-form-message]").textContent = slot ? t("Please correct the marked fields.") : text;
  }

  function reloadWith(message) {
    sessionStorage.setItem(flashKey, message);
    window.location.reload();
  }

  /** Runs `action` with the form's buttons disabled; API errors go to the form. */
  async function submitting(form, fallback, action) {
    clearErrors(form);
    const buttons = form.querySelectorAll("button");
    for (const b of buttons) b.disabled = true;
    try {
      await action();
    } catch (error) {
      showError(form, error, fallback);
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  }

  const flash = sessionStorage.getItem(flashKey);
  if (flash) {
    sessionStorage.removeItem(flashKey);
    status.textContent = flash;
  }
  return { clearErrors, errorText, reloadWith, showError, submitting };
}
