// The recording retention page: set the period (PUT /api/retention) and sweep now
// (POST /api/retention/sweep), then reload to show the new figures and history.

import { api } from "./api.js";
import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const data = JSON.parse($("retention-data").textContent);

const form = $("retention-form");
const input = $("retention-days");
const problem = $("retention-error");

const CODES = {
  retention_days_not_integer: () => t("Enter a whole number of days."),
  retention_days_negative: () => t("The number of days cannot be negative."),
  retention_days_too_large: () => t("At most {max} days; 0 keeps recordings forever.", { max: data.max_days }),
};

function refuse(text) {
  input.setAttribute("aria-invalid", "true");
  problem.textContent = text;
  input.focus();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  problem.textContent = "";
  input.removeAttribute("aria-invalid");
  const text = input.value.trim();
  if (!/^\d+$/.test(text)) {
    refuse(text.startsWith("-") ? CODES.retention_days_negative() : CODES.retention_days_not_integer());
    return;
  }
  const days = Number(text);
  if (days > data.max_days) {
    refuse(CODES.retention_days_too_large());
    return;
  }
  if (days > 0 && (data.days === 0 || days < data.days)) {
    const question = t("Recordings older than {days} days that are not marked keep will be deleted at the next sweep. Continue?", { days });
    if (!window.confirm(question)) return;
  }
  try {
    await api("PUT", "/api/retention", { days });
    window.location.reload();
  } catch (error) {
    refuse((CODES[error.code] || (() => error.message || t("That did not work.")))());
  }
});

$("sweep-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!window.confirm(t("Delete now the recordings past the retention period? This cannot be undone."))) return;
  const button = $("sweep-now");
  button.disabled = true;
  try {
    const done = await api("POST", "/api/retention/sweep");
    $("retention-message").textContent = t("{n} recordings deleted.", { n: done.purged.length });
    window.setTimeout(() => window.location.reload(), 1500);
  } catch (error) {
    button.disabled = false;
    $("retention-message").textContent = error.message || t("That did not work.");
  }
});
