// The meeting form (web/templates/meeting_form.html): agenda rows, the unit chooser
// (search, group picks), and saving through the JSON API. A new meeting goes to
// POST /api/meetings; an edit to PATCH /api/meetings/{id}, then invites the units
// newly ticked and revokes the ones unticked. Errors are shown next to their field
// (the API's `field`). Times are typed in Vietnam time (UTC+7, no daylight saving).

import { api } from "./api.js";
import { localTime, nextDay } from "./localtime.js";
import { t } from "./i18n.js";

const data = JSON.parse(document.getElementById("meeting-form-data").textContent);
const form = document.getElementById("meeting-form");
const $ = (id) => document.getElementById(id);

// What the secretariat reads for the API's error codes (web/errors.py, conference/*).
const ERROR_TEXT = {
  missing_field: t("Please fill this in."),
  invalid_field: t("Please check this field."),
  invalid_time_range: t("The meeting must end after it starts."),
  meeting_too_long: t("A meeting lasts at most 24 hours."),
  ends_in_past: t("The meeting would end in the past."),
  chair_conflict: t("The chair unit already chairs another meeting at that time."),
  unknown_unit: t("Unknown unit."),
  meeting_not_editable: t("This meeting can no longer be changed."),
  timezone_required: t("Please check this field."),
};

// --- agenda rows --------------------------------------------------------------------

let rowNumber = document.querySelectorAll(".agenda-row").length;

function addAgendaRow(focus) {
  const row = $("agenda-row-template").content.firstElementChild.cloneNode(true);
  rowNumber += 1;
  const id = `agenda-new-${rowNumber}`;
  row.querySelector("textarea").id = id;
  row.querySelector("label").htmlFor = id;
  $("agenda-rows").append(row);
  if (focus) row.querySelector("textarea").focus();
}

$("add-agenda").addEventListener("click", () => addAgendaRow(true));
$("agenda-rows").addEventListener("click", (event) => {
  const button = event.target.closest(".remove-row");
  if (!button) return;
  button.closest(".agenda-row").remove();
  if (!document.querySelector(".agenda-row")) addAgendaRow(false);
  $("add-agenda").focus();
});

// --- the unit chooser -------------------------------------------------------------------

/** Text folded for search: lower case, no tone marks, đ as d ("Đồng Hới" -> "dong hoi"). */
function fold(text) {
  return text
    .normalize("NFD")
    .replace(/[\u0300-\u036f]/g, "")
    .replace(/đ/g, "d")
    .replace(/Đ/g, "d")
    .toLowerCase();
}

const unitItems = [...document.querySelectorAll("#unit-list .unit")];
for (const item of unitItems) item.dataset.folded = fold(`${item.dataset.name} ${item.dataset.code}`);

function boxes() {
  return unitItems.map((item) => item.querySelector("input"));
}

function updateCount() {
  const count = boxes().filter((box) => box.checked).length;
  $("unit-count").textContent = t("Units chosen: {count}", { count });
}

$("unit-search").addEventListener("input", () => {
  const needle = fold($("unit-search").value.trim());
  let shown = 0;
  for (const item of unitItems) {
    const match = !needle || item.dataset.folded.includes(needle);
    item.hidden = !match;
    if (match) shown += 1;
  }
  $("no-unit-found").hidden = shown > 0;
});
// Enter in the search box ticks the only unit left, instead of saving the form.
$("unit-search").addEventListener("keydown", (event) => {
  if (event.key !== "Enter") return;
  event.preventDefault();
  const visible = unitItems.filter((item) => !item.hidden);
  if (visible.length === 1) {
    const box = visible[0].querySelector("input");
    box.checked = true;
    updateCount();
  }
});
for (const button of document.querySelectorAll(".group-pick")) {
  button.addEventListener("click", () => {
    for (const item of unitItems) if (item.dataset.kind === button.dataset.kind) item.querySelector("input").checked = true;
    updateCount();
  });
}
$("clear-units").addEventListener("click", () => {
  for (const box of boxes()) box.checked = false;
  updateCount();
});
$("unit-list").addEventListener("change", updateCount);
updateCount();

// --- saving ---------------------------------------------------------------------------------

function clearErrors() {
  $("form-message").textContent = "";
  for (const node of document.querySelectorAll(".field-error")) node.textContent = "";
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

const FIELD_INPUT = { title: "title", starts_at: "starts", ends_at: "ends", chair_unit: "chair_unit", invited_units: "unit-search" };

function showError(error) {
  const field = (error.field || "").split(".")[0];
  const text = ERROR_TEXT[error.code] || error.message || t("Could not save the meeting.");
  const slot = field ? document.querySelector(`.field-error[data-field="${field}"]`) : null;
  if (slot) {
    slot.textContent = text;
    const input = $(FIELD_INPUT[field] || "");
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  }
  $("form-message").textContent = slot ? t("Please correct the marked fields.") : text;
}

function formValues() {
  const endDay = form.ends.value && form.ends.value <= form.starts.value ? nextDay(form.date.value) : form.date.value;
  return {
    title: form.title.value,
    agenda: [...form.querySelectorAll("textarea[name=agenda]")].map((a) => a.value).filter((v) => v.trim() !== ""),
    starts_at: localTime(form.date.value, form.starts.value),
    ends_at: localTime(endDay, form.ends.value),
    chair_unit: form.chair_unit.value,
    kind: form.kind.value,
    recording: form.recording.checked,
  };
}

function checkLocally(values) {
  const missing = [];
  if (!values.title.trim()) missing.push({ field: "title", code: "missing_field" });
  if (!form.date.value || !form.starts.value) missing.push({ field: "starts_at", code: "missing_field" });
  else if (!form.ends.value) missing.push({ field: "ends_at", code: "missing_field" });
  if (!values.chair_unit) missing.push({ field: "chair_unit", code: "missing_field" });
  return missing;
}

const send = api;

async function save() {
  const values = formValues();
  const chosen = boxes()
    .filter((box) => box.checked)
    .map((box) => box.value);
  const local = checkLocally(values);
  if (local.length) {
    local.reverse().forEach(showError);
    return;
  }
  if (data.mode === "new") {
    const created = await send("POST", "/api/meetings", { ...values, invited_units: chosen });
    window.location.assign(`/meetings/${created.meeting.id}/invitations?created=1`);
    return;
  }
  const id = data.meeting_id;
  const saved = await send("PATCH", `/api/meetings/${id}`, values);
  const before = new Set(data.invited);
  const added = chosen.filter((code) => !before.has(code) && code !== saved.meeting.chair_unit);
  if (added.length) await send("POST", `/api/meetings/${id}/invitations`, { units: added });
  for (const code of data.invited) {
    if (!chosen.includes(code)) await send("POST", `/api/meetings/${id}/invitations/${encodeURIComponent(code)}/revoke`, {});
  }
  window.location.assign(`/meetings/${id}/invitations`);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  const button = $("save");
  button.disabled = true;
  try {
    await save();
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
});
if (!data.editable) for (const node of form.elements) node.disabled = true;
