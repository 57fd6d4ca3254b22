// The signaling connection: one WebSocket to /ws speaking docs/protocol.md.
//
// No DOM here. It joins (or resumes), matches answers to requests by `id`,
// and reconnects after an unexpected close with the protocol's backoff,
// resuming with the resume_token from `welcome` (falling back to `join` when
// the server answers `resume_expired`). Everything the server says is
// re-dispatched as a "message" event; connection changes as "status" events.

export const PROTOCOL = 1;

// docs/protocol.md "Recovering": 0, 0.3, 1.2, 2.7, 4.8 s, then every 7 s.
export const BACKOFF_MS = [0, 300, 1200, 2700, 4800];
export const BACKOFF_STEADY_MS = 7000;

// Close codes after which reconnecting cannot help: left or ended, token
// refused, denied, removed, replaced by another socket of the same participant.
export const FINAL_CLOSE_CODES = new Set([1000, 4001, 4003, 4004, 4009]);

// Close code the client uses to simulate a dropped network (tests): unexpected.
export const DROP_CLOSE_CODE = 4999;

const REQUEST_TIMEOUT_MS = 10000;

export class RequestError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

/** Delay before reconnect attempt `n` (0-based). */
export function backoffDelay(n) {
  return n < BACKOFF_MS.length ? BACKOFF_MS[n] : BACKOFF_STEADY_MS;
}

/**
 * Events: "status" {detail: {status, code?, reason?}} where status is
 * "connecting" | "open" | "reconnecting" | "closed"; "welcome" {detail: msg,
 * plus `reconnected`}; "message" {detail: msg} for every server message.
 */
export class Signaling extends EventTarget {
  constructor({ url, token, client, displayName }) {
    super();
    this.url = url;
    this.token = token;
    this.client = client;
    this.displayName = displayName;
    this.ws = null;
    this.status = "idle";
    this.resumeToken = null;
    this.participantId = null;
    this.attempt = 0;
    this.everJoined = false;
    this.finished = false;
    this.nextId = 1;
    this.pending = new Map();
    this.retryTimer = null;
  }

  /** Open the connection and join. */
  start() {
    this.finished = false;
    this._open();
  }

  /** True when the socket is open and joined (welcome received). */
  get ready() {
    return this.status === "open";
  }

  /** Send a message; no answer is awaited. Dropped when not connected. */
  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** Send a request with an `id`; resolves with its answer, rejects on `error`. */
  request(message) {
    const id = `c${this.nextId++}`;
    return new Promise((resolve, reject) => {
      if (!this.send({ ...message, id })) {
        reject(new RequestError("not_connected", "not connected"));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RequestError("timeout", `no answer to ${message.type}`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
    });
  }

  /** Leave on purpose: the server answers `ack` and closes with 1000. */
  leave() {
    this.finished = true;
    clearTimeout(this.retryTimer);
    if (!this.send({ type: "leave" })) this._setStatus("closed", { code: 1000 });
  }

  /** Stop for good (ended, removed, denied): no reconnect. */
  finish() {
    this.finished = true;
    clearTimeout(this.retryTimer);
  }

  /** Close the socket as a network drop would (tests): the client reconnects. */
  drop() {
    const ws = this.ws;
    if (!ws) return;
    ws.close(DROP_CLOSE_CODE, "network drop (simulated)");
    // Gone now, as a cable pulled out; the socket's own close event comes later and is ignored.
    this._onClose(ws, { code: DROP_CLOSE_CODE, reason: "network drop (simulated)" });
  }

  _setStatus(status, extra = {}) {
    this.status = status;
    this.dispatchEvent(new CustomEvent("status", { detail: { status, ...extra } }));
  }

  _open() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this._setStatus(this.everJoined ? "reconnecting" : "connecting");
    ws.addEventListener("open", () => this._hello(ws));
    ws.addEventListener("message", (event) => this._onFrame(ws, event));
    ws.addEventListener("close", (event) => this._onClose(ws, event));
  }

  _hello(ws) {
    if (ws !== this.ws) return;
    if (this.resumeToken) {
      this.send({ type: "resume", resume_token: this.resumeToken, protocol: PROTOCOL });
    } else {
      this._join();
    }
  }

  _join() {
    const join = { type: "join", token: this.token, protocol: PROTOCOL, client: this.client };
    if (this.displayName) join.display_name = this.displayName;
    this.send(join);
  }

  _onFrame(ws, event) {
    if (ws !== this.ws || typeof event.data !== "string") return;
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch {
      return;
    }
    if (msg.type === "welcome") {
      const reconnected = this.everJoined;
      this.resumeToken = msg.resume_token;
      this.participantId = msg.participant;
      this.everJoined = true;
      this.attempt = 0;
      this._setStatus("open");
      this.dispatchEvent(new CustomEvent("welcome", { detail: { ...msg, reconnected } }));
    } else if (msg.type === "error" && msg.code === "resume_expired") {
      // Too late to resume: join again on this socket (it has not joined yet).
      this.resumeToken = null;
      this._join();
      return;
    }
    const id = msg.id ?? msg.request_id;
    if (id && this.pending.has(id)) {
      const { resolve, reject, timer } = this.pending.get(id);
      this.pending.delete(id);
      clearTimeout(timer);
      if (msg.type === "error") reject(new RequestError(msg.code, msg.message));
      else resolve(msg);
    }
    this.dispatchEvent(new CustomEvent("message", { detail: msg }));
  }

  _onClose(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new RequestError("not_connected", "connection closed"));
    }
    this.pending.clear();
    const final = this.finished || FINAL_CLOSE_CODES.has(event.code) || event.code === 1002;
    if (final) {
      this.finished = true;
      this._setStatus("closed", { code: event.code, reason: event.reason });
      return;
    }
    const delay = backoffDelay(this.attempt++);
    this._setStatus("reconnecting", { code: event.code, delay });
    this.retryTimer = setTimeout(() => this._open(), delay);
  }
}
