// The login form (moved out of the page: the Content-Security-Policy allows no inline script).
// Signed in, the browser goes to `next` (the server passes only a path of this site)
// or to the start page of the account's role.

import { t } from "./i18n.js";

const form = document.getElementById("login");
const dataNode = document.getElementById("login-data");
const data = dataNode ? JSON.parse(dataNode.textContent) : {};

/** `next` if it is a local path ("/x", never "//host" or "/\\host"), else null. */
function localPath(value) {
  if (typeof value !== "string" || !value.startsWith("/")) return null;
  if (value.startsWith("//") || value.startsWith("/\\")) return null;
  return value;
}

function home(roles) {
  const homes = data.homes || {};
  for (const role of ["secretariat", "admin", "clerk", "chair", "operator"]) {
    if (roles.includes(role) && homes[role]) return homes[role];
  }
  return null; // no start page for this role yet: stay here, greeted
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = JSON.stringify({ username: form.username.value, password: form.password.value });
  const response = await fetch("/api/auth/login", {
    method: "POST",
    body,
    headers: { "Content-Type": "application/json" },
  });
  const message = document.getElementById("message");
  if (response.ok) {
    const account = (await response.json()).account;
    message.className = "muted";
    message.textContent = t("Hello, {name}.", { name: account.display_name });
    const target = localPath(data.next) || home(account.roles || []);
    if (target) window.location.assign(target);
  } else if (response.status === 429) {
    message.textContent = t("Too many wrong passwords. Please wait a minute and try again.");
  } else {
    message.textContent = t("Wrong username or password.");
  }
});
