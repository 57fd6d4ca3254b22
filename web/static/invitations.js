// A meeting's invitations page: copy a unit's join link (Clipboard API), revoke and
// re-issue links, reschedule or cancel the meeting -- all through the JSON API.

import { api } from "./api.js";
import { localTime, nextDay } from "./localtime.js";
import { t } from "./i18n.js";

const data = JSON.parse(document.getElementById("invitations-data").textContent);
const $ = (id) => document.getElementById(id);
const base = `/api/meetings/${data.meeting_id}`;

const post = (url, body) => api("POST", url, body || {});

function say(text) {
  $("inv-message").textContent = text;
}

async function copy(unit) {
  const input = $(`link-${unit}`);
  try {
    await navigator.clipboard.writeText(input.value);
    say(t("Link copied."));
  } catch {
    // No clipboard permission (an old browser, plain HTTP): select it for Ctrl+C.
    input.focus();
    input.select();
    say(t("Press Ctrl+C to copy the selected link."));
  }
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-unit]");
  if (!button) return;
  const unit = button.dataset.unit;
  const path = `${base}/invitations/${encodeURIComponent(unit)}`;
  if (button.classList.contains("copy-link")) {
    await copy(unit);
    return;
  }
  const revoking = button.classList.contains("revoke");
  const question = revoking
    ? t("Revoke this unit's link? It stops working at once.")
    : t("Issue a new link? The old link stops working.");
  if (!window.confirm(question)) return;
  button.disabled = true;
  try {
    await post(`${path}/${revoking ? "revoke" : "reissue"}`);
    window.location.reload();
  } catch (error) {
    button.disabled = false;
    say(error.message || t("That did not work."));
  }
});

const reschedule = $("reschedule-form");
if (reschedule) {
  reschedule.addEventListener("submit", async (event) => {
    event.preventDefault();
    const day = $("new-date").value;
    const starts = $("new-starts").value;
    const ends = $("new-ends").value;
    $("reschedule-message").textContent = "";
    if (!day || !starts || !ends) {
      $("reschedule-message").textContent = t("Please fill this in.");
      return;
    }
    try {
      const reason = $("reschedule-reason").value.trim();
      await post(`${base}/reschedule`, {
        starts_at: localTime(day, starts),
        ends_at: localTime(ends <= starts ? nextDay(day) : day, ends),
        ...(reason ? { reason } : {}),
      });
      window.location.reload();
    } catch (error) {
      $("reschedule-message").textContent = error.message || t("That did not work.");
    }
  });
}

const cancel = $("cancel-form");
if (cancel) {
  cancel.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!window.confirm(t("Cancel this meeting for every unit?"))) return;
    const reason = $("cancel-reason").value.trim();
    try {
      await post(`${base}/cancel`, reason ? { reason } : {});
      window.location.reload();
    } catch (error) {
      $("cancel-message").textContent = error.message || t("That did not work.");
    }
  });
}
