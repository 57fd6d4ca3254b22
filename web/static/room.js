// The room's DOM: tiles, roster, chat, lobby, roll call, toolbar, status screens.
// It renders from a Conference (conference.js) and calls its actions; user
// text (unit names, chat) only ever goes into textContent.

import { errorText, FINAL_STATES } from "./conference.js";
import { locale, t } from "./i18n.js";
import { classify, QUALITY_TEXT } from "./quality.js";

const STATS_INTERVAL_MS = 2000;
const NOTICE_MS = 6000;

const ROLE_TEXT = { chair: t("Chair"), participant: t("Participant"), observer: t("Observer") };

const STATUS_TEXT = {
  connecting: [t("Connecting…"), t("Entering the meeting room.")],
  lobby: [t("Waiting for the chair to let you in"), t("Please wait; the chair will let this site into the meeting.")],
  ended: [t("The meeting has ended"), t("Thank you for attending.")],
  removed: [t("This site has been removed from the meeting"), t("The chair asked this site to leave the meeting.")],
  denied: [t("Not let into the meeting"), t("The chair did not let this site into the meeting.")],
  left: [t("You have left the meeting"), t("Open the link again to join again.")],
  refused: [t("Cannot join"), ""],
  replaced: [
    t("Joined in another window"),
    t("This site has just joined the meeting from another window or computer."),
  ],
};

function $(id) {
  return document.getElementById(id);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

function initials(name) {
  const words = String(name || "?").trim().split(/\s+/);
  return words.slice(-2).map((w) => w[0] || "").join("").toUpperCase();
}

/** This site's own name in the tiles and the roster. */
function selfName(p) {
  return t("{name} (this site)", { name: p.unit_name });
}

/** A wait as m:ss (or h:mm:ss). */
function waitText(ms) {
  const total = Math.floor(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

const ORDINAL_SUFFIX = { one: "st", two: "nd", few: "rd", other: "th" };

/** "2nd" in English; a plain number in Vietnamese ("thứ 2" is in the sentence). */
function ordinal(n) {
  if (!locale.startsWith("en")) return String(n);
  return `${n}${ORDINAL_SUFFIX[new Intl.PluralRules("en", { type: "ordinal" }).select(n)] || "th"}`;
}

// The server's limits on an answer (signaling/messages.py RollCallAnswer).
const MAX_DELEGATES = 50;
const MAX_NAME = 100;
const MAX_HEADCOUNT = 1000;

/** The delegate names typed one per line: trimmed, empty lines dropped, otherwise unchanged. */
export function delegateNames(text) {
  return String(text)
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean);
}

const ANSWER_TEXT = {
  present: t("Present"),
  absent: t("Absent"),
  pending: t("Not answered yet"),
};

function timeText(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" });
}

export class Room {
  /**
   * @param conference the Conference
   * @param timing {joinClickedAt, firstRemoteFrameAt} filled in for tests
   */
  constructor(conference, timing) {
    this.c = conference;
    this.timing = timing;
    this.tiles = new Map(); // participant id -> {root, video, trackId}
    this.audio = new Map(); // mid -> <audio>
    this.screenTile = null;
    this.prevStats = new Map();
    this.quality = new Map();
    this.statsTimer = null;
    this.noticeTimer = null;
    this.queueItems = new Map(); // participant id -> <li> of the speaker queue
    this.rollCallDismissed = 0; // the roll call (number) this site put off answering
    this.rollCallAnswered = 0; // the roll call (number) this site has just answered
    this.waitTimer = setInterval(() => this.renderWaits(), 1000);
    this._bindControls();
    conference.addEventListener("change", (e) => this.render(e.detail.what));
  }

  attachMedia() {
    this.c.media.addEventListener("tracks", () => this.renderMedia());
    clearInterval(this.statsTimer);
    this.statsTimer = setInterval(() => this.updateQuality(), STATS_INTERVAL_MS);
  }

  // --- views ------------------------------------------------------------------------

  render(what) {
    const c = this.c;
    if (what === "state" || what === "all") this.renderState();
    if (what === "notice") this.renderNotice();
    if (what === "lobby-position") this.renderState();
    if (what === "connection") this.renderBadges();
    if (["all", "roster", "hands", "floor", "presenter", "speaker", "self", "room"].includes(what)) {
      this.renderTop();
      this.renderRoster();
      this.renderTiles();
      this.renderToolbar();
    }
    if (what === "all" || what === "lobby") this.renderLobby();
    if (what === "all" || what === "chat") this.renderChat();
    if (["all", "rollcall", "roster"].includes(what)) this.renderRollCall();
    if (what === "speaker") this.renderSpeaker();
    if (c.state === "active") this.renderBadges();
  }

  renderState() {
    const c = this.c;
    const inRoom = c.state === "active" || c.state === "reconnecting";
    $("entry").hidden = c.state !== "devicecheck";
    $("room").hidden = !inRoom;
    $("status").hidden = inRoom || c.state === "devicecheck";
    document.body.dataset.state = c.state;
    document.body.classList.toggle("in-room", inRoom);
    const [title, text] = STATUS_TEXT[c.state] || ["", ""];
    $("status-title").textContent = title;
    $("status-text").textContent = c.state === "refused" ? c.finalReason : text;
    let detail = "";
    if (c.state === "lobby" && c.lobbyPosition) {
      detail = t("Position in the queue: {position}", { position: c.lobbyPosition });
    }
    // Server reasons (removed, denied, ended) are English text, not codes: not shown.
    $("status-detail").textContent = detail;
    $("status").dataset.state = c.state;
    $("status-leave").hidden = c.state !== "lobby";
    if (!inRoom) {
      $("rollcall-dialog").open && $("rollcall-dialog").close();
      if (FINAL_STATES.has(c.state)) this.teardown();
    }
    this.renderBadges();
  }

  renderTop() {
    const c = this.c;
    $("room-title").textContent = c.meeting?.title || c.config.meeting.title;
    const me = c.self;
    $("room-self").textContent = `${c.config.unit.name} — ${ROLE_TEXT[c.role] || c.role}`;
    document.body.classList.toggle("is-chair", c.isChair);
    document.querySelectorAll(".chair-only").forEach((n) => {
      n.hidden = !c.isChair;
    });
    void me;
  }

  renderBadges() {
    const c = this.c;
    $("badge-recording").hidden = !c.recording;
    $("badge-locked").hidden = !c.locked;
    $("badge-connection").hidden = c.state !== "reconnecting";
  }

  renderNotice() {
    const notice = $("notice");
    notice.textContent = this.c.notice?.text || "";
    notice.hidden = !notice.textContent;
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => {
      notice.hidden = true;
    }, NOTICE_MS);
  }

  // --- tiles -------------------------------------------------------------------------

  _tile(id) {
    let tile = this.tiles.get(id);
    if (tile) return tile;
    const root = $("tile-template").content.firstElementChild.cloneNode(true);
    tile = { root, video: root.querySelector("video"), trackId: null };
    root.dataset.participant = id;
    this.tiles.set(id, tile);
    $("tiles").append(root);
    return tile;
  }

  renderTiles() {
    const c = this.c;
    const wanted = new Set();
    for (const p of c.roster.values()) {
      wanted.add(p.id);
      const tile = this._tile(p.id);
      const self = p.id === c.participantId;
      tile.root.classList.toggle("self", self);
      tile.root.classList.toggle("disconnected", !p.connected);
      tile.root.classList.toggle("floor", c.floor === p.id);
      tile.root.querySelector(".tile-name").textContent = self ? selfName(p) : p.unit_name;
      tile.root.querySelector(".initials").textContent = initials(p.unit_name);
      tile.root.querySelector(".icon-mic").hidden = !p.audio_muted;
      tile.root.querySelector(".icon-hand").hidden = !p.hand_raised;
      tile.root.dataset.unit = p.unit;
      if (self) {
        const stream = c.media?.streams.camera;
        const hasVideo = Boolean(stream && stream.getVideoTracks().length && !c.media.videoOff);
        if (tile.video.srcObject !== stream) tile.video.srcObject = stream || null;
        tile.root.classList.toggle("has-video", hasVideo);
        // Self first.
        if ($("tiles").firstElementChild !== tile.root) $("tiles").prepend(tile.root);
      }
    }
    for (const [id, tile] of this.tiles) {
      if (!wanted.has(id)) {
        tile.video.srcObject = null;
        tile.root.remove();
        this.tiles.delete(id);
      }
    }
    $("tiles").dataset.count = String(this.tiles.size);
    this.renderSpeaker();
    this.renderMedia();
  }

  renderSpeaker() {
    for (const [id, tile] of this.tiles) tile.root.classList.toggle("speaking", id === this.c.activeSpeaker);
  }

  /** Remote tracks to tiles and <audio>; a tile whose video mid is gone shows its placeholder. */
  renderMedia() {
    const c = this.c;
    if (!c.media) return;
    const tracks = c.media.remoteTracks();
    const cameras = new Map();
    let screen = null;
    const audioMids = new Set();
    for (const remote of tracks) {
      if (remote.kind === "video" && remote.source === "screen") {
        // Only the current presenter's screen: a revoked one is hidden at once,
        // before the server's next offer drops it from `tracks`.
        if (remote.participant === c.presenter) screen = remote;
      } else if (remote.kind === "video") cameras.set(remote.participant, remote);
      else if (remote.kind === "audio") {
        audioMids.add(remote.mid);
        let audio = this.audio.get(remote.mid);
        if (!audio) {
          audio = document.createElement("audio");
          audio.autoplay = true;
          this.audio.set(remote.mid, audio);
          $("audio-sink").append(audio);
        }
        if (audio.srcObject?.getTracks()[0] !== remote.track) audio.srcObject = new MediaStream([remote.track]);
        audio.dataset.participant = remote.participant;
      }
    }
    for (const [mid, audio] of this.audio) {
      if (!audioMids.has(mid)) {
        audio.srcObject = null;
        audio.remove();
        this.audio.delete(mid);
      }
    }
    for (const [id, tile] of this.tiles) {
      if (id === c.participantId) continue;
      const camera = cameras.get(id);
      if (camera && tile.trackId !== camera.track.id) {
        tile.trackId = camera.track.id;
        tile.video.srcObject = new MediaStream([camera.track]);
        tile.root.dataset.mid = camera.mid;
        this._watchFirstFrame(tile.video);
      } else if (!camera && tile.trackId) {
        tile.trackId = null;
        tile.video.srcObject = null;
        delete tile.root.dataset.mid;
      }
      tile.root.classList.toggle("has-video", Boolean(camera));
    }
    this._renderScreen(screen);
  }

  _renderScreen(shared) {
    const area = $("screen-area");
    if (!shared) {
      if (this.screenTile) {
        this.screenTile.video.srcObject = null;
        this.screenTile.root.remove();
        this.screenTile = null;
      }
      area.hidden = true;
      document.body.classList.remove("screen-on");
      return;
    }
    if (!this.screenTile) {
      const root = $("tile-template").content.firstElementChild.cloneNode(true);
      root.classList.add("screen", "has-video");
      this.screenTile = { root, video: root.querySelector("video"), trackId: null };
      area.append(root);
    }
    const tile = this.screenTile;
    if (tile.trackId !== shared.track.id) {
      tile.trackId = shared.track.id;
      tile.video.srcObject = new MediaStream([shared.track]);
    }
    const who = this.c.roster.get(shared.participant);
    tile.root.querySelector(".tile-name").textContent = t("Screen: {name}", { name: who ? who.unit_name : "" });
    area.hidden = false;
    document.body.classList.add("screen-on");
  }

  /** Click (or autojoin) to the first remote video frame shown: the join's felt latency. */
  _watchFirstFrame(video) {
    const timing = this.timing;
    if (timing.firstRemoteFrameAt != null) return;
    const mark = () => {
      if (timing.firstRemoteFrameAt == null) timing.firstRemoteFrameAt = performance.now();
    };
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(mark);
    else video.addEventListener("loadeddata", mark, { once: true });
  }

  async updateQuality() {
    const c = this.c;
    if (!c.media || c.state !== "active") return;
    let rows;
    try {
      rows = await c.media.stats();
    } catch {
      return;
    }
    const byParticipant = new Map();
    for (const row of rows) {
      if (!byParticipant.has(row.participant)) byParticipant.set(row.participant, []);
      byParticipant.get(row.participant).push(row);
    }
    for (const [id, tile] of this.tiles) {
      if (id === c.participantId) continue;
      const current = byParticipant.get(id) || [];
      const q = classify(this.prevStats.get(id) || null, current);
      this.prevStats.set(id, current);
      const badge = tile.root.querySelector(".quality");
      badge.dataset.quality = q;
      badge.textContent = QUALITY_TEXT[q] || "";
    }
  }

  // --- roster, lobby, hands ------------------------------------------------------------

  renderRoster() {
    const c = this.c;
    const list = $("roster");
    list.replaceChildren();
    const people = [...c.roster.values()].sort((a, b) => {
      if (a.role === "chair" && b.role !== "chair") return -1;
      if (b.role === "chair" && a.role !== "chair") return 1;
      // Unit names are Vietnamese whatever the page's language: sort them as Vietnamese.
      return a.unit_name.localeCompare(b.unit_name, "vi");
    });
    for (const p of people) list.append(this._person(p));
    $("count-people").textContent = `(${people.length})`;
    const floor = c.floor ? c.roster.get(c.floor) : null;
    $("floor-line").hidden = !floor;
    $("floor-line").textContent = floor ? t("Speaking: {name}", { name: floor.unit_name }) : "";
    this.renderQueue();
  }

  /** The speaker queue: raised hands oldest first, how long each has waited, and for
   * the chair the floor buttons. Items are kept (not rebuilt) so a focused button
   * stays focused while the list changes around it. */
  renderQueue() {
    const c = this.c;
    const list = $("hands");
    const wanted = new Set(c.hands.map((h) => h.participant));
    let focusLost = false;
    for (const [pid, item] of this.queueItems) {
      if (wanted.has(pid)) continue;
      focusLost ||= item.contains(document.activeElement);
      item.remove();
      this.queueItems.delete(pid);
    }
    c.hands.forEach((h, index) => {
      let item = this.queueItems.get(h.participant);
      if (!item) {
        item = el("li", "queue-item");
        item.dataset.participant = h.participant;
        const line = el("div", "queue-line");
        line.append(el("span", "queue-name"), el("span", "queue-wait"));
        item.append(line);
        if (c.isChair) {
          const give = this._action(t("Give the floor"), () => c.giveFloor(h.participant), "floor");
          item.append(give);
        }
        this.queueItems.set(h.participant, item);
      }
      const who = c.roster.get(h.participant);
      const name = who ? who.unit_name : h.participant;
      const self = h.participant === c.participantId;
      item.querySelector(".queue-name").textContent = self ? t("{name} (this site)", { name }) : name;
      item.classList.toggle("own", self);
      item.dataset.at = h.at;
      const give = item.querySelector("[data-action=floor]");
      if (give) give.setAttribute("aria-label", t("Give the floor to {name}", { name }));
      if (list.children[index] !== item) list.insertBefore(item, list.children[index] || null);
    });
    const count = c.hands.length;
    const first = count ? c.roster.get(c.hands[0].participant) : null;
    $("hands-summary").textContent = count
      ? t("Waiting to speak: {count}. Next: {name}.", { count, name: first ? first.unit_name : "" })
      : t("No hands raised.");
    // The chair always sees the queue (and its buttons); a site only when hands are up.
    $("hands-box").hidden = !c.isChair && count === 0;
    $("queue-next").disabled = count === 0;
    $("queue-take-back").hidden = !c.floor;
    if (focusLost) (count && c.isChair ? $("queue-next") : $("hands-heading")).focus();
    const position = c.handPosition;
    $("badge-hand").textContent =
      position === 1
        ? t("You are first in line to speak.")
        : position > 1
          ? // TRANSLATORS: {position} is an ordinal: "2nd" in English, a plain number in Vietnamese.
            t("You are {position} in line to speak.", { position: ordinal(position) })
          : "";
    $("tab-people").classList.toggle("attention", c.isChair && count > 0 && $("panel-people").hidden);
    this.renderWaits();
  }

  /** Every second: how long each raised hand has waited (text only, nothing announced). */
  renderWaits() {
    const now = Date.now();
    for (const h of this.c.hands) {
      const item = this.queueItems.get(h.participant);
      if (!item) continue;
      const time = waitText(this.c.waitedMs(h, now));
      item.querySelector(".queue-wait").textContent = t("waiting {time}", { time });
    }
  }

  _action(label, onClick, name) {
    const b = el("button", "small", label);
    b.type = "button";
    if (name) b.dataset.action = name;
    b.addEventListener("click", onClick);
    return b;
  }

  _person(p) {
    const c = this.c;
    const item = $("roster-template").content.firstElementChild.cloneNode(true);
    item.dataset.participant = p.id;
    item.dataset.unit = p.unit;
    const self = p.id === c.participantId;
    item.querySelector(".person-name").textContent = self ? selfName(p) : p.unit_name;
    if (p.display_name && p.display_name !== p.unit_name) item.querySelector(".person-name").title = p.display_name;
    const tags = item.querySelector(".person-tags");
    const tag = (text, cls = "") => tags.append(el("span", `tag ${cls}`, text));
    if (p.role === "chair") tag(t("Chair"), "chair");
    if (p.role === "observer") tag(t("Observer"));
    if (c.floor === p.id) tag(t("Speaking"), "floor");
    if (c.presenter === p.id) tag(t("Presenting"), "presenter");
    if (p.hand_raised) tag(t("Hand raised"), "hand");
    if (p.audio_muted) tag(p.muted_by_chair ? t("Muted by the chair") : t("Mic off"), "muted");
    if (p.video_muted) tag(t("Camera off"), "muted");
    if (p.bandwidth === "low") tag("3G/4G");
    if (p.bandwidth === "audio") tag(t("Audio only"));
    if (!p.connected) tag(t("Disconnected"), "warn");
    const actions = item.querySelector(".person-actions");
    if (c.isChair) {
      if (!p.audio_muted && !self) actions.append(this._action(t("Mute"), () => c.muteParticipant(p.id), "mute"));
      if (p.role !== "observer") {
        actions.append(
          c.floor === p.id
            ? this._action(t("Take back the floor"), () => c.giveFloor(null), "floor")
            : this._action(t("Give the floor"), () => c.giveFloor(p.id), "floor"),
        );
        actions.append(
          c.presenter === p.id
            ? this._action(t("Stop the presentation"), () => c.setPresenter(null), "presenter")
            : this._action(t("Let present"), () => c.setPresenter(p.id), "presenter"),
        );
      }
      if (!self) {
        actions.append(
          this._action(
            t("Remove"),
            () => this.confirm(t("Remove {name} from the meeting?", { name: p.unit_name }), () => c.remove(p.id)),
            "remove",
          ),
        );
      }
    } else {
      actions.remove();
    }
    return item;
  }

  renderLobby() {
    const c = this.c;
    const list = $("lobby-list");
    list.replaceChildren();
    for (const p of c.lobby) {
      const item = $("roster-template").content.firstElementChild.cloneNode(true);
      item.dataset.participant = p.id;
      item.querySelector(".person-name").textContent = p.unit_name;
      const actions = item.querySelector(".person-actions");
      actions.append(this._action(t("Admit"), () => c.admit(p.id), "admit"));
      actions.append(this._action(t("Deny"), () => c.deny(p.id), "deny"));
      list.append(item);
    }
    $("lobby-empty").hidden = c.lobby.length > 0;
    // Thirty sites arriving before a provincial meeting: one click, in their order.
    $("lobby-admit-all").hidden = c.lobby.length < 2;
    $("count-lobby").textContent = c.lobby.length ? `(${c.lobby.length})` : "";
    $("tab-lobby").classList.toggle("attention", c.lobby.length > 0);
  }

  // --- chat ----------------------------------------------------------------------------

  renderChat() {
    const c = this.c;
    const log = $("chat-log");
    // Append only what is new; chat is append-only.
    while (log.children.length > c.chat.length) log.firstElementChild.remove();
    for (let i = log.children.length; i < c.chat.length; i++) {
      const msg = c.chat[i];
      const item = el("li", msg.from === c.participantId ? "chat-item own" : "chat-item");
      const head = el("div", "chat-head");
      head.append(el("span", "chat-from", msg.from_unit ? unitNameOf(c, msg) : msg.from_name || ""));
      if (msg.to === "chair") head.append(el("span", "tag", t("to the chair")));
      head.append(el("time", "chat-time", timeText(msg.at)));
      item.append(head, el("p", "chat-text", msg.text));
      log.append(item);
    }
    log.scrollTop = log.scrollHeight;
    const chatHidden = $("panel-chat").hidden;
    if (chatHidden && c.chat.length) {
      this.unread = (this.unread || 0) + 1;
      $("count-chat").textContent = `(${this.unread})`;
    }
  }

  // --- roll call --------------------------------------------------------------------------

  renderRollCall() {
    const c = this.c;
    const call = c.rollCall;
    const dialog = $("rollcall-dialog");
    if (!c.isChair) {
      const answered =
        call?.answers?.some((a) => a.participant === c.participantId) || this.rollCallAnswered === call?.number;
      const asked = Boolean(call && call.state === "open" && !answered && c.role !== "observer");
      $("btn-rollcall").hidden = !asked || dialog.open;
      if (asked && this.rollCallDismissed !== call.number) {
        $("rollcall-dialog-title").textContent = call.title;
        if (!dialog.open) this.openRollCallDialog();
      } else if (!asked && dialog.open) {
        dialog.close();
      }
      return;
    }
    const open = call && call.state === "open";
    $("rollcall-start-form").hidden = Boolean(open);
    $("rollcall-results").hidden = !call;
    $("rollcall-close").hidden = !open;
    $("tab-rollcall").classList.toggle("attention", Boolean(open) && $("panel-rollcall").hidden);
    if (!call) return;
    $("rollcall-results-title").textContent = open
      ? t("{title} — in progress", { title: call.title })
      : t("{title} — closed", { title: call.title });
    const sites = c.rollCallSites();
    const summary = $("rollcall-summary");
    const stat = (name, label, value) => {
      const box = el("div", `stat stat-${name}`);
      box.dataset.stat = name;
      box.append(el("span", "stat-value", String(value)), el("span", "stat-label", label));
      return box;
    };
    summary.replaceChildren(
      stat("answered", t("sites answered"), `${sites.answered} / ${sites.expected}`),
      stat("present", t("present"), sites.present),
      stat("absent", t("absent"), sites.absent),
      stat("pending", open ? t("not answered yet") : t("did not answer"), sites.pending),
      stat("people", t("people in all"), sites.people),
    );
    Object.assign(summary.dataset, {
      answered: sites.answered,
      expected: sites.expected,
      present: sites.present,
      absent: sites.absent,
      pending: sites.pending,
      people: sites.people,
    });
    this._fillRollCallRows($("rollcall-answers"), sites, open);
    this._renderPastRollCalls();
  }

  /** One row per site: name and delegates, the answer (or none yet), the headcount. */
  _fillRollCallRows(body, sites, open) {
    body.replaceChildren();
    for (const site of sites.rows) {
      const row = el("tr", site.answer ? `answered answer-${site.status}` : `answer-${site.status}`);
      row.dataset.unit = site.unit;
      row.dataset.status = site.status;
      if (site.answer) row.dataset.participant = site.answer.participant;
      const unit = el("td", "rc-unit");
      unit.append(el("span", "rc-name", site.name));
      const delegates = site.answer?.delegates || [];
      if (delegates.length) {
        const list = el("ul", "rc-delegates");
        list.setAttribute("aria-label", t("Delegates"));
        for (const name of delegates) list.append(el("li", "", name));
        unit.append(list);
      }
      const state = site.status === "pending" && !open ? t("Did not answer") : ANSWER_TEXT[site.status];
      const answer = el("td", "rc-answer");
      answer.append(el("span", `tag rc-${site.status}`, state));
      const people = el("td", "rc-people num", site.answer?.headcount != null ? String(site.answer.headcount) : "");
      row.append(unit, answer, people);
      body.append(row);
    }
  }

  /** Earlier roll calls of this session, folded, each with its table. */
  _renderPastRollCalls() {
    const c = this.c;
    const box = $("rollcall-past");
    box.hidden = c.pastRollCalls.length === 0;
    const list = $("rollcall-past-list");
    // Rebuilt only when a call is added: an unfolded one stays unfolded.
    if (list.children.length === c.pastRollCalls.length) return;
    list.replaceChildren();
    for (const call of c.pastRollCalls) {
      const sites = c.rollCallSites(call);
      const details = el("details", "rollcall-past-call");
      details.dataset.number = String(call.number);
      details.append(
        el(
          "summary",
          "",
          t("{title}: {answered} of {expected} sites answered, {people} people", {
            title: call.title,
            answered: sites.answered,
            expected: sites.expected,
            people: sites.people,
          }),
        ),
      );
      const table = $("rollcall-table").cloneNode(true);
      table.removeAttribute("id");
      const body = table.querySelector("tbody");
      body.removeAttribute("id");
      this._fillRollCallRows(body, sites, false);
      details.append(table);
      list.append(details);
    }
  }

  /** The answer dialog, fresh for this roll call. */
  openRollCallDialog() {
    const dialog = $("rollcall-dialog");
    $("rollcall-error").textContent = "";
    $("rollcall-submit").disabled = false;
    this._syncPresent();
    dialog.showModal();
    $("btn-rollcall").hidden = true;
  }

  /** Absent: no headcount and no names to give. */
  _syncPresent() {
    const present = $("rollcall-present").checked;
    $("rollcall-headcount").disabled = !present;
    $("rollcall-delegates").disabled = !present;
  }

  /** Checks the answer against the server's limits; the message to show, or "". */
  _answerProblem(present, headcount, names) {
    if (!present) return "";
    if (!Number.isInteger(headcount) || headcount < 0 || headcount > MAX_HEADCOUNT) {
      return t("The number of people must be a whole number from 0 to {max}.", { max: MAX_HEADCOUNT });
    }
    if (names.length > MAX_DELEGATES) return t("At most {max} names.", { max: MAX_DELEGATES });
    // Code points, as the server counts them (a name in decomposed form is longer).
    const long = names.find((name) => [...name].length > MAX_NAME);
    if (long) return t("A name may have at most {max} characters: {name}", { max: MAX_NAME, name: long });
    return "";
  }

  _submitRollCall() {
    const c = this.c;
    const present = $("rollcall-present").checked;
    const raw = $("rollcall-headcount").value.trim();
    const headcount = raw === "" ? undefined : Number(raw);
    const names = present ? delegateNames($("rollcall-delegates").value) : [];
    const problem = this._answerProblem(present, headcount ?? 0, names);
    const error = $("rollcall-error");
    error.textContent = problem;
    if (problem) return;
    const submit = $("rollcall-submit");
    submit.disabled = true;
    c.answerRollCall(present, present ? headcount : undefined, names)
      .then(() => {
        // The ack comes before the server's copy of the answer: do not ask again meanwhile.
        this.rollCallAnswered = c.rollCall?.number ?? 0;
        // The form keeps this answer: the next roll call starts from it (same people).
        $("rollcall-dialog").close();
      })
      .catch((e) => {
        error.textContent = errorText(e.code, e.message);
      })
      .finally(() => {
        submit.disabled = false;
      });
  }

  // --- toolbar --------------------------------------------------------------------------------

  renderToolbar() {
    const c = this.c;
    const media = c.media;
    const me = c.self;
    const audioMuted = media ? media.audioMuted : false;
    const mic = $("btn-mic");
    mic.textContent = audioMuted ? t("Unmute microphone") : t("Mute microphone");
    mic.setAttribute("aria-pressed", String(audioMuted));
    mic.classList.toggle("off", audioMuted);
    mic.disabled = audioMuted && c.mutedByChair;
    mic.title = mic.disabled ? t("The chair muted your microphone; raise your hand to ask to speak") : "";
    const noMic = !media?.streams.camera?.getAudioTracks().length;
    if (noMic) mic.disabled = true;
    const cam = $("btn-camera");
    const videoOff = media ? media.videoOff : false;
    cam.textContent = videoOff ? t("Turn camera on") : t("Turn camera off");
    cam.setAttribute("aria-pressed", String(videoOff));
    cam.classList.toggle("off", videoOff);
    cam.hidden = !media?.streams.camera?.getVideoTracks().length || c.bandwidth === "audio";
    const hand = $("btn-hand");
    const raised = Boolean(me?.hand_raised);
    hand.textContent = raised ? t("Lower hand") : t("Raise hand");
    hand.setAttribute("aria-pressed", String(raised));
    hand.hidden = c.role === "observer";
    const screen = $("btn-screen");
    screen.hidden = c.presenter !== c.participantId;
    screen.textContent = c.sharingScreen ? t("Stop sharing") : t("Share screen");
    $("btn-lock").textContent = c.locked ? t("Unlock the room") : t("Lock the room");
    $("btn-lock").setAttribute("aria-pressed", String(c.locked));
    $("btn-recording").textContent = c.recording ? t("Stop recording") : t("Start recording");
    $("btn-recording").setAttribute("aria-pressed", String(c.recording));
  }

  _bindControls() {
    const c = this.c;
    $("lobby-admit-all").addEventListener("click", () => c.admitAll());
    $("btn-mic").addEventListener("click", () => c.setMicrophone(c.media.audioMuted));
    $("btn-camera").addEventListener("click", () => c.setCamera(c.media.videoOff));
    $("btn-hand").addEventListener("click", () => c.raiseHand(!c.self?.hand_raised));
    $("btn-screen").addEventListener("click", () => {
      if (c.sharingScreen) c.stopScreenShare();
      else c.startScreenShare().catch(() => c._notice(t("Could not share the screen.")));
    });
    $("btn-leave").addEventListener("click", () => this.confirm(t("Leave the meeting room?"), () => c.leave()));
    $("status-leave").addEventListener("click", () => c.leave());
    $("btn-mute-all").addEventListener("click", () => c.muteParticipant("all"));
    $("btn-lock").addEventListener("click", () => c.lock(!c.locked));
    $("btn-recording").addEventListener("click", () => c.setRecording(!c.recording));
    $("btn-end").addEventListener("click", () => this.confirm(t("End the meeting for every site?"), () => c.end()));
    $("rollcall-start-form").addEventListener("submit", (e) => {
      e.preventDefault();
      c.startRollCall($("rollcall-title").value.trim());
    });
    $("rollcall-close").addEventListener("click", () => c.closeRollCall());
    $("rollcall-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this._submitRollCall();
    });
    $("rollcall-present").addEventListener("change", () => this._syncPresent());
    // Escape puts the answer off: the toolbar keeps a button to come back to it.
    $("rollcall-dialog").addEventListener("cancel", () => {
      this.rollCallDismissed = c.rollCall?.number ?? 0;
    });
    $("rollcall-dialog").addEventListener("close", () => this.renderRollCall());
    $("btn-rollcall").addEventListener("click", () => {
      this.rollCallDismissed = 0;
      this.renderRollCall();
    });
    $("queue-next").addEventListener("click", () => c.nextSpeaker());
    $("queue-take-back").addEventListener("click", () => c.giveFloor(null));
    $("chat-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const input = $("chat-text");
      const text = input.value.trim();
      if (!text) return;
      c.sendChat(text, $("chat-to").value)
        .then(() => {
          input.value = "";
        })
        .catch(() => {});
    });
    document.querySelectorAll(".tab").forEach((tab) =>
      tab.addEventListener("click", () => {
        document.querySelectorAll(".tab").forEach((other) => {
          other.classList.toggle("active", other === tab);
          other.setAttribute("aria-selected", String(other === tab));
        });
        document.querySelectorAll(".panel").forEach((p) => {
          p.hidden = p.id !== tab.dataset.panel;
        });
        if (tab.id !== "tab-lobby") tab.classList.remove("attention");
        if (tab.dataset.panel === "panel-chat") {
          this.unread = 0;
          $("count-chat").textContent = "";
        }
      }),
    );
  }

  /** A confirmation in a <dialog> (window.confirm blocks the page and its media). */
  confirm(text, action) {
    const dialog = $("confirm-dialog");
    $("confirm-text").textContent = text;
    dialog.returnValue = "";
    dialog.addEventListener(
      "close",
      () => {
        if (dialog.returnValue === "yes") action();
      },
      { once: true },
    );
    dialog.showModal();
  }

  teardown() {
    clearInterval(this.statsTimer);
    clearInterval(this.waitTimer);
    for (const tile of this.tiles.values()) tile.video.srcObject = null;
    for (const audio of this.audio.values()) audio.srcObject = null;
  }
}

function unitNameOf(c, msg) {
  for (const p of c.roster.values()) if (p.unit === msg.from_unit) return p.unit_name;
  return msg.from_name || msg.from_unit;
}
