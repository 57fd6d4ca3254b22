// /admin/units (web/templates/admin_units.html): add, change and delete a unit and
// import a CSV file, through the units API. Errors are shown next to their field
// (the API's `field`); a refused CSV file lists every bad row with its line.
// After a change the page reloads to show the new tree, with the result message
// carried over in sessionStorage and announced in the status region.

import { api, apiFetch } from "./api.js";
import { adminForms } from "./admin_forms.js";
import { t } from "./i18n.js";

const data = JSON.parse(document.getElementById("admin-units-data").textContent);
const units = new Map(data.units.map((u) => [u.code, u]));
const $ = (id) => document.getElementById(id);

// What an administrator reads for the API's error codes (conference/units.py, web/errors.py).
const { clearErrors, errorText, reloadWith, submitting } = adminForms({
  errors: {
    unit_exists: t("A unit with this code exists already."),
    unit_cycle: t("A unit cannot be placed below itself or one of its own units."),
    unit_in_use: t("This unit is still in use (units below it, accounts, meetings or invitations): it cannot be deleted."),
    formula_like_name: t("A name cannot start with = + - or @."),
    unknown_kind: t("Unknown kind: use central, province, department, district or commune."),
    duplicate_code: t("This code appears twice in the file."),
    too_many_columns: t("This row has too many columns."),
    invalid_header: t("The first line must be: code,name,kind,parent"),
    no_rows: t("The file has no rows."),
    invalid_csv: t("The file could not be read as CSV."),
    rows_refused: t("Some rows need correcting: see the list below."),
    invalid_encoding: t("The file is not UTF-8: in Excel, save it as \"CSV UTF-8\"."),
    body_too_large: t("The file is too large."),
    unsupported_media_type: t("Please choose a CSV file."),
    no_unit: t("Choose a unit first."),
    no_file: t("Choose a CSV file first."),
  },
  flashKey: "hoinghi.admin-units.flash",
  status: $("units-status"),
});

// --- add -------------------------------------------------------------------------------

const addForm = $("add-unit");
addForm.addEventListener("submit", (event) => {
  event.preventDefault();
  submitting(addForm, t("Could not add the unit."), async () => {
    const body = {
      code: addForm.elements.code.value.trim(),
      name: addForm.elements.name.value,
      kind: addForm.elements.kind.value,
      parent: addForm.elements.parent.value || null,
    };
    if (!body.code) throw { code: "missing_field", field: "code" };
    if (!body.name.trim()) throw { code: "missing_field", field: "name" };
    const created = await api("POST", "/api/units", body);
    reloadWith(t("Unit added: {name} ({code}).", { name: created.name, code: created.code }));
  });
});

// --- change and delete ------------------------------------------------------------------

const editForm = $("edit-unit");

function fillEdit(code) {
  const unit = units.get(code);
  editForm.elements.code.value = unit ? code : "";
  editForm.elements.name.value = unit ? unit.name : "";
  editForm.elements.kind.value = unit ? unit.kind : editForm.elements.kind.options[0].value;
  editForm.elements.parent.value = unit && unit.parent ? unit.parent : "";
  clearErrors(editForm);
}

editForm.elements.code.addEventListener("change", () => fillEdit(editForm.elements.code.value));
for (const button of document.querySelectorAll(".edit-unit")) {
  button.addEventListener("click", () => {
    fillEdit(button.dataset.code);
    editForm.scrollIntoView({ block: "start" });
    editForm.elements.name.focus();
  });
}

function chosen() {
  const code = editForm.elements.code.value;
  if (!code) throw { code: "no_unit", field: "code" };
  return code;
}

editForm.addEventListener("submit", (event) => {
  event.preventDefault();
  submitting(editForm, t("Could not save the unit."), async () => {
    const code = chosen();
    const body = {
      name: editForm.elements.name.value,
      kind: editForm.elements.kind.value,
      parent: editForm.elements.parent.value || null,
    };
    if (!body.name.trim()) throw { code: "missing_field", field: "name" };
    const saved = await api("PATCH", `/api/units/${encodeURIComponent(code)}`, body);
    reloadWith(t("Unit saved: {name} ({code}).", { name: saved.name, code: saved.code }));
  });
});

$("delete-unit").addEventListener("click", () => {
  submitting(editForm, t("Could not delete the unit."), async () => {
    const code = chosen();
    const name = units.get(code)?.name || code;
    if (!window.confirm(t("Delete the unit {name} ({code})? This cannot be undone.", { name, code }))) return;
    await api("DELETE", `/api/units/${encodeURIComponent(code)}`);
    reloadWith(t("Unit deleted: {name} ({code}).", { name, code }));
  });
});

// --- CSV import ------------------------------------------------------------------------------

const importForm = $("import-units");
const FIELD_TEXT = { code: t("code"), name: t("name"), kind: t("kind"), parent: t("parent") };

function showRowErrors(details) {
  const table = $("import-errors");
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const row of details) {
    const tr = document.createElement("tr");
    for (const text of [String(row.line), FIELD_TEXT[row.field] || row.field || ""]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    // The problem in the page's language, then the server's own words (names the value).
    const problem = document.createElement("td");
    const original = document.createElement("span");
    original.className = "muted";
    original.textContent = row.message;
    problem.append(errorText(row, ""), document.createElement("br"), original);
    tr.append(problem);
    body.append(tr);
  }
  table.hidden = details.length === 0;
}

importForm.addEventListener("submit", (event) => {
  event.preventDefault();
  $("import-summary").textContent = "";
  showRowErrors([]);
  submitting(importForm, t("Could not import the file."), async () => {
    const file = importForm.elements.file.files[0];
    if (!file) throw { code: "no_file", field: "file" };
    const response = await apiFetch("/api/units/import", {
      method: "POST",
      headers: { "Content-Type": "text/csv", Accept: "application/json" },
      body: file,
    });
    const payload = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = payload.error || { code: "http_error", message: `HTTP ${response.status}` };
      const details = Array.isArray(error.details) ? error.details : [];
      showRowErrors(details);
      $("import-summary").textContent = details.length
        ? t("The file was refused; nothing was changed. Rows to correct: {count}.", { count: details.length })
        : t("The file was refused; nothing was changed.");
      throw { ...error, code: details.length ? "rows_refused" : error.code, field: "file" };
    }
    reloadWith(
      t("Import done: {created} created, {updated} updated, {unchanged} unchanged.", {
        created: payload.created.length,
        updated: payload.updated.length,
        unchanged: payload.unchanged.length,
      }),
    );
  });
});
