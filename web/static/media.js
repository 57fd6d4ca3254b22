// WebRTC media with the server's SFU (docs/protocol.md "Media"). No DOM here.
//
// - one publishing RTCPeerConnection per source ("camera": microphone and
//   camera, "screen": the presenter's screen), offered by us (`publish`);
// - one receiving RTCPeerConnection, offered by the server (`subscribe_offer`),
//   whose m-lines `tracks` maps to participants.
// A connection that fails (ICE `failed`, or `disconnected` for more than 5 s)
// is replaced by a new one: the SFU has no ICE restart, a new connection is
// the restart. Events: "tracks" (detail: the list of remote tracks now
// carried), "error" (detail: {code, message, source}).

const DISCONNECTED_GRACE_MS = 5000;
// Wait this long for ICE gathering before sending an SDP: on a LAN it is done
// in tens of ms; later candidates are trickled with `ice`.
const GATHER_WAIT_MS = 1000;
export const LOW_MAX_BITRATE = 300000;

/** getUserMedia constraints per bandwidth choice (docs/protocol.md "Bandwidth"). */
export function captureConstraints(bandwidth, { cameraId, micId } = {}) {
  const audio = {
    echoCancellation: true,
    noiseSuppression: true,
    autoGainControl: true,
    ...(micId ? { deviceId: { exact: micId } } : {}),
  };
  if (bandwidth === "audio") return { audio, video: false };
  const size =
    bandwidth === "low"
      ? { width: { ideal: 320 }, height: { ideal: 180 }, frameRate: { ideal: 15, max: 15 } }
      : { width: { ideal: 960 }, height: { ideal: 540 }, frameRate: { ideal: 30 } };
  return { audio, video: { ...size, ...(cameraId ? { deviceId: { exact: cameraId } } : {}) } };
}

/** Put `mimeType` first among the codecs offered on `transceiver` (RFC 8829 §4.1.7.1). */
function preferCodec(transceiver, kind, mimeType) {
  if (!transceiver.setCodecPreferences) return;
  const caps =
    (typeof RTCRtpSender.getCapabilities === "function" && RTCRtpSender.getCapabilities(kind)) ||
    RTCRtpReceiver.getCapabilities(kind);
  if (!caps) return;
  const wanted = mimeType.toLowerCase();
  const first = caps.codecs.filter((c) => c.mimeType.toLowerCase() === wanted);
  const rest = caps.codecs.filter((c) => c.mimeType.toLowerCase() !== wanted);
  try {
    transceiver.setCodecPreferences([...first, ...rest]);
  } catch {
    // Older browsers check against the receiver's codecs only; try those.
    const rcaps = RTCRtpReceiver.getCapabilities(kind);
    const rfirst = rcaps.codecs.filter((c) => c.mimeType.toLowerCase() === wanted);
    const rrest = rcaps.codecs.filter((c) => c.mimeType.toLowerCase() !== wanted);
    try {
      transceiver.setCodecPreferences([...rfirst, ...rrest]);
    } catch {
      /* keep the browser's order; the server answers VP8/Opus anyway */
    }
  }
}

function gatheringDone(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

function iceUfrag(sdp) {
  const m = /^a=ice-ufrag:(\S+)/m.exec(sdp || "");
  return m ? m[1] : null;
}

/**
 * One RTCPeerConnection and what we told the server about it. Candidates are
 * trickled only once the server knows the connection (after its SDP was
 * answered), so an `ice` never arrives before the `publish`/`answer` it belongs to.
 */
class Link {
  constructor(config, ice, onDead) {
    this.pc = new RTCPeerConnection(config);
    this.ice = ice; // {target, source?}
    this.known = false;
    this.queued = [];
    this.closed = false;
    this.sdpSent = false;
    this.disconnectTimer = null;
    this.pc.addEventListener("icecandidate", (e) => this._candidate(e.candidate));
    this.pc.addEventListener("connectionstatechange", () => {
      const state = this.pc.connectionState;
      clearTimeout(this.disconnectTimer);
      if (this.closed) return;
      if (state === "failed") onDead(this);
      else if (state === "disconnected") {
        this.disconnectTimer = setTimeout(() => {
          if (!this.closed && this.pc.connectionState === "disconnected") onDead(this);
        }, DISCONNECTED_GRACE_MS);
      }
    });
  }

  get connected() {
    return !this.closed && this.pc.connectionState === "connected";
  }

  _candidate(candidate) {
    // Candidates gathered before the SDP left are in it already.
    if (!this.sdpSent || this.closed) return;
    const msg = {
      type: "ice",
      ...this.ice,
      candidate: candidate ? candidate.candidate : "",
    };
    if (candidate && candidate.sdpMid != null) msg.sdp_mid = candidate.sdpMid;
    if (candidate && candidate.sdpMLineIndex != null) msg.sdp_mline_index = candidate.sdpMLineIndex;
    this.queued.push(msg);
    this.flush();
  }

  flush(signaling) {
    if (signaling) this.signaling = signaling;
    if (!this.known || !this.signaling) return;
    for (const msg of this.queued.splice(0)) this.signaling.send(msg);
  }

  close() {
    this.closed = true;
    clearTimeout(this.disconnectTimer);
    this.pc.close();
  }
}

export class Media extends EventTarget {
  /**
   * @param signaling a Signaling (request/send)
   * @param options {bandwidth, canPublish}
   */
  constructor(signaling, { bandwidth = "full", canPublish = true } = {}) {
    super();
    this.signaling = signaling;
    this.bandwidth = bandwidth;
    this.canPublish = canPublish;
    this.iceServers = [];
    this.streams = { camera: null, screen: null };
    this.publishers = new Map(); // source -> Link (with .senders)
    this.subscriber = null; // Link with .tracks Map(mid -> {participant, source, kind})
    // ICE ufrags of receiving connections we closed: a late offer for one of them
    // (re-sent on resume, or raced with `resubscribe`) is stale and not answered.
    this.deadUfrags = new Set();
    this.marks = {}; // first time each step happened (performance.now()), for diagnostics
    this.offerChain = Promise.resolve();
    this.audioMuted = false;
    this.videoOff = false;
    this.paused = { camera: false, screen: false };
    this.unavailable = false;
  }

  setIceServers(list) {
    this.iceServers = Array.isArray(list) ? list : [];
  }

  _config() {
    return { iceServers: this.iceServers, bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" };
  }

  setStream(source, stream) {
    this.streams[source] = stream;
  }

  // --- publishing ------------------------------------------------------------

  /** Offer `source` to the server (again: publishing replaces the previous connection). */
  async publish(source) {
    const stream = this.streams[source];
    if (!this.canPublish || !stream || !this.signaling.ready) return;
    const old = this.publishers.get(source);
    if (old) old.close();
    const link = new Link(this._config(), { target: "publish", source }, (l) => this._dead(l));
    link.source = source;
    link.senders = { audio: null, video: null };
    this.publishers.set(source, link);
    const pc = link.pc;
    const kinds = source === "screen" ? ["video"] : this.bandwidth === "audio" ? ["audio"] : ["audio", "video"];
    for (const kind of kinds) {
      const track = stream.getTracks().find((t) => t.kind === kind);
      if (!track) continue;
      const init = { direction: "sendonly", streams: [stream] };
      if (kind === "video" && this.bandwidth === "low") {
        init.sendEncodings = [{ maxBitrate: LOW_MAX_BITRATE, maxFramerate: 15 }];
      }
      const transceiver = pc.addTransceiver(track, init);
      preferCodec(transceiver, kind, kind === "video" ? "video/VP8" : "audio/opus");
      link.senders[kind] = transceiver.sender;
    }
    if (!link.senders.audio && !link.senders.video) {
      link.close();
      this.publishers.delete(source);
      return;
    }
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gatheringDone(pc, GATHER_WAIT_MS);
      if (link.closed) return;
      link.sdpSent = true;
      const answer = await this.signaling.request({ type: "publish", source, sdp: pc.localDescription.sdp });
      if (link.closed) return;
      await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
      if (source === "camera") this._mark("published");
      link.known = true;
      link.flush(this.signaling);
      await this._applyEncodings(link);
    } catch (e) {
      if (link.closed) return;
      link.close();
      if (this.publishers.get(source) === link) this.publishers.delete(source);
      this._error(e, source);
    }
  }

  /** Stop sending `source` (the screen, when no longer presenter). */
  async unpublish(source) {
    const link = this.publishers.get(source);
    if (!link) return;
    link.close();
    this.publishers.delete(source);
    try {
      await this.signaling.request({ type: "unpublish", source });
    } catch {
      /* the server may have dropped it already (presenter taken) */
    }
  }

  /** Encodings follow mute, camera off and `video_pause`; low bandwidth caps the bitrate. */
  async _applyEncodings(link) {
    const want = {
      audio: !this.audioMuted,
      video: !this.paused[link.source] && !(link.source === "camera" && this.videoOff),
    };
    link.encodingChain = (link.encodingChain || Promise.resolve()).then(async () => {
      for (const kind of ["audio", "video"]) {
        const sender = link.senders[kind];
        if (!sender || link.closed) continue;
        const params = sender.getParameters();
        if (!params.encodings || params.encodings.length === 0) continue;
        const enc = params.encodings[0];
        let changed = enc.active !== want[kind];
        enc.active = want[kind];
        if (kind === "video" && this.bandwidth === "low" && link.source === "camera" && enc.maxBitrate !== LOW_MAX_BITRATE) {
          enc.maxBitrate = LOW_MAX_BITRATE;
          changed = true;
        }
        if (changed) {
          try {
            await sender.setParameters(params);
          } catch (e) {
            console.warn("setParameters", kind, e);
          }
        }
      }
    });
    return link.encodingChain;
  }

  _applyAll() {
    return Promise.all([...this.publishers.values()].map((l) => this._applyEncodings(l)));
  }

  /** Mute: the audio sender sends no packets at all (active: false), not silence. */
  setAudioMuted(muted) {
    this.audioMuted = muted;
    const track = this.streams.camera?.getAudioTracks()[0];
    if (track) track.enabled = !muted;
    return this._applyAll();
  }

  setVideoOff(off) {
    this.videoOff = off;
    const track = this.streams.camera?.getVideoTracks()[0];
    if (track) track.enabled = !off;
    return this._applyAll();
  }

  /** `video_pause`: nobody receives this video; stop (or resume) sending it. */
  onVideoPause(source, paused) {
    this.paused[source] = paused;
    const link = this.publishers.get(source);
    if (link) return this._applyEncodings(link);
    return Promise.resolve();
  }

  // --- receiving ---------------------------------------------------------------

  _mark(name) {
    if (this.marks[name] == null) this.marks[name] = performance.now();
  }

  _closeSubscriber() {
    const link = this.subscriber;
    if (!link) return;
    if (link.ufrag) this.deadUfrags.add(link.ufrag);
    link.close();
    this.subscriber = null;
  }

  onSubscribeOffer(msg) {
    this._mark("subscribeOffer");
    if (this.deadUfrags.has(iceUfrag(msg.sdp))) return this.offerChain;
    // Offers are handled one at a time, in the order they came.
    this.offerChain = this.offerChain.then(() => this._answer(msg)).catch((e) => this._error(e, "subscribe"));
    return this.offerChain;
  }

  async _answer(msg) {
    const ufrag = iceUfrag(msg.sdp);
    if (this.deadUfrags.has(ufrag)) return;
    let link = this.subscriber;
    // A new ICE ufrag is a new connection on the server (RFC 8839 §5.4): a new one here too.
    const fresh = !link || link.closed || link.ufrag !== ufrag;
    if (fresh) {
      this._closeSubscriber();
      link = new Link(this._config(), { target: "subscribe" }, (l) => this._dead(l));
      link.ufrag = ufrag;
      link.tracks = new Map();
      link.pc.addEventListener("track", () => this._emitTracks());
      link.pc.addEventListener("connectionstatechange", () => {
        if (link.pc.connectionState === "connected") this._mark("subscribeConnected");
      });
      this.subscriber = link;
    }
    link.offerId = msg.offer_id;
    link.tracks = new Map((msg.tracks || []).map((t) => [t.mid, t]));
    const pc = link.pc;
    await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    if (fresh) await gatheringDone(pc, GATHER_WAIT_MS);
    if (link.closed) return;
    link.sdpSent = true;
    this._emitTracks();
    await this.signaling.request({ type: "answer", offer_id: msg.offer_id, sdp: pc.localDescription.sdp });
    if (link.closed) return;
    link.known = true;
    link.flush(this.signaling);
    this._mark("answered");
  }

  /** Ask the server for a new receiving connection (its offer comes with a new ufrag). */
  async resubscribe() {
    this._closeSubscriber();
    this._emitTracks();
    if (!this.signaling.ready) return;
    try {
      await this.signaling.request({ type: "resubscribe" });
    } catch (e) {
      this._error(e, "subscribe");
    }
  }

  /** What the receiving connection carries now: [{mid, participant, source, kind, track}]. */
  remoteTracks() {
    const link = this.subscriber;
    if (!link || link.closed) return [];
    const out = [];
    for (const t of link.pc.getTransceivers()) {
      const info = t.mid != null ? link.tracks.get(t.mid) : undefined;
      if (info && t.receiver.track) out.push({ ...info, mid: t.mid, track: t.receiver.track });
    }
    return out;
  }

  _emitTracks() {
    this.dispatchEvent(new CustomEvent("tracks", { detail: this.remoteTracks() }));
  }

  // --- recovering --------------------------------------------------------------

  _dead(link) {
    if (!this.signaling.ready) return; // replaced after the WebSocket comes back
    if (link === this.subscriber) this.resubscribe();
    else if (this.publishers.get(link.source) === link) this.publish(link.source);
  }

  /**
   * After `welcome` on a new socket. Resumed: keep what is still connected,
   * replace the rest. Joined afresh (resume expired): the server knows none
   * of our connections; replace all (its new `subscribe_offer` follows).
   */
  onReconnected(resumed) {
    if (!resumed) {
      this.reset();
      return;
    }
    for (const [source, link] of this.publishers) {
      if (!link.connected) this.publish(source);
    }
    if (this.subscriber && !this.subscriber.connected) this.resubscribe();
  }

  /** `media_reset` (or a fresh join): new publishing connections; the server offers a new receiving one. */
  reset() {
    const sources = new Set([...this.publishers.keys(), "camera"]);
    this._closeSubscriber();
    this._emitTracks();
    for (const source of sources) {
      if (this.streams[source]) this.publish(source);
    }
  }

  /** Close every connection (a dropped network, leaving, the end). */
  closeAll() {
    for (const link of this.publishers.values()) link.close();
    if (this.subscriber) {
      if (this.subscriber.ufrag) this.deadUfrags.add(this.subscriber.ufrag);
      this.subscriber.close();
    }
    this._emitTracks();
  }

  stopLocal() {
    for (const s of Object.values(this.streams)) s?.getTracks().forEach((t) => t.stop());
  }

  // --- statistics ----------------------------------------------------------------

  /** Per remote track: {participant, source, kind, mid, framesDecoded, totalSamplesReceived, ...}. */
  async stats() {
    const link = this.subscriber;
    if (!link || link.closed) return [];
    const out = [];
    let rtt = null;
    const all = await link.pc.getStats();
    all.forEach((s) => {
      if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime != null) rtt = s.currentRoundTripTime;
    });
    for (const t of link.pc.getTransceivers()) {
      const info = t.mid != null ? link.tracks.get(t.mid) : undefined;
      if (!info) continue;
      const row = {
        participant: info.participant,
        source: info.source,
        kind: info.kind,
        mid: t.mid,
        packetsReceived: 0,
        packetsLost: 0,
        jitter: 0,
        bytesReceived: 0,
        framesDecoded: 0,
        framesPerSecond: 0,
        totalSamplesReceived: 0,
        currentRoundTripTime: rtt,
      };
      const report = await t.receiver.getStats();
      report.forEach((s) => {
        if (s.type !== "inbound-rtp") return;
        for (const k of ["packetsReceived", "packetsLost", "jitter", "bytesReceived", "framesDecoded", "framesPerSecond", "totalSamplesReceived"]) {
          if (typeof s[k] === "number") row[k] = s[k];
        }
      });
      out.push(row);
    }
    return out;
  }

  /** Per publishing connection: {source, state, kind, packetsSent, active}. */
  async publishStats() {
    const out = [];
    for (const [source, link] of this.publishers) {
      for (const kind of ["audio", "video"]) {
        const sender = link.senders[kind];
        if (!sender) continue;
        let packetsSent = 0;
        (await sender.getStats()).forEach((s) => {
          if (s.type === "outbound-rtp") packetsSent += s.packetsSent || 0;
        });
        const enc = sender.getParameters().encodings?.[0];
        out.push({ source, kind, state: link.pc.connectionState, packetsSent, active: enc ? enc.active : null });
      }
    }
    return out;
  }

  connectionStates() {
    const out = {};
    for (const [source, link] of this.publishers) out[source] = link.pc.connectionState;
    out.subscribe = this.subscriber ? this.subscriber.pc.connectionState : null;
    return out;
  }

  _error(e, source) {
    const code = e && e.code ? e.code : "media_failed";
    if (code === "media_unavailable") this.unavailable = true;
    console.warn("media", source, e);
    this.dispatchEvent(new CustomEvent("error", { detail: { code, message: String(e?.message || e), source } }));
  }
}
