// Times as the secretariat types them: a day and "HH:MM" in Vietnam time (UTC+7, no
// daylight saving), sent to the API as ISO 8601 with their offset.

/** "2026-11-30" and "23:30" in Vietnam time as ISO 8601 with its offset. */
export function localTime(day, hhmm) {
  return `${day}T${hhmm}:00+07:00`;
}

/** The day after "2026-11-30" ("2026-12-01"): a meeting may run past midnight. */
export function nextDay(day) {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}
