// The device check before entering: camera preview, microphone level meter
// (WebAudio AnalyserNode), device and bandwidth choice. The choice is kept in
// localStorage so a room PC opens with the same devices next time.

import { t } from "./i18n.js";
import { captureConstraints } from "./media.js";

const STORE_KEY = "hoinghi.devices";
const METER_INTERVAL_MS = 100;

export const BANDWIDTH_TEXT = {
  full: t("Full"),
  low: t("Low bandwidth (3G/4G)"),
  audio: t("Audio only"),
};

export function savedChoice() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE_KEY) || "{}");
    return typeof saved === "object" && saved ? saved : {};
  } catch {
    return {};
  }
}

function saveChoice(choice) {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(choice));
  } catch {
    /* private mode: not kept */
  }
}

/**
 * Open the camera and microphone for `bandwidth`, falling back to what exists:
 * both, then the microphone alone, then nothing (the site still receives).
 * @returns {{stream: MediaStream|null, problem: string|null}}
 */
export async function openDevices(bandwidth, choice = {}) {
  const attempts = [captureConstraints(bandwidth, choice)];
  if (choice.cameraId || choice.micId) attempts.push(captureConstraints(bandwidth));
  if (bandwidth !== "audio") attempts.push(captureConstraints("audio"));
  let problem = null;
  for (const constraints of attempts) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      if (constraints.video === false && bandwidth !== "audio") {
        problem = t("Could not open the camera; using the microphone only.");
      }
      return { stream, problem };
    } catch (e) {
      problem =
        e.name === "NotAllowedError"
          ? t("The browser has not allowed the camera and microphone.")
          : t("Could not open the camera or microphone.");
    }
  }
  return { stream: null, problem };
}

/** A level meter on `element` (role=meter) for the first audio track of `stream`. */
export class LevelMeter {
  constructor(element) {
    this.element = element;
    this.bar = element.querySelector(".meter-bar");
    this.context = null;
    this.timer = null;
  }

  attach(stream) {
    this.detach();
    const track = stream?.getAudioTracks()[0];
    if (!track) return;
    this.context = new AudioContext();
    const source = this.context.createMediaStreamSource(new MediaStream([track]));
    const analyser = this.context.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    this.timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const v of samples) sum += v * v;
      const rms = Math.sqrt(sum / samples.length);
      // Speech at a normal distance is around -30 dBFS: make it fill about half.
      const db = 20 * Math.log10(rms || 1e-8);
      this.show(Math.min(1, Math.max(0, (db + 60) / 55)));
    }, METER_INTERVAL_MS);
  }

  show(level) {
    const pct = Math.round(level * 100);
    this.bar.style.width = `${pct}%`;
    this.element.setAttribute("aria-valuenow", String(pct));
    this.element.dataset.level = level.toFixed(3);
  }

  detach() {
    clearInterval(this.timer);
    this.timer = null;
    if (this.context) this.context.close();
    this.context = null;
    if (this.bar) this.show(0);
  }
}

export class DeviceCheck {
  /**
   * @param root the #devicecheck section
   * @param onJoin called with ({stream, bandwidth}) when "Join the meeting" is pressed
   */
  constructor(root, onJoin) {
    this.root = root;
    this.onJoin = onJoin;
    this.preview = root.querySelector("#dc-preview");
    this.cameraSelect = root.querySelector("#dc-camera");
    this.micSelect = root.querySelector("#dc-mic");
    this.message = root.querySelector("#dc-message");
    this.button = root.querySelector("#join-button");
    this.meter = new LevelMeter(root.querySelector("#dc-meter"));
    this.stream = null;
    this.choice = { bandwidth: "full", ...savedChoice() };
    this.opening = Promise.resolve();
    const radio = root.querySelector(`input[name="bandwidth"][value="${this.choice.bandwidth}"]`);
    if (radio) radio.checked = true;
    else this.choice.bandwidth = "full";
    root.querySelectorAll('input[name="bandwidth"]').forEach((r) =>
      r.addEventListener("change", () => {
        this.choice.bandwidth = r.value;
        this.reopen();
      }),
    );
    this.cameraSelect.addEventListener("change", () => {
      this.choice.cameraId = this.cameraSelect.value;
      this.reopen();
    });
    this.micSelect.addEventListener("change", () => {
      this.choice.micId = this.micSelect.value;
      this.reopen();
    });
    this.button.addEventListener("click", () => this.join());
    const speaker = root.querySelector("#dc-speaker");
    if (speaker) speaker.addEventListener("click", () => this.playTestSound(speaker));
  }

  /** A one-second 440 Hz tone through the default output: can the site hear? */
  async playTestSound(button) {
    const hint = this.root.querySelector("#dc-speaker-hint");
    button.disabled = true;
    try {
      const context = new AudioContext();
      const tone = context.createOscillator();
      const gain = context.createGain();
      tone.frequency.value = 440;
      gain.gain.setValueAtTime(0.2, context.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, context.currentTime + 1);
      tone.connect(gain).connect(context.destination);
      tone.start();
      tone.stop(context.currentTime + 1);
      if (hint) hint.textContent = t("Playing a tone: you should hear it now.");
      await new Promise((resolve) => {
        tone.onended = resolve;
      });
      await context.close();
      if (hint) hint.textContent = t("No sound? Check the speaker's volume and cable.");
    } catch {
      if (hint) hint.textContent = t("This browser cannot play the test sound.");
    } finally {
      button.disabled = false;
    }
  }

  start() {
    this.root.hidden = false;
    this.reopen();
  }

  reopen() {
    this.opening = this.opening.then(() => this._open());
    return this.opening;
  }

  async _open() {
    this.button.disabled = true;
    this._stop();
    const { stream, problem } = await openDevices(this.choice.bandwidth, this.choice);
    this.stream = stream;
    this.message.textContent = problem || "";
    this.preview.srcObject = stream && stream.getVideoTracks().length ? stream : null;
    this.preview.hidden = !this.preview.srcObject;
    this.root.querySelector("#dc-no-video").hidden = Boolean(this.preview.srcObject);
    this.meter.attach(stream);
    await this._listDevices();
    this.button.disabled = false;
  }

  async _listDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const current = (kind) => this.stream?.getTracks().find((track) => track.kind === kind)?.getSettings().deviceId;
    fill(this.cameraSelect, devices.filter((d) => d.kind === "videoinput"), current("video"), (n) =>
      t("Camera {n}", { n }),
    );
    fill(this.micSelect, devices.filter((d) => d.kind === "audioinput"), current("audio"), (n) =>
      t("Microphone {n}", { n }),
    );
    this.cameraSelect.disabled = this.choice.bandwidth === "audio";
  }

  _stop() {
    this.meter.detach();
    this.stream?.getTracks().forEach((track) => track.stop());
    this.stream = null;
  }

  async join() {
    const clickedAt = performance.now();
    await this.opening;
    this.button.disabled = true;
    this.meter.detach();
    this.preview.srcObject = null;
    saveChoice(this.choice);
    this.onJoin({ stream: this.stream, bandwidth: this.choice.bandwidth, clickedAt });
  }
}

/** Options for `devices`; one without a label (no permission yet) is named `unnamed(n)`. */
function fill(select, devices, selectedId, unnamed) {
  select.replaceChildren();
  devices.forEach((d, i) => {
    const option = document.createElement("option");
    option.value = d.deviceId;
    option.textContent = d.label || unnamed(i + 1);
    option.selected = d.deviceId === selectedId;
    select.append(option);
  });
  if (!devices.length) {
    const option = document.createElement("option");
    option.textContent = t("No device");
    select.append(option);
  }
}
