// /today: keeps each "Starts in 12 minutes" countdown live. The server renders the
// first text; every 30 s this recomputes it from data-starts (ISO start time),
// with the same msgids and rounding (whole minutes, up) as web/pages_today.py.
import { t } from "./i18n.js";

function text(startsAt, now) {
  const seconds = (startsAt - now) / 1000;
  if (!(seconds > 0)) return "";
  const minutes = Math.ceil(seconds / 60);
  if (minutes === 1) return t("Starts in 1 minute");
  if (minutes < 60) return t("Starts in {n} minutes", { n: minutes });
  return t("Starts in {h} h {m} min", { h: Math.floor(minutes / 60), m: minutes % 60 });
}

function update() {
  const now = Date.now();
  for (const node of document.querySelectorAll("[data-starts]")) {
    const startsAt = Date.parse(node.dataset.starts);
    if (Number.isNaN(startsAt)) continue;
    const value = text(startsAt, now);
    if (value) node.textContent = value;
    else node.hidden = true;
  }
}

update();
setInterval(update, 30_000);
