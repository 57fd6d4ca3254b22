// The client's model of one meeting: who is here, the lobby, hands, floor,
// chat, roll call, and this site's own state. No DOM here: room.js renders it.
//
// It owns the Signaling connection and the Media connections, applies every
// server message to its state, and emits "change" events ({detail: {what}})
// that the page re-renders from.

import { t } from "./i18n.js";
import { RequestError, Signaling } from "./signaling.js";
import { Media } from "./media.js";

// What a site reads for the error codes of docs/protocol.md "Errors"
// (the token and meeting ones are the join page's refusals, web/pages.py).
export const ERROR_TEXT = {
  forbidden: t("You are not allowed to do this."),
  unknown_participant: t("This site is no longer in the room."),
  not_in_lobby: t("This site is no longer in the lobby."),
  roll_call_closed: t("The roll call is closed."),
  rate_limited: t("Too fast; please wait a moment."),
  media_unavailable: t("The server is not ready to carry video and audio yet."),
  bad_sdp: t("Could not set up the video and audio connection."),
  room_not_open: t("The meeting room is not open yet. Please come back closer to the start."),
  token_expired: t("The link has expired: the meeting is over."),
  token_not_yet_valid: t("Too early: the lobby opens shortly before the meeting."),
  token_revoked: t("This invitation has been revoked or issued again."),
  meeting_cancelled: t("The meeting has been cancelled."),
  meeting_ended: t("The meeting has ended."),
  not_connected: t("Lost the connection to the server, reconnecting…"),
  timeout: t("The server did not answer."),
  internal_error: t("The server ran into an error."),
};

export function errorText(code, fallback) {
  return ERROR_TEXT[code] || fallback || t("Error: {code}", { code });
}

// Final states of this page: nothing more happens after them.
export const FINAL_STATES = new Set(["ended", "removed", "denied", "left", "refused", "replaced"]);

export class Conference extends EventTarget {
  /**
   * @param config the page's JSON config: {token, role, meeting, unit, ws_path}
   */
  constructor(config) {
    super();
    this.config = config;
    this.state = "devicecheck"; // connecting | lobby | active | reconnecting | final states
    this.finalReason = "";
    this.participantId = null;
    this.role = config.role;
    this.roomState = null;
    this.locked = false;
    this.recording = false;
    this.floor = null;
    this.hands = [];
    this.presenter = null;
    this.activeSpeaker = null;
    this.roster = new Map();
    this.lobby = [];
    this.lobbyPosition = null;
    this.chat = [];
    this.rollCall = null;
    this.rollCallNumber = 0; // counts the roll calls opened while this page was in the room
    this.pastRollCalls = []; // closed roll calls before the current one, newest first
    this.unitNames = new Map(); // unit code -> name, kept after a site leaves (roll-call rows)
    this.clockOffset = 0; // this computer's clock minus the server's, in ms (estimated)
    this.notice = null;
    this.signaling = null;
    this.media = null;
    this.bandwidth = "full";
    this.mediaStarted = false;
  }

  get isChair() {
    return this.role === "chair";
  }

  get self() {
    return this.roster.get(this.participantId) || null;
  }

  /** The chair muted us and has not given us the floor: we may not unmute. */
  get mutedByChair() {
    const me = this.self;
    return Boolean(me && me.muted_by_chair && this.floor !== this.participantId);
  }

  /** Where this site is in the speaker queue: 1-based, 0 when its hand is down. */
  get handPosition() {
    return this.hands.findIndex((h) => h.participant === this.participantId) + 1;
  }

  /** Milliseconds a queue entry has waited, by the server's clock. */
  waitedMs(entry, now = Date.now()) {
    const at = Date.parse(entry.at);
    return Number.isNaN(at) ? 0 : Math.max(0, now - this.clockOffset - at);
  }

  /**
   * The roll call site by site, for the chair: every unit expected to answer and
   * every unit that answered, with its latest answer (a unit with two screens counts
   * once). Expected: the units in the room that take part, neither the chair's
   * endpoints nor observers (the sites that get the answer dialog); while the call is
   * open the roster decides, once closed the roster of the moment it closed.
   * @returns {{rows: Array<{unit, name, status, answer}>, expected, answered, present, absent, pending, people}}
   */
  rollCallSites(call = this.rollCall) {
    if (!call) return null;
    const latest = new Map();
    for (const a of call.answers) {
      const before = latest.get(a.unit);
      if (!before || String(a.at || "") >= String(before.at || "")) latest.set(a.unit, a);
    }
    const units = new Set(call.expected || this._expectedUnits());
    for (const unit of latest.keys()) units.add(unit);
    const rows = [...units].map((unit) => {
      const answer = latest.get(unit) || null;
      const status = answer ? (answer.present ? "present" : "absent") : "pending";
      return { unit, name: this.unitNames.get(unit) || unit, status, answer };
    });
    // Unit names are Vietnamese whatever the page's language: sort them as Vietnamese.
    rows.sort((a, b) => a.name.localeCompare(b.name, "vi"));
    const count = (status) => rows.filter((r) => r.status === status).length;
    const present = count("present");
    return {
      rows,
      expected: rows.length,
      answered: rows.length - count("pending"),
      present,
      absent: count("absent"),
      pending: count("pending"),
      people: rows.reduce((sum, r) => sum + (r.status === "present" ? r.answer.headcount || 0 : 0), 0),
    };
  }

  _expectedUnits() {
    const units = new Set();
    for (const p of this.roster.values()) if (p.role === "participant") units.add(p.unit);
    return units;
  }

  _learnNames(entries) {
    for (const p of entries) if (p && p.unit) this.unitNames.set(p.unit, p.unit_name);
  }

  _changed(what) {
    this.dispatchEvent(new CustomEvent("change", { detail: { what } }));
  }

  _setState(state, reason = "") {
    if (this.state === state) return;
    if (FINAL_STATES.has(this.state)) return; // a final state stays
    this.state = state;
    this.finalReason = reason;
    this._changed("state");
  }

  _notice(text) {
    this.notice = { text, at: Date.now() };
    this._changed("notice");
  }

  /**
   * Connect and join.
   * @param stream the camera/microphone MediaStream, or a promise of it (null: receive only)
   * @param bandwidth "full" | "low" | "audio"
   */
  join(stream, bandwidth) {
    this.bandwidth = bandwidth;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.signaling = new Signaling({
      url: `${scheme}//${location.host}${this.config.ws_path}`,
      token: this.config.token,
      client: { ua: navigator.userAgent.slice(0, 200), app: "hoinghi-web", version: "1", bandwidth },
    });
    this.media = new Media(this.signaling, {
      bandwidth,
      canPublish: this.role !== "observer",
    });
    // The camera may still be opening (autojoin): connect meanwhile, publish once it is open.
    this.streamReady = Promise.resolve(stream).then((s) => {
      this.media.setStream("camera", s);
      this._changed("self");
      return s;
    });
    this.media.addEventListener("error", (e) => {
      const { code, message } = e.detail;
      if (code !== "not_connected") this._notice(errorText(code, message));
    });
    this.signaling.addEventListener("status", (e) => this._onStatus(e.detail));
    this.signaling.addEventListener("welcome", (e) => this._onWelcome(e.detail));
    this.signaling.addEventListener("message", (e) => this._onMessage(e.detail));
    this._setState("connecting");
    this.signaling.start();
  }

  _onStatus({ status, code }) {
    if (status === "reconnecting" && this.state !== "connecting") this._setState("reconnecting");
    if (status === "closed" && !FINAL_STATES.has(this.state)) {
      // Closed for good without a message saying why.
      const byCode = { 4003: "denied", 4004: "removed", 4001: "refused", 4009: "replaced", 1002: "refused" };
      this._finish(byCode[code] || "ended", "");
    }
    this._changed("connection");
  }

  _onWelcome(msg) {
    this.media.marks.welcome ??= performance.now();
    this.participantId = msg.participant;
    this.role = msg.role;
    this.media.setIceServers(msg.ice_servers);
    this._applySnapshot(msg.room);
    if (msg.state === "lobby") {
      this._setState("lobby");
      if (msg.reconnected) this.media.closeAll();
      return;
    }
    this._setState("active");
    if (this.mediaStarted) this.media.onReconnected(Boolean(msg.resumed));
    else this._startMedia();
  }

  _startMedia() {
    this.mediaStarted = true;
    this.streamReady.then(() => this.media.publish("camera"));
  }

  _applyRollCall(msg) {
    const previous = this.rollCall;
    if (msg.state === "open" && (!previous || previous.state !== "open")) {
      this.rollCallNumber += 1;
      // The earlier, closed roll calls stay readable (newest first).
      if (previous) this.pastRollCalls.unshift(previous);
    }
    this.rollCall = { state: msg.state, title: msg.title, answers: msg.answers || [], number: this.rollCallNumber };
    if (msg.state === "closed") {
      // Who was expected is frozen when the call closes: later arrivals did not miss it.
      this.rollCall.expected = previous?.expected || [...this._expectedUnits()];
    }
  }

  _applySnapshot(room) {
    this.meeting = room.meeting;
    this.roomState = room.state;
    this.locked = Boolean(room.locked);
    this.recording = Boolean(room.recording);
    this.floor = room.floor ?? null;
    this.hands = room.hands || [];
    if ("presenter" in room) this.presenter = room.presenter;
    this.roster = new Map((room.roster || []).map((p) => [p.id, p]));
    this._learnNames(this.roster.values());
    if (room.lobby) this.lobby = room.lobby;
    // The roll call under way (or the last one): a site that arrives or comes back
    // during it gets its dialog, a chair who reloads its panel.
    if (room.roll_call) this._applyRollCall(room.roll_call);
    this._changed("all");
  }

  _finish(state, reason) {
    this._setState(state, reason);
    this.signaling?.finish();
    this.media?.closeAll();
    this.media?.stopLocal();
  }

  _onMessage(msg) {
    switch (msg.type) {
      case "lobby":
        this.lobbyPosition = msg.position;
        this._setState("lobby");
        this._changed("lobby-position");
        break;
      case "admitted":
        this._applySnapshot(msg.room);
        this._setState("active");
        this._startMedia();
        break;
      case "denied":
        this._finish("denied", msg.reason || "");
        break;
      case "removed":
        this._finish("removed", msg.reason || "");
        break;
      case "ended":
        this._finish("ended", msg.reason || "");
        break;
      case "room_state":
        this.roomState = msg.state;
        if (typeof msg.locked === "boolean") this.locked = msg.locked;
        this._changed("room");
        break;
      case "participant_joined":
      case "participant_updated":
        this.roster.set(msg.participant.id, msg.participant);
        this._learnNames([msg.participant]);
        if (msg.participant.id === this.participantId) this._enforceChairMute();
        this._changed("roster");
        break;
      case "participant_left":
        this.roster.delete(msg.participant);
        this.hands = this.hands.filter((h) => h.participant !== msg.participant);
        this._changed("roster");
        break;
      case "lobby_changed":
        this.lobby = msg.lobby || [];
        this._changed("lobby");
        break;
      case "subscribe_offer":
        this.media.onSubscribeOffer(msg);
        break;
      case "video_pause":
        this.media.onVideoPause(msg.source, msg.paused);
        break;
      case "media_reset":
        this.media.reset();
        break;
      case "active_speaker":
        this.activeSpeaker = msg.participant;
        this._changed("speaker");
        break;
      case "presenter":
        this.presenter = msg.participant ?? null;
        if (this.presenter !== this.participantId) this.stopScreenShare();
        this._changed("presenter");
        break;
      case "chat":
        this.chat.push(msg);
        if (this.chat.length > 500) this.chat.shift();
        this._changed("chat");
        break;
      case "hands": {
        const before = new Set(this.hands.map((h) => h.participant));
        this.hands = msg.queue || [];
        // A hand raised just now is stamped with the server's clock at about this moment:
        // the difference is this computer's clock error (room PCs are often minutes off).
        const newest = this.hands[this.hands.length - 1];
        if (newest && !before.has(newest.participant) && !Number.isNaN(Date.parse(newest.at))) {
          this.clockOffset = Date.now() - Date.parse(newest.at);
        }
        this._changed("hands");
        break;
      }
        break;
      case "floor":
        this.floor = msg.participant ?? null;
        if (this.floor && this.floor === this.participantId && this.media?.audioMuted) {
          this._notice(
            t("The chair gave this site the floor. Press “{button}” to speak.", { button: t("Unmute microphone") }),
          );
        }
        this._changed("floor");
        break;
      case "recording":
        this.recording = Boolean(msg.on);
        this._changed("room");
        break;
      case "roll_call":
        this._applyRollCall(msg);
        this._changed("rollcall");
        break;
        break;
      case "error":
        this._onError(msg);
        break;
      default:
        break;
    }
  }

  _onError(msg) {
    if (msg.code && msg.code.startsWith("token_")) this._finish("refused", errorText(msg.code));
    else if (["meeting_cancelled", "meeting_ended"].includes(msg.code)) this._finish("ended", errorText(msg.code));
    else if (msg.code === "unsupported_protocol") this._finish("refused", t("The browser needs to reload the page."));
    else if (msg.code === "room_not_open") this._finish("refused", errorText(msg.code));
    else if (!msg.request_id) this._notice(errorText(msg.code, msg.message));
    // Errors answering our requests reach the caller through its promise.
  }

  /** Muted by the chair: stop sending audio at once, whatever the button says. */
  _enforceChairMute() {
    const me = this.self;
    if (me && me.muted_by_chair && !this.media.audioMuted) {
      this.media.setAudioMuted(true);
      this._changed("self");
    }
  }

  // --- actions of every site ------------------------------------------------------

  async _do(message) {
    try {
      return await this.signaling.request(message);
    } catch (e) {
      if (e instanceof RequestError) this._notice(errorText(e.code, e.message));
      throw e;
    }
  }

  async setMicrophone(on) {
    if (on && this.mutedByChair) {
      this._notice(t("The chair muted this site's microphone. Raise your hand to ask to speak."));
      return;
    }
    await this.media.setAudioMuted(!on);
    this._changed("self");
    await this._do({ type: "mute", audio: !on }).catch(() => {});
  }

  async setCamera(on) {
    await this.media.setVideoOff(!on);
    this._changed("self");
    await this._do({ type: "mute", video: !on }).catch(() => {});
  }

  raiseHand(raised) {
    return this._do({ type: "hand", raised }).catch(() => {});
  }

  sendChat(text, to = "all") {
    return this._do({ type: "chat", text, to });
  }

  /**
   * Answer the open roll call. `delegates`: the names of the people attending, as
   * typed (never normalised: Vietnamese names go to the record unchanged).
   * Rejects with the server's RequestError when refused.
   */
  answerRollCall(present, headcount, delegates = []) {
    const msg = { type: "roll_call_answer", present };
    if (Number.isInteger(headcount)) msg.headcount = headcount;
    if (delegates.length) msg.delegates = delegates;
    return this.signaling.request(msg);
  }

  async startScreenShare() {
    if (this.presenter !== this.participantId) return;
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    const track = stream.getVideoTracks()[0];
    track.contentHint = "detail";
    // The browser's own "stop sharing" bar.
    track.addEventListener("ended", () => this.stopScreenShare());
    this.media.setStream("screen", stream);
    await this.media.publish("screen");
    this._changed("self");
  }

  stopScreenShare() {
    const stream = this.media?.streams.screen;
    if (!stream) return;
    stream.getTracks().forEach((track) => track.stop());
    this.media.setStream("screen", null);
    this.media.unpublish("screen");
    this._changed("self");
  }

  get sharingScreen() {
    return Boolean(this.media?.streams.screen);
  }

  leave() {
    this._finish("left", "");
    this.signaling?.leave();
  }

  // --- chair ------------------------------------------------------------------------

  admit(participant) {
    return this._do({ type: "admit", participant }).catch(() => {});
  }
  /** Admit every site waiting now, oldest first (one `admit` each: the server keeps the order). */
  admitAll() {
    return Promise.all(this.lobby.map((p) => this.admit(p.id)));
  }
  deny(participant) {
    return this._do({ type: "deny", participant }).catch(() => {});
  }
  muteParticipant(participant) {
    return this._do({ type: "mute_participant", participant }).catch(() => {});
  }
  remove(participant) {
    return this._do({ type: "remove", participant }).catch(() => {});
  }
  lock(locked) {
    return this._do({ type: "lock", locked })
      .then(() => {
        this.locked = locked;
        this._changed("room");
      })
      .catch(() => {});
  }
  giveFloor(participant) {
    return this._do({ type: "floor", participant }).catch(() => {});
  }
  /** The floor to the first in the speaker queue (the server then lowers that hand). */
  nextSpeaker() {
    const first = this.hands[0];
    return first ? this.giveFloor(first.participant) : Promise.resolve();
  }
  setPresenter(participant) {
    return this._do({ type: "presenter", participant }).catch(() => {});
  }
  setRecording(on) {
    return this._do({ type: "recording", on }).catch(() => {});
  }
  startRollCall(title) {
    const msg = { type: "roll_call_start" };
    if (title) msg.title = title;
    return this._do(msg).catch(() => {});
  }
  closeRollCall() {
    return this._do({ type: "roll_call_close" }).catch(() => {});
  }
  end() {
    return this._do({ type: "end" }).catch(() => {});
  }

  // --- for tests and diagnostics --------------------------------------------------

  /** Simulate a dropped network: the WebSocket and every RTCPeerConnection close. */
  dropNetwork() {
    this.media?.closeAll();
    this.signaling?.drop();
  }
}
