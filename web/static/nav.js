// The navigation bar of signed-in pages: signing out ends the session on the server.

import { apiFetch } from "./api.js";

const button = document.getElementById("sign-out");
if (button) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    await apiFetch("/api/auth/logout", { method: "POST" }).catch(() => {});
    window.location.assign("/login");
  });
}
