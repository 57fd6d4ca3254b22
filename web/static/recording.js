// A recording's page: make the composite and follow its progress (the API, polled).

import { apiFetch } from "./api.js";
import { t } from "./i18n.js";

const data = JSON.parse(document.getElementById("recording-data").textContent);
const progress = document.getElementById("composite-progress");
const percent = document.getElementById("composite-percent");
const label = document.getElementById("composite-label");
const form = document.getElementById("compose");
const message = document.getElementById("compose-message");

const STATES = {
  none: () => t("Not made yet."),
  queued: () => t("Waiting to start."),
  running: () => t("Being made."),
  done: () => t("Ready."),
  failed: () => t("Could not be made."),
};

function show(recording) {
  const value = recording.composite_progress || 0;
  progress.value = value;
  percent.textContent = `${Math.round(value * 100)} %`;
  label.textContent = (STATES[recording.composite_status] || STATES.none)();
}

async function poll() {
  const response = await fetch(`/api/recordings/${data.id}`, { credentials: "same-origin" });
  if (!response.ok) return;
  const detail = await response.json();
  show(detail.recording);
  const state = detail.recording.composite_status;
  if (state === "queued" || state === "running") {
    setTimeout(poll, 1000);
  } else if (state === "done" && data.composite_status !== "done") {
    window.location.reload(); // the player appears
  } else if (state === "failed") {
    message.textContent = detail.composite_error || t("Could not be made.");
  }
  data.composite_status = state;
}

if (form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    const response = await apiFetch(`/api/recordings/${data.id}/composite`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ layout: form.layout.value }),
    });
    if (response.status === 202) {
      data.composite_status = "queued";
      show(await response.json());
      setTimeout(poll, 500);
    } else {
      message.textContent = t("The video could not be started.");
    }
  });
}

if (data.composite_status === "queued" || data.composite_status === "running") setTimeout(poll, 1000);
