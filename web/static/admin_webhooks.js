// Webhook subscriptions (/admin/webhooks) and one subscription's delivery log
// (/admin/webhooks/{id}): create, change, delete, send a delivery again -- all
// through the JSON API (/api/webhooks...). The signing secret of a new
// subscription is shown once, in the page, never stored by it.

import { api } from "./api.js";
import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);

function say(text) {
  const node = $("webhooks-message");
  if (node) node.textContent = text;
}

function failure(error) {
  return error && error.message ? error.message : t("That did not work.");
}

/** The events ticked in a form; "*" alone when "all events" is ticked. */
function chosenEvents(form) {
  const ticked = [...form.querySelectorAll('input[name="events"]:checked')].map((box) => box.value);
  return ticked.includes("*") ? ["*"] : ticked;
}

function readForm(form) {
  return {
    url: form.elements.url.value.trim(),
    events: chosenEvents(form),
    active: form.elements.active.checked,
  };
}

function check(form, body, message) {
  message.textContent = "";
  form.elements.url.removeAttribute("aria-invalid");
  if (!body.url) {
    form.elements.url.setAttribute("aria-invalid", "true");
    message.textContent = t("Please enter the receiver's URL.");
    form.elements.url.focus();
    return false;
  }
  if (!body.events.length) {
    message.textContent = t("Choose at least one event.");
    return false;
  }
  return true;
}

// --- the list page -------------------------------------------------------------------

const create = $("create-webhook");
if (create) {
  const message = $("create-message");
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = readForm(create);
    if (!check(create, body, message)) return;
    const button = create.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const created = await api("POST", "/api/webhooks", body);
      $("secret-value").value = created.secret;
      $("secret-panel").hidden = false;
      $("secret-panel").focus();
      create.reset();
      say(t("Subscription created."));
    } catch (error) {
      if (error.field && error.field.startsWith("url")) create.elements.url.setAttribute("aria-invalid", "true");
      message.textContent = failure(error);
    } finally {
      button.disabled = false;
    }
  });

  $("copy-secret").addEventListener("click", async () => {
    const input = $("secret-value");
    try {
      await navigator.clipboard.writeText(input.value);
      $("secret-message").textContent = t("Secret copied.");
    } catch {
      input.focus();
      input.select();
      $("secret-message").textContent = t("Press Ctrl+C to copy the selected secret.");
    }
  });
  $("secret-done").addEventListener("click", () => {
    $("secret-value").value = "";
    window.location.reload();
  });
}

for (const form of document.querySelectorAll("form.edit-webhook")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = form.querySelector(".form-message");
    const body = readForm(form);
    if (!check(form, body, message)) return;
    try {
      await api("PATCH", `/api/webhooks/${form.dataset.webhook}`, body);
      window.location.reload();
    } catch (error) {
      message.textContent = failure(error);
    }
  });
}

// "All events" and single events exclude each other.
document.addEventListener("change", (event) => {
  const box = event.target;
  if (!(box instanceof HTMLInputElement) || box.name !== "events" || !box.checked) return;
  const form = box.form;
  if (!form) return;
  for (const other of form.querySelectorAll('input[name="events"]')) {
    if (other !== box && (box.value === "*" || other.value === "*")) other.checked = false;
  }
});

document.addEventListener("click", async (event) => {
  const remove = event.target.closest("button.delete-webhook");
  if (remove) {
    if (!window.confirm(t("Delete the subscription to {url} and its delivery log?", { url: remove.dataset.url }))) return;
    remove.disabled = true;
    try {
      await api("DELETE", `/api/webhooks/${remove.dataset.webhook}`);
      window.location.reload();
    } catch (error) {
      remove.disabled = false;
      say(failure(error));
    }
    return;
  }
  const again = event.target.closest("button.redeliver");
  if (again) {
    const data = JSON.parse($("webhook-data").textContent);
    again.disabled = true;
    try {
      await api("POST", `/api/webhooks/${data.webhook_id}/deliveries/${again.dataset.delivery}/redeliver`);
      say(t("The delivery will be sent again now."));
      window.setTimeout(() => window.location.reload(), 1500);
    } catch (error) {
      again.disabled = false;
      say(failure(error));
    }
  }
});
