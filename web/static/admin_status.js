// The administrators' status page: polls GET /api/status every few seconds and
// redraws the figures (text only: titles and unit names are never parsed as HTML).

import { api } from "./api.js";
import { locale, t } from "./i18n.js";

const config = JSON.parse(document.getElementById("status-data").textContent);
const $ = (id) => document.getElementById(id);
const ZONE = "Asia/Ho_Chi_Minh";

const ROOM_STATE = { open: () => t("lobby open"), live: () => t("live") };
const SITE_STATE = {
  active: () => t("connected"),
  lobby: () => t("in the lobby"),
  disconnected: () => t("reconnecting"),
};
const SITE_ROLE = {
  chair: () => t("chair"),
  participant: () => t("participating site"),
  observer: () => t("observer"),
};

/** "14:30 ngày 27/11/2026" as the server writes it, in Vietnam time. */
export function when(iso) {
  if (!iso) return "";
  const at = new Date(iso);
  const time = new Intl.DateTimeFormat(locale, { timeZone: ZONE, hour: "numeric", minute: "2-digit" }).format(at);
  const date = new Intl.DateTimeFormat(locale, { timeZone: ZONE, year: "numeric", month: "numeric", day: "numeric" }).format(at);
  return t("{time} on {date}", { time, date });
}

/** Seconds as a clock: "4:05", "1:02:03". */
function clock(seconds) {
  const whole = Math.round(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = String(whole % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

function cell(text, label, className) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (label) td.dataset.label = label;
  if (className) td.className = className;
  return td;
}

function workerText(status, index) {
  if (status.media.engine === "none") return t("no media");
  if (status.media.in_process) return t("server process");
  if (index === null || index === undefined) return "—";
  return t("worker {n}", { n: index + 1 });
}

function roomRow(status, room, open) {
  const tr = document.createElement("tr");
  tr.dataset.meeting = room.meeting_id;
  const title = document.createElement("td");
  title.className = "room-title";
  const details = document.createElement("details");
  details.dataset.meeting = room.meeting_id;
  details.open = open.has(String(room.meeting_id));
  const summary = document.createElement("summary");
  summary.textContent = room.title;
  const list = document.createElement("ul");
  list.className = "sites";
  for (const p of room.participants) {
    const li = document.createElement("li");
    li.className = `site-${p.state}`;
    li.append(`${p.unit_name} `);
    const note = document.createElement("span");
    note.className = "muted";
    note.textContent = `(${(SITE_ROLE[p.role] || (() => p.role))()}, ${(SITE_STATE[p.state] || (() => p.state))()})`;
    li.append(note);
    list.append(li);
  }
  if (!room.participants.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = t("Nobody yet.");
    list.append(li);
  }
  details.append(summary, list);
  title.append(details);
  const state = document.createElement("td");
  state.dataset.label = t("State");
  const badge = document.createElement("span");
  badge.className = `status status-${room.state}`;
  badge.textContent = (ROOM_STATE[room.state] || (() => room.state))();
  state.append(badge);
  tr.append(
    title,
    state,
    cell(when(room.live_since || room.opened_at), t("Since")),
    cell(room.connected, t("Connected"), "number"),
    cell(room.lobby, t("In the lobby"), "number"),
    cell(room.recording ? t("Yes") : t("No"), t("Recording")),
    cell(workerText(status, room.media_worker), t("Media worker")),
  );
  return tr;
}

function showRooms(status) {
  const body = $("rooms-body");
  const open = new Set([...body.querySelectorAll("details[open]")].map((d) => d.dataset.meeting));
  const rows = status.rooms.map((room) => roomRow(status, room, open));
  if (!rows.length) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = cell(t("No room is open."));
    td.colSpan = 7;
    tr.append(td);
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  $("rooms-count").textContent = String(status.rooms.length);
}

function showMedia(status) {
  const media = status.media;
  $("media-summary").textContent =
    media.engine === "none"
      ? t("Media is off (no media engine): rooms run without sound and picture, and nothing is recorded.")
      : media.in_process
        ? t("The embedded SFU runs in the server process.")
        : t("The embedded SFU runs in worker processes.");
  $("media-load").hidden = !media.in_process;
  $("load-rooms").textContent = String(media.load.rooms ?? 0);
  $("load-participants").textContent = String(media.load.participants ?? 0);
  $("load-streams").textContent = String(media.load.streams_out ?? 0);
  $("workers-table").hidden = !media.workers.length;
  $("workers-body").replaceChildren(
    ...media.workers.map((w) => {
      const tr = document.createElement("tr");
      const state = document.createElement("td");
      state.dataset.label = t("State");
      const badge = document.createElement("span");
      badge.className = `state ${w.up ? "ok" : "bad"}`;
      badge.textContent = w.up ? t("running") : t("down");
      state.append(badge);
      tr.append(
        cell(t("worker {n}", { n: w.index + 1 })),
        cell(w.pid ?? "", t("Process")),
        state,
        cell(w.rooms, t("Rooms"), "number"),
        cell(w.load.participants ?? 0, t("Participants"), "number"),
        cell(w.load.streams_out ?? 0, t("Streams out"), "number"),
        cell(w.restarts, t("Restarts"), "number"),
      );
      return tr;
    }),
  );
}

function showRecordings(status) {
  const items = status.recordings.map((r) => {
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/recordings/${r.id}`;
    link.textContent = r.meeting_title;
    li.append(link, ` · ${t("recording {n}", { n: r.number })} · ${t("since {time}", { time: when(r.started_at) })}`);
    return li;
  });
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = t("Nothing is being recorded.");
    items.push(li);
  }
  $("recordings-list").replaceChildren(...items);
  $("recordings-count").textContent = String(status.recordings.length);
}

function showServer(status) {
  $("s-version").textContent = status.version;
  $("s-uptime").textContent = clock(status.uptime_seconds);
  $("s-dialect").textContent = status.database.dialect;
  const db = $("s-database");
  db.textContent = status.database.reachable ? t("answers") : t("does not answer");
  db.className = `state ${status.database.reachable ? "ok" : "bad"}`;
  $("s-latency").textContent = status.database.latency_ms === null ? "" : `(${status.database.latency_ms} ms)`;
  $("s-queued").textContent = status.composites ? String(status.composites.queued) : "—";
  $("s-running").textContent = status.composites ? String(status.composites.running) : "—";
  $("s-pending").textContent = status.webhooks ? String(status.webhooks.pending) : "—";
  const givenUp = $("s-given-up");
  givenUp.textContent = status.webhooks ? String(status.webhooks.given_up) : "—";
  givenUp.className = status.webhooks && status.webhooks.given_up ? "bad" : "";
}

// Screen readers hear a change of the headline figures, not every refresh.
let lastSummary = "";
function announce(status) {
  const connected = status.rooms.reduce((sum, room) => sum + room.connected, 0);
  const summary = t("{rooms} open rooms, {sites} sites connected, {recordings} recordings in progress", {
    rooms: status.rooms.length,
    sites: connected,
    recordings: status.recordings.length,
  });
  if (summary !== lastSummary && lastSummary) $("status-live").textContent = summary;
  lastSummary = summary;
}

async function refresh() {
  try {
    const status = await api("GET", config.url);
    showServer(status);
    showRooms(status);
    showMedia(status);
    showRecordings(status);
    const seconds = new Intl.DateTimeFormat(locale, { timeZone: ZONE, timeStyle: "medium" });
    $("status-updated").textContent = t("Updated at {time}", { time: seconds.format(new Date(status.now)) });
    announce(status);
    $("status-error").textContent = "";
  } catch (error) {
    $("status-error").textContent = t("The status could not be refreshed: {reason}", {
      reason: error.message || error.code || "",
    });
  }
}

setInterval(refresh, Math.max(2, config.poll_seconds || 5) * 1000);
