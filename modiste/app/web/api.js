// The JSON API of the same server, its pictures that need a token, and the shopper's token (kept in
// localStorage).
// Every failure becomes an ApiError whose message is the server's own `detail`, in words.

const TOKEN_KEY = "modiste.token";

export const token = {
  get: () => localStorage.getItem(TOKEN_KEY),
  set: (value) => localStorage.setItem(TOKEN_KEY, value),
  clear: () => localStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }

  // 503: the server runs without the model this needs.
  get off() {
    return this.status === 503;
  }
}

// A 4xx `detail` is a sentence, or a list of {loc, msg} naming each bad field.
function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).filter((part) => part !== "body").join(".")}: ${d.msg}`).join("; ");
  }
  return "the server refused the request";
}

// One call; a failed one throws an ApiError. `signedWith` sends this token instead of the stored one
// (to check a token before keeping it).
async function send(path, { method = "GET", body, signedWith, accept = "application/json" } = {}) {
  const headers = { Accept: accept };
  const bearer = signedWith ?? token.get();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let answer;
  try {
    answer = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "the server cannot be reached: is `modiste serve` running?");
  }
  if (!answer.ok) {
    const data = await answer.json().catch(() => null);
    throw new ApiError(answer.status, data ? describe(data.detail) : `HTTP ${answer.status}`);
  }
  return answer;
}

export async function api(path, options) {
  const answer = await send(path, options);
  if (answer.status === 204) return null;
  return answer.json().catch(() => null);
}

// A picture that needs the token (an <img> cannot send one), as a data: URL: the page's
// Content-Security-Policy lets pictures come from the server itself or from data: URLs only.
export async function apiPicture(path) {
  const blob = await (await send(path, { accept: "image/png" })).blob();
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new ApiError(0, "the picture could not be read"));
    reader.readAsDataURL(blob);
  });
}

export const query = (params) => {
  const kept = Object.entries(params).filter(([, value]) => value !== "" && value !== null && value !== undefined);
  return kept.length ? `?${new URLSearchParams(kept)}` : "";
};
