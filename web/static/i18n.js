// The client's text in the page's language. The server embeds, for every
// msgid marked t("...") in these modules, its translation as JSON in
// <script type="application/json" id="i18n-messages"> (web/i18n.py: the same
// gettext catalogs as the pages); msgids are English, Vietnamese is the default.
//
// Mark every visible string as t("literal"), with {name} placeholders filled
// from an object: t("Speaking: {name}", { name }). Only a string literal is
// extracted (pybabel, see README "Translations"), never a variable or a
// template literal.

function embedded() {
  const node = document.getElementById("i18n-messages");
  try {
    const data = node ? JSON.parse(node.textContent) : {};
    return data && typeof data === "object" ? data : {};
  } catch {
    return {};
  }
}

const data = embedded();
const messages = data.messages && typeof data.messages === "object" ? data.messages : {};

/** The page's language ("vi" or "en"), for Intl formats. */
export const locale = data.locale || document.documentElement.lang || "vi";

/**
 * `message` in the page's language (the msgid itself when it has no translation),
 * with each {name} replaced by `params[name]`.
 */
export function t(message, params) {
  const text = Object.hasOwn(messages, message) && messages[message] ? messages[message] : message;
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (Object.hasOwn(params, name) ? String(params[name]) : whole));
}
