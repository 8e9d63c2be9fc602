// How the dashboard words a call in the rows its script writes from live events: the same
// as the server's templates (dashboard/templatetags/wording.py). The words of states and
// end reasons come from the page (<body data-call-words>); phone numbers are formatted here.

const ONE_DIGIT_CODES = new Set(["1", "7"]);
const TWO_DIGIT_CODES = new Set((
  "20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 " +
  "60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98").split(" "));
const PHONE_JID_DOMAINS = new Set(["s.whatsapp.net", "c.us"]);
const E164_DIGITS = /^[1-9][0-9]{5,14}$/;
const SEPARATORS = /[\s().-]/g;

let words = null;

function callWords() {
  if (!words) {
    try {
      words = JSON.parse(document.body.dataset.callWords || "{}");
    } catch {
      words = {};
    }
  }
  return words;
}

export function stateWords(state) {
  return callWords().states?.[state] || state || "";
}

export function endReasonWords(reason) {
  return callWords().endReasons?.[reason] || reason || "";
}

function phoneDigits(address) {
  const text = String(address || "").trim();
  let user;
  if (/^sips?:/i.test(text)) {
    user = text.slice(text.indexOf(":") + 1).split("@")[0].split(";")[0];
    if (!user.startsWith("+")) return null;
  } else if (text.includes("@")) {
    const at = text.indexOf("@");
    if (!PHONE_JID_DOMAINS.has(text.slice(at + 1).toLowerCase())) return null;
    user = text.slice(0, at).split(":")[0];
  } else if (text.startsWith("+")) {
    user = text;
  } else {
    return null;
  }
  const digits = user.replace(SEPARATORS, "").replace(/^\+/, "");
  return E164_DIGITS.test(digits) ? digits : null;
}

function groupSizes(length) {
  if (length <= 4) return [length];
  if (length === 5) return [2, 3];
  const sizes = new Array(Math.floor(length / 3)).fill(3);
  if (length % 3 >= 1) sizes[sizes.length - 1] = 4;
  if (length % 3 === 2) sizes[sizes.length - 2] = 4;
  return sizes;
}

// "15550000006@s.whatsapp.net" → "+1 555 000 0006"; other addresses as they are.
export function formatPhone(address) {
  const digits = phoneDigits(address);
  if (digits === null) return address || "";
  let codeLength = 3;
  if (ONE_DIGIT_CODES.has(digits[0])) codeLength = 1;
  else if (TWO_DIGIT_CODES.has(digits.slice(0, 2))) codeLength = 2;
  const national = digits.slice(codeLength);
  const groups = [];
  let at = 0;
  for (const size of groupSizes(national.length)) {
    groups.push(national.slice(at, at + size));
    at += size;
  }
  return `+${digits.slice(0, codeLength)} ${groups.join(" ")}`;
}
