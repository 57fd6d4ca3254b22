// /today: keeps each "Starts in 12 minutes" countdown live. The server renders the
// first text; every 30 s this recomputes it from data-starts (ISO start time).
import { startsInText } from "./countdown.js";

function update() {
  const now = Date.now();
  for (const node of document.querySelectorAll("[data-starts]")) {
    const startsAt = Date.parse(node.dataset.starts);
    if (Number.isNaN(startsAt)) continue;
    const value = startsInText(startsAt, now);
    if (value) node.textContent = value;
    else node.hidden = true;
  }
}

update();
setInterval(update, 30_000);
