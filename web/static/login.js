// The login form (moved out of the page: the Content-Security-Policy allows no inline script).

import { t } from "./i18n.js";

const form = document.getElementById("login");
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
    const data = await response.json();
    message.className = "muted";
    message.textContent = t("Hello, {name}.", { name: data.account.display_name });
  } else {
    message.textContent = t("Wrong username or password.");
  }
});
