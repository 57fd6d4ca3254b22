// /devicecheck: the join page's device check on its own, for any day before a
// meeting (a join link works only from shortly before the start). "Save" keeps the
// choice where the join page reads it (devicecheck.js, localStorage) and releases
// the camera and microphone.
import { DeviceCheck } from "./devicecheck.js";

const root = document.getElementById("devicecheck");
const saved = document.getElementById("dc-saved");
const check = new DeviceCheck(root, ({ stream }) => {
  stream?.getTracks().forEach((track) => track.stop());
  saved.hidden = false;
  // Check again (another device, another connection) without reloading.
  check.reopen();
});
root.addEventListener("change", () => {
  saved.hidden = true;
});
check.start();
