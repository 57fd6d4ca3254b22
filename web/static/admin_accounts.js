// /admin/accounts (web/templates/admin_accounts.html): create an account, change its
// display name, roles, unit and active flag, deactivate or reactivate it, and reset
// its password, through the accounts API. Errors are shown next to their field (the
// API's `field`); after a change the page reloads to show the list as stored, with
// the result message carried over in sessionStorage and announced.

import { api } from "./api.js";
import { adminForms } from "./admin_forms.js";
import { t } from "./i18n.js";

const data = JSON.parse(document.getElementById("admin-accounts-data").textContent);
const accounts = new Map(data.accounts.map((a) => [String(a.id), a]));
const $ = (id) => document.getElementById(id);

// What an administrator reads for the API's error codes (conference/accounts.py).
// The API names a role list's error "roles" or "roles.0"; unknown_unit from an account
// comes without a field (the unit is looked up as a whole): it is the unit's.
const { clearErrors, errorText, reloadWith, submitting } = adminForms({
  errors: {
    too_short: t("Please check this field."),
    username_taken: t("This username is taken."),
    unknown_account: t("This account no longer exists: please reload the page."),
    self_demotion: t("You cannot remove your own administrator role."),
    self_deactivation: t("You cannot deactivate your own account."),
    no_roles: t("Choose at least one role."),
    no_account: t("Choose an account first."),
    weak_password: t("The password needs at least 8 characters."),
  },
  codeField: { unknown_unit: "unit", username_taken: "username" },
  flashKey: "hoinghi.admin-accounts.flash",
  status: $("accounts-status"),
});

function checkedRoles(form) {
  return [...form.querySelectorAll("input[name=roles]:checked")].map((box) => box.value);
}


// --- create ------------------------------------------------------------------------------------

const createForm = $("create-account");
createForm.addEventListener("submit", (event) => {
  event.preventDefault();
  submitting(createForm, t("Could not create the account."), async () => {
    const f = createForm.elements;
    const body = {
      username: f.username.value.trim(),
      display_name: f.display_name.value,
      password: f.password.value,
      roles: checkedRoles(createForm),
      unit: f.unit.value || null,
    };
    if (!body.username) throw { code: "missing_field", field: "username" };
    if (!body.display_name.trim()) throw { code: "missing_field", field: "display_name" };
    if (body.password.length < 8) throw { code: "weak_password", field: "password" };
    if (!body.roles.length) throw { code: "no_roles", field: "roles" };
    const created = await api("POST", "/api/accounts", body);
    reloadWith(t("Account created: {username}.", { username: created.username }));
  });
});

// --- change ----------------------------------------------------------------------------------

const editForm = $("edit-account");
const passwordForm = $("reset-password");

function fillEdit(id) {
  const account = accounts.get(String(id));
  const f = editForm.elements;
  f.id.value = account ? String(account.id) : "";
  f.display_name.value = account ? account.display_name : "";
  f.unit.value = account && account.unit ? account.unit : "";
  f.active.checked = account ? account.active : false;
  for (const box of editForm.querySelectorAll("input[name=roles]")) box.checked = account ? account.roles.includes(box.value) : false;
  clearErrors(editForm);
  clearErrors(passwordForm);
}

editForm.elements.id.addEventListener("change", () => fillEdit(editForm.elements.id.value));
for (const button of document.querySelectorAll(".edit-account")) {
  button.addEventListener("click", () => {
    fillEdit(button.dataset.id);
    $("edit-section").scrollIntoView({ block: "start" });
    editForm.elements.display_name.focus();
  });
}

function chosen() {
  const account = accounts.get(editForm.elements.id.value);
  if (!account) throw { code: "no_account", field: "id" };
  return account;
}

editForm.addEventListener("submit", (event) => {
  event.preventDefault();
  submitting(editForm, t("Could not save the account."), async () => {
    const account = chosen();
    const f = editForm.elements;
    const body = {
      display_name: f.display_name.value,
      roles: checkedRoles(editForm),
      unit: f.unit.value || null,
      active: f.active.checked,
    };
    if (!body.display_name.trim()) throw { code: "missing_field", field: "display_name" };
    if (!body.roles.length) throw { code: "no_roles", field: "roles" };
    await api("PATCH", `/api/accounts/${account.id}`, body);
    reloadWith(t("Account saved: {username}.", { username: account.username }));
  });
});

// --- deactivate and reactivate from the list -----------------------------------------------------

for (const button of document.querySelectorAll(".toggle-active")) {
  button.addEventListener("click", async () => {
    const account = accounts.get(button.dataset.id);
    if (!account) return;
    const active = button.dataset.active === "true";
    const question = t("Deactivate the account {username}? It will be signed out at once.", { username: account.username });
    if (!active && !window.confirm(question)) return;
    button.disabled = true;
    try {
      await api("PATCH", `/api/accounts/${account.id}`, { active });
      const done = active ? t("Account reactivated: {username}.") : t("Account deactivated: {username}.");
      reloadWith(done.replace("{username}", account.username));
    } catch (error) {
      $("accounts-status").textContent = errorText(error, t("Could not save the account."));
      button.disabled = false;
    }
  });
}

// --- reset a password ------------------------------------------------------------------------------

passwordForm.addEventListener("submit", (event) => {
  event.preventDefault();
  submitting(passwordForm, t("Could not set the password."), async () => {
    const account = chosen();
    const password = passwordForm.elements.password.value;
    if (password.length < 8) throw { code: "weak_password", field: "password" };
    await api("POST", `/api/accounts/${account.id}/password`, { password });
    passwordForm.elements.password.value = "";
    passwordForm.querySelector("[data-form-message]").textContent = "";
    $("accounts-status").textContent = t("New password set for {username}.", { username: account.username });
  });
});
