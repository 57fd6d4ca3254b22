// "Starts in 12 minutes": the countdown text of /today and of the lobby, with the same
// msgids and rounding (whole minutes, up) as web/pages_today.py's countdown_text.
import { t } from "./i18n.js";

/** The text for a start at `startsAt` (ms since the epoch) seen at `now`; "" once begun. */
export function startsInText(startsAt, now) {
  const seconds = (startsAt - now) / 1000;
  if (!(seconds > 0)) return "";
  const minutes = Math.ceil(seconds / 60);
  if (minutes === 1) return t("Starts in 1 minute");
  if (minutes < 60) return t("Starts in {n} minutes", { n: minutes });
  return t("Starts in {h} h {m} min", { h: Math.floor(minutes / 60), m: minutes % 60 });
}
