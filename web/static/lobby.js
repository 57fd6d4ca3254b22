// The lobby's countdown on the join page: while this site waits to be let in before
// the meeting's start, the waiting screen says how long until the start. It reads
// the client's state (window.hoinghi.state) each second, so it needs no hook in the
// room code; the element is added under the waiting screen's text.
import { startsInText } from "./countdown.js";

const config = JSON.parse(document.getElementById("client-config").textContent);
const startsAt = Date.parse(config.meeting.starts_at || "");

function node() {
  let el = document.getElementById("lobby-countdown");
  if (!el) {
    el = document.createElement("p");
    el.id = "lobby-countdown";
    el.className = "countdown";
    el.hidden = true;
    // Read out when it changes (once a minute), not every second.
    el.setAttribute("aria-live", "polite");
    document.getElementById("status-detail").after(el);
  }
  return el;
}

function update() {
  const el = node();
  const waiting = window.hoinghi && window.hoinghi.state === "lobby";
  const text = waiting && !Number.isNaN(startsAt) ? startsInText(startsAt, Date.now()) : "";
  if (el.textContent !== text) el.textContent = text;
  el.hidden = !text;
}

update();
setInterval(update, 1000);
