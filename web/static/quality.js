// Connection quality of one remote site from getStats() deltas: good / fair / poor.
// Thresholds follow common VoIP practice (ITU-T G.114 one-way delay ~150 ms;
// loss above a few percent is audible and visible).

import { t } from "./i18n.js";

/** The badge of each class ("unknown" shows none). */
export const QUALITY_TEXT = {
  good: t("Connection: good"),
  fair: t("Connection: fair"),
  poor: t("Connection: poor"),
  unknown: "",
};

/**
 * @param prev the previous rows of this participant ({kind, packetsReceived, packetsLost}) or null
 * @param rows the current rows (from Media.stats()) of this participant
 * @returns "good" | "fair" | "poor" | "unknown"
 */
export function classify(prev, rows) {
  if (!rows.length) return "unknown";
  let received = 0;
  let lost = 0;
  let jitter = 0;
  let rtt = null;
  let fps = null;
  for (const row of rows) {
    const before = prev?.find((p) => p.mid === row.mid);
    const got = Math.max(0, row.packetsReceived - (before?.packetsReceived ?? 0));
    received += got;
    lost += Math.max(0, row.packetsLost - (before?.packetsLost ?? 0));
    jitter = Math.max(jitter, row.jitter || 0);
    if (row.currentRoundTripTime != null) rtt = row.currentRoundTripTime;
    // A camera switched off sends nothing: that is not a bad network.
    if (row.kind === "video" && row.source === "camera" && got > 0) fps = row.framesPerSecond || 0;
  }
  if (received + lost === 0) return "unknown";
  const loss = lost / (received + lost);
  if (loss > 0.05 || jitter > 0.1 || (rtt != null && rtt > 0.4) || (fps != null && fps < 5)) return "poor";
  if (loss > 0.01 || jitter > 0.03 || (rtt != null && rtt > 0.15) || (fps != null && fps < 12)) return "fair";
  return "good";
}
