// The join page's entry: the device check, then the room on the same page.
// `?autojoin=1` (unattended room PCs) joins at once with the default devices;
// `?bandwidth=low|audio` picks the bandwidth for such a link.

import { Conference } from "./conference.js";
import { DeviceCheck, openDevices, savedChoice } from "./devicecheck.js";
import { Room } from "./room.js";

const config = JSON.parse(document.getElementById("client-config").textContent);
const params = new URLSearchParams(location.search);
const conference = new Conference(config);
const timing = { joinClickedAt: null, firstRemoteFrameAt: null };
const room = new Room(conference, timing);

function enter({ stream, bandwidth, clickedAt }) {
  timing.joinClickedAt = clickedAt;
  timing.firstRemoteFrameAt = null;
  conference.join(stream, bandwidth);
  room.attachMedia();
}

function autojoin() {
  const clickedAt = performance.now();
  const asked = params.get("bandwidth");
  const bandwidth = ["full", "low", "audio"].includes(asked) ? asked : savedChoice().bandwidth || "full";
  const stream = openDevices(bandwidth, savedChoice()).then((opened) => opened.stream);
  enter({ stream, bandwidth, clickedAt });
}

// A read-only window onto the client for tests and diagnostics.
window.hoinghi = Object.freeze({
  get state() {
    return conference.state;
  },
  get participantId() {
    return conference.participantId;
  },
  get role() {
    return conference.role;
  },
  /** performance.now() of the join click, the first remote frame, and media steps. */
  get timing() {
    return { ...timing, ...(conference.media ? conference.media.marks : {}) };
  },
  /** Milliseconds from the join click (or autojoin) to the first remote video frame. */
  get firstFrameDelay() {
    return timing.firstRemoteFrameAt != null && timing.joinClickedAt != null
      ? timing.firstRemoteFrameAt - timing.joinClickedAt
      : null;
  },
  roster() {
    return [...conference.roster.values()].map((p) => ({ ...p }));
  },
  stats() {
    return conference.media ? conference.media.stats() : Promise.resolve([]);
  },
  publishStats() {
    return conference.media ? conference.media.publishStats() : Promise.resolve([]);
  },
  connections() {
    return conference.media ? conference.media.connectionStates() : {};
  },
  get signalingStatus() {
    return conference.signaling ? conference.signaling.status : "idle";
  },
  dropNetwork() {
    conference.dropNetwork();
  },
});

window.addEventListener("pagehide", () => {
  if (conference.state === "active" || conference.state === "lobby") conference.leave();
});

if (config.autojoin) {
  autojoin();
} else {
  room.renderState();
  new DeviceCheck(document.getElementById("devicecheck"), enter).start();
}
