// Small DOM helpers: an element builder, icons, item cards, notices and the toast.
// Everything the server sends is put in as text (never as HTML), so no item can inject markup.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  el.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return el;
}

// Stroke icons on a 24x24 grid (paths after Feather, MIT).
const ICONS = {
  like: ["M20.8 4.6a5.5 5.5 0 0 0-7.8 0L12 5.7l-1-1.1a5.5 5.5 0 0 0-7.8 7.8l1 1.1 7.8 7.7 7.8-7.7 1-1.1a5.5 5.5 0 0 0 0-7.8z"],
  dislike: ["M10 15v4a3 3 0 0 0 3 3l4-9V2H5.7a2 2 0 0 0-2 1.7l-1.4 9a2 2 0 0 0 2 2.3z", "M17 2h2.7A2.3 2.3 0 0 1 22 4v7a2.3 2.3 0 0 1-2.3 2H17"],
  buy: ["M6 2 3 6v14a2 2 0 0 0 2 2h14a2 2 0 0 0 2-2V6l-3-4z", "M3 6h18", "M16 10a4 4 0 0 1-8 0"],
  outfit: ["M12 2 2 7l10 5 10-5-10-5z", "M2 17l10 5 10-5", "M2 12l10 5 10-5"],
  remove: ["M18 6 6 18", "M6 6l12 12"],
};

export function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon");
  for (const d of ICONS[name]) {
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

export function picture(item) {
  if (!item.image_url) return h("div", { class: "picture placeholder", "aria-hidden": "true" }, item.category);
  return h("div", { class: "picture" },
    h("img", { src: item.image_url, alt: item.description, width: 64, height: 64, decoding: "async" }));
}

// An item card: picture, category, description; `badge` marks it (e.g. "New"), `meta` adds a line
// under the description, `actions` are its buttons.
export function itemCard(item, { badge, meta, actions = [] } = {}) {
  return h("article", { class: "card", "data-item": item.item_id },
    h("div", { class: "frame" }, picture(item), badge && h("span", { class: "badge" }, badge)),
    h("div", { class: "body" },
      h("p", { class: "category" }, item.category),
      h("p", { class: "description" }, item.description),
      meta && h("p", { class: "meta" }, meta)),
    actions.length > 0 && h("div", { class: "actions" }, actions));
}

export function notice(title, text, tone = "info") {
  return h("div", { class: `notice ${tone}`, role: tone === "error" ? "alert" : "note" },
    h("p", { class: "notice-title" }, title), text && h("p", {}, text));
}

let toastTimer;

// A short message at the bottom of the screen, with an optional action (e.g. Undo). It goes after a
// while (longer with an action), but not while the pointer or the keyboard focus is on it.
export function toast(message, { action, tone = "info" } = {}) {
  const region = document.getElementById("toast");
  clearTimeout(toastTimer);
  region.replaceChildren(h("div", { class: `toast-body ${tone}` },
    h("span", {}, message),
    action && h("button", { type: "button", class: "link", onclick: () => { region.replaceChildren(); action.run(); } },
      action.label)));
  const hide = () => {
    if (region.matches(":hover, :focus-within")) toastTimer = setTimeout(hide, 1000);
    else region.replaceChildren();
  };
  toastTimer = setTimeout(hide, action ? 12000 : 6000);
}
