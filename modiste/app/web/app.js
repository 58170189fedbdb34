// The shopper's page: sign in with a token, then recommendations, outfits, designs, the catalogue
// and the profile, all from the JSON API of the server that serves this file. One view shows at a
// time, chosen by the URL's hash (#for-you, #outfits, #designs, #catalogue, #profile); the catalogue
// is open to anyone, the other views ask for a token first.

import { api, apiPicture, query, token } from "./api.js";
import { h, icon, itemCard, notice, picture, toast } from "./ui.js";

const $ = (id) => document.getElementById(id);
const VIEWS = ["for-you", "outfits", "designs", "catalogue", "profile"];
const PUBLIC_VIEWS = new Set(["catalogue"]);
const FEEDBACK = { like: "Like", dislike: "Dislike", buy: "Buy" };
const GIVEN = { like: "Liked", dislike: "Disliked", buy: "Bought" };
const RECOMMENDED = 10;
const RECENT = 5;
const PAGE = 24;
const MAX_OUTFIT = 8;
const COMPOSE_DEFAULT = ["top", "trousers", "shoes", "bag"];
const DESIGN_DEFAULT = "dress";

const state = {
  profile: null, // GET /me while signed in
  shownRecs: null, // {category, ids} on screen: what a refresh brings in is marked "New"
  recsTicket: 0, // only the latest request for recommendations may draw them
  outfit: [], // the items of "Complete the look", in order
  search: null, // {items, total} of the catalogue's last search
  items: new Map(), // item_id -> summary, of every item seen, for the feedback list
  designs: null, // GET /me/designs: the latest request's first, each request's best first
  freshDesigns: new Set(), // the design ids of the latest request made here, marked "New"
  designPictures: new Map(), // design_id -> a promise of its picture as a data: URL
};

const when = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });

// -- feedback -------------------------------------------------------------------------------------

function latestFeedback(itemId) {
  return state.profile?.feedback.findLast((event) => event.item_id === itemId);
}

function feedbackButtons(item) {
  const latest = latestFeedback(item.item_id);
  return Object.entries(FEEDBACK).map(([kind, label]) => h("button", {
    type: "button", class: `act ${kind}`, "data-kind": kind, "aria-pressed": String(latest?.kind === kind),
    "aria-label": `${label}: ${item.description}`, title: label,
    onclick: () => toggleFeedback(item, kind),
  }, icon(kind), h("span", {}, label)));
}

function styleButton(item) {
  return h("button", {
    type: "button", class: "act style", "aria-label": `Style it: ${item.description}`,
    title: "Build an outfit around it", onclick: () => styleIt(item),
  }, icon("outfit"), h("span", {}, "Style it"));
}

// A card's buttons: none for a visitor; feedback, and adding it to an outfit, for a shopper.
function actions(item) {
  return state.profile ? [...feedbackButtons(item), styleButton(item)] : [];
}

function card(item, options = {}) {
  state.items.set(item.item_id, item);
  return itemCard(item, { ...options, actions: actions(item) });
}

// Pressing a kind gives it; pressing the kind already given takes it back.
async function toggleFeedback(item, kind) {
  const latest = latestFeedback(item.item_id);
  try {
    if (latest?.kind === kind) {
      await api(`/me/feedback/${encodeURIComponent(latest.feedback_id)}`, { method: "DELETE" });
      toast(`Took back your ${kind}: ${item.description}`);
    } else {
      const event = await api("/me/feedback", { method: "POST", body: { item_id: item.item_id, kind } });
      toast(`${GIVEN[kind]}: ${item.description}`, { action: { label: "Undo", run: () => takeBack(event.feedback_id) } });
    }
    await afterFeedback();
  } catch (error) {
    failed(error);
  }
}

async function takeBack(feedbackId) {
  try {
    await api(`/me/feedback/${encodeURIComponent(feedbackId)}`, { method: "DELETE" });
    toast("Feedback taken back");
    await afterFeedback();
  } catch (error) {
    failed(error);
  }
}

async function afterFeedback() {
  state.profile = await api("/me");
  for (const button of document.querySelectorAll(".card button[data-kind]")) {
    const kind = latestFeedback(button.closest(".card").dataset.item)?.kind;
    button.setAttribute("aria-pressed", String(kind === button.dataset.kind));
  }
  renderFeedback();
  if (currentView() === "for-you") await loadRecommendations({ markNew: true });
}

// A failed call: a token that stopped working signs out; anything else is said in the toast.
function failed(error) {
  if (error.status === 401) signOut(`Your token no longer works: ${error.message}. Sign in again.`);
  else toast(error.message, { tone: "error" });
}

// What a part of the page shows when its call failed: "off" (503) calmly, other errors as errors
// (and a token that stopped working signs out).
function problem(error, offTitle) {
  if (error.off) return notice(offTitle, error.message);
  if (error.status === 401) failed(error);
  return notice("That did not work", error.message, "error");
}

// -- for you --------------------------------------------------------------------------------------

function renderForYou() {
  const body = Object.entries(state.profile.body ?? {});
  $("body-chips").replaceChildren(...body.map(([label, value]) =>
    h("li", {}, h("span", { class: "chip-label" }, label.replaceAll("_", " ")), " ", value)));
  const recent = state.profile.history.slice(-RECENT).reverse();
  $("recent").replaceChildren(...(recent.length ? recent.map((item) => card(item))
    : [notice("No history yet", "What you buy and like here shapes your recommendations.")]));
}

async function loadRecommendations({ markNew = false } = {}) {
  const category = $("rec-category").value;
  const grid = $("recs");
  const status = $("recs-status");
  const ticket = ++state.recsTicket;
  grid.setAttribute("aria-busy", "true");
  try {
    const answer = await api(`/me/recommendations${query({ k: RECOMMENDED, category })}`);
    if (ticket !== state.recsTicket) return;
    const before = markNew && state.shownRecs?.category === category ? new Set(state.shownRecs.ids) : null;
    state.shownRecs = { category, ids: answer.items.map((item) => item.item_id) };
    grid.replaceChildren(...answer.items.map((item) =>
      card(item, { badge: before && !before.has(item.item_id) ? "New" : null })));
    if (!answer.items.length) status.textContent = "Nothing left to recommend here.";
    else status.textContent = answer.refitted ? "Tuned to your likes, dislikes and buys." : "Picked from your history.";
  } catch (error) {
    if (ticket !== state.recsTicket) return;
    status.textContent = "";
    grid.replaceChildren(problem(error, "Recommendations are off"));
  } finally {
    if (ticket === state.recsTicket) grid.setAttribute("aria-busy", "false");
  }
}

// -- outfits --------------------------------------------------------------------------------------

function styleIt(item) {
  if (!state.outfit.some((chosen) => chosen.item_id === item.item_id)) {
    if (state.outfit.length >= MAX_OUTFIT) {
      toast(`An outfit holds at most ${MAX_OUTFIT} items.`, { tone: "error" });
      return;
    }
    state.outfit.push(item);
    const chosen = new Set(state.outfit.map((i) => i.category));
    const missing = [...$("complete-category").options].find((option) => !chosen.has(option.value));
    if (missing) $("complete-category").value = missing.value;
  }
  renderOutfit();
  if (currentView() === "outfits") suggest();
  else location.hash = "#outfits"; // shows the view, which suggests
}

function renderOutfit() {
  const shelf = $("outfit-so-far");
  if (!state.outfit.length) {
    shelf.replaceChildren(notice("No item yet", "Press Style it on any card to start an outfit from it."));
    return;
  }
  shelf.replaceChildren(...state.outfit.map((item) => h("figure", { class: "piece", "data-item": item.item_id },
    picture(item),
    h("figcaption", {}, item.category),
    h("button", {
      type: "button", class: "remove", "aria-label": `Remove from the outfit: ${item.description}`, title: "Remove",
      onclick: () => {
        state.outfit = state.outfit.filter((i) => i.item_id !== item.item_id);
        renderOutfit();
        $("complete-results").replaceChildren();
        $("complete-status").textContent = "";
      },
    }, icon("remove")))));
}

async function suggest() {
  const form = $("complete-form");
  const results = $("complete-results");
  const status = $("complete-status");
  if (!state.outfit.length) {
    results.replaceChildren();
    status.textContent = "Pick an item first: press Style it on any card.";
    return;
  }
  if (!form.reportValidity()) return;
  const fields = new FormData(form);
  const category = fields.get("category");
  status.textContent = "Looking for the best match…";
  try {
    const items = await api("/me/outfits/complete", {
      method: "POST", body: { item_ids: state.outfit.map((i) => i.item_id), category, k: Number(fields.get("k")) },
    });
    status.textContent = `${items.length} × ${category} to go with your outfit, best first.`;
    results.replaceChildren(...items.map((item) => card(item)));
  } catch (error) {
    status.textContent = "";
    results.replaceChildren(problem(error, "Outfits are off"));
  }
}

async function compose() {
  const result = $("compose-result");
  const status = $("compose-status");
  const categories = [...document.querySelectorAll("#compose-categories input:checked")].map((box) => box.value);
  if (!categories.length) {
    status.textContent = "Choose at least one category.";
    return;
  }
  status.textContent = "Composing…";
  try {
    const outfit = await api("/me/outfits/compose", { method: "POST", body: { categories } });
    status.textContent = "";
    result.replaceChildren(
      h("p", { class: "score" },
        h("span", {}, "Compatibility ", h("strong", { id: "compatibility" }, outfit.compatibility.toFixed(2))),
        h("span", {}, "Overall score ", h("strong", {}, outfit.score.toFixed(2))),
        h("span", { class: "muted" }, "the outfit model's scores: higher goes together better")),
      h("div", { class: "grid" }, outfit.items.map((item) => card(item, { meta: `your taste ${item.taste.toFixed(2)}` }))));
  } catch (error) {
    status.textContent = "";
    result.replaceChildren(problem(error, "Outfits are off"));
  }
}

// -- the catalogue --------------------------------------------------------------------------------

async function search({ more = false } = {}) {
  const fields = new FormData($("search-form"));
  const q = fields.get("q").trim();
  const category = fields.get("category");
  const offset = more ? state.search.items.length : 0;
  const status = $("search-status");
  status.textContent = "Searching…";
  try {
    const page = await api(`/items${query({ q, category, offset, limit: PAGE })}`);
    state.search = { items: more ? [...state.search.items, ...page.items] : page.items, total: page.total };
    const what = `${page.total.toLocaleString("en")} ${page.total === 1 ? "item" : "items"}`;
    status.textContent = q ? `${what} matching “${q}”` : what;
    if (more) $("search-results").append(...page.items.map((item) => card(item)));
    else renderSearch();
  } catch (error) {
    status.textContent = "";
    $("search-results").replaceChildren(problem(error, "Search is off"));
  }
}

function renderSearch() {
  if (!state.search) return;
  const { items, total } = state.search;
  $("search-results").replaceChildren(...(items.length ? items.map((item) => card(item))
    : [notice("Nothing matches", "Try fewer words, or another category.")]));
  $("search-more").hidden = items.length >= total;
}

// -- designs --------------------------------------------------------------------------------------

// A design's picture needs the token, so it is fetched once and kept as a data: URL.
function designPicture(design) {
  if (!state.designPictures.has(design.design_id)) {
    const loading = apiPicture(design.image_url);
    loading.catch(() => state.designPictures.delete(design.design_id)); // tried again next time
    state.designPictures.set(design.design_id, loading);
  }
  return state.designPictures.get(design.design_id);
}

function designCard(design, src) {
  const what = `your ${design.category} design`;
  return h("article", { class: "card", "data-design": design.design_id },
    h("div", { class: "frame" },
      src ? h("div", { class: "picture" },
        h("img", { src, alt: `A new ${design.category}, designed for you`, width: 64, height: 64 }))
        : h("div", { class: "picture placeholder", "aria-hidden": "true" }, design.category),
      state.freshDesigns.has(design.design_id) && h("span", { class: "badge" }, "New")),
    h("div", { class: "body" },
      h("p", { class: "category" }, design.category),
      h("p", {
        class: "meta scores",
        title: "Your taste: how much your taste model likes it (higher: more your style). "
          + "Realism: how far it is from looking like the catalogue's pictures (lower: more real).",
      }, `Your taste ${design.score.toFixed(2)} · realism ${design.realism.toFixed(2)}`),
      h("time", { class: "meta", datetime: design.created_at }, when(design.created_at))),
    h("div", { class: "actions single" }, h("button", {
      type: "button", class: "act delete", "aria-label": `Delete ${what}`, title: "Delete",
      onclick: () => deleteDesign(design),
    }, icon("remove"), h("span", {}, "Delete"))));
}

async function renderDesigns() {
  const designs = state.designs;
  if (!designs.length) {
    $("designs").replaceChildren(notice("No designs yet", "Pick a category and press Design for me."));
    return;
  }
  const pictures = await Promise.all(designs.map((design) => designPicture(design).catch(() => null)));
  if (designs !== state.designs) return; // a newer list is on its way
  $("designs").replaceChildren(...designs.map((design, i) => designCard(design, pictures[i])));
}

// A failed call for designs: "off" (503) calmly, with no form that cannot work; anything else as an error.
function designsFailed(error) {
  $("design-panel").hidden = error.off;
  $("designs").replaceChildren(problem(error, "Designs are off"));
}

async function loadDesigns() {
  try {
    state.designs = await api("/me/designs");
    $("design-panel").hidden = false;
    await renderDesigns();
  } catch (error) {
    designsFailed(error);
  }
}

async function createDesigns() {
  const form = $("design-form");
  if (!form.reportValidity()) return;
  const fields = new FormData(form);
  const category = fields.get("category");
  const n = Number(fields.get("n"));
  const button = form.querySelector("button[type=submit]");
  const status = $("design-status");
  const grid = $("designs");
  button.disabled = true;
  grid.setAttribute("aria-busy", "true");
  status.textContent = `Drawing ${n} × ${category} for you…`;
  try {
    const made = await api("/me/designs", { method: "POST", body: { category, n } });
    state.freshDesigns = new Set(made.map((design) => design.design_id));
    state.designs = [...made, ...(state.designs ?? [])];
    await renderDesigns();
    status.textContent = `${made.length} new × ${category}, best first.`;
  } catch (error) {
    status.textContent = "";
    if (error.off) designsFailed(error);
    else failed(error);
  } finally {
    button.disabled = false;
    grid.setAttribute("aria-busy", "false");
  }
}

async function deleteDesign(design) {
  try {
    await api(`/me/designs/${encodeURIComponent(design.design_id)}`, { method: "DELETE" });
    toast(`Deleted ${design.category} design`);
  } catch (error) {
    if (error.status !== 404) { // 404: gone already
      failed(error);
      return;
    }
  }
  state.designs = state.designs.filter((d) => d.design_id !== design.design_id);
  state.designPictures.delete(design.design_id);
  await renderDesigns();
}

// -- the profile ----------------------------------------------------------------------------------

function renderProfile() {
  const body = Object.entries(state.profile.body ?? {});
  $("body-list").replaceChildren(...(body.length
    ? body.flatMap(([label, value]) => [h("dt", {}, label.replaceAll("_", " ")), h("dd", {}, value)])
    : [h("dd", {}, "No body labels in this dataset.")]));
  renderFeedback();
  const history = [...state.profile.history].reverse();
  $("history").replaceChildren(...(history.length ? history.map((item) => card(item))
    : [notice("No history yet", "What you buy here is kept in your feedback.")]));
}

async function itemSummary(itemId) {
  if (!state.items.has(itemId)) {
    try {
      state.items.set(itemId, await api(`/items/${encodeURIComponent(itemId)}`));
    } catch {
      return null; // taken off the shelves since
    }
  }
  return state.items.get(itemId);
}

async function renderFeedback() {
  const list = $("feedback-list");
  const events = [...state.profile.feedback].reverse();
  if (!events.length) {
    list.replaceChildren(h("li", { class: "empty" }, "Nothing yet: like, dislike or buy items from any card."));
    return;
  }
  const items = await Promise.all(events.map((event) => itemSummary(event.item_id)));
  list.replaceChildren(...events.map((event, i) => {
    const item = items[i] ?? { item_id: event.item_id, category: "", description: event.item_id, image_url: null };
    return h("li", { "data-feedback": event.feedback_id },
      picture(item),
      h("div", { class: "what" },
        h("span", { class: `kind ${event.kind}` }, GIVEN[event.kind]),
        h("span", { class: "description" }, item.description),
        h("time", { datetime: event.created_at }, when(event.created_at))),
      h("button", {
        type: "button", class: "ghost", "aria-label": `Take back: ${GIVEN[event.kind]} ${item.description}`,
        onclick: () => takeBack(event.feedback_id),
      }, "Take back"));
  }));
}

// -- signing in and out, and the views ------------------------------------------------------------

function currentView() {
  const view = location.hash.slice(1);
  return VIEWS.includes(view) ? view : "for-you";
}

async function show() {
  const view = currentView();
  const signInFirst = !state.profile && !PUBLIC_VIEWS.has(view);
  for (const link of document.querySelectorAll(".tabs a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  $("sign-in").hidden = !signInFirst;
  for (const name of VIEWS) $(`view-${name}`).hidden = signInFirst || name !== view;
  if (signInFirst) return;
  if (view === "for-you") {
    renderForYou();
    await loadRecommendations();
  } else if (view === "outfits") {
    renderOutfit();
    if (state.outfit.length) await suggest();
  } else if (view === "designs") {
    await loadDesigns();
  } else if (view === "catalogue") {
    if (state.search) renderSearch();
    else await search();
  } else {
    renderProfile();
  }
}

function renderAccount() {
  $("account").hidden = !state.profile;
  $("visitor").hidden = Boolean(state.profile);
  $("who").textContent = state.profile ? state.profile.user_id : "";
}

async function signIn(event) {
  event.preventDefault();
  const input = $("token-input");
  const error = $("sign-in-error");
  const value = input.value.trim();
  input.removeAttribute("aria-invalid");
  error.textContent = "";
  if (!value) {
    error.textContent = "Paste your token first.";
    input.setAttribute("aria-invalid", "true");
    return;
  }
  try {
    state.profile = await api("/me", { signedWith: value });
  } catch (failure) {
    error.textContent = failure.status === 401 ? `That token was not accepted: ${failure.message}.` : failure.message;
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  token.set(value);
  input.value = "";
  renderAccount();
  toast(`Signed in as ${state.profile.user_id}`);
  await show();
}

function signOut(message) {
  token.clear();
  Object.assign(state, {
    profile: null, shownRecs: null, outfit: [], designs: null, freshDesigns: new Set(), designPictures: new Map(),
  });
  for (const id of ["recs", "recent", "complete-results", "compose-result", "designs", "history", "feedback-list"]) {
    $(id).replaceChildren();
  }
  $("design-status").textContent = "";
  $("sign-in-error").textContent = message ?? "";
  renderAccount();
  renderSearch();
  if (!message) toast("Signed out");
  show();
}

function fillChoices(vocabulary) {
  const options = () => vocabulary.categories.map((c) => h("option", { value: c }, c));
  $("rec-category").append(...options());
  $("search-category").append(...options());
  $("complete-category").append(...options());
  $("design-category").append(...options());
  if (vocabulary.categories.includes(DESIGN_DEFAULT)) $("design-category").value = DESIGN_DEFAULT;
  const checked = COMPOSE_DEFAULT.filter((c) => vocabulary.categories.includes(c));
  const preset = checked.length ? checked : vocabulary.categories.slice(0, 3);
  $("compose-categories").replaceChildren(...vocabulary.categories.map((c) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "categories", value: c, checked: preset.includes(c) }), c)));
}

async function start() {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut());
  $("rec-category").addEventListener("change", () => loadRecommendations());
  $("complete-form").addEventListener("submit", (event) => { event.preventDefault(); suggest(); });
  $("outfit-clear").addEventListener("click", () => {
    state.outfit = [];
    renderOutfit();
    $("complete-results").replaceChildren();
    $("complete-status").textContent = "";
  });
  $("compose-form").addEventListener("submit", (event) => { event.preventDefault(); compose(); });
  $("design-form").addEventListener("submit", (event) => { event.preventDefault(); createDesigns(); });
  $("search-form").addEventListener("submit", (event) => { event.preventDefault(); search(); });
  $("search-more").addEventListener("click", () => search({ more: true }));
  window.addEventListener("hashchange", async () => {
    await show();
    $("main").focus({ preventScroll: true });
  });

  try {
    const [health, vocabulary] = await Promise.all([api("/health"), api("/vocabulary")]);
    $("dataset").textContent = `${health.dataset} · ${health.items.toLocaleString("en")} items`;
    fillChoices(vocabulary);
  } catch (error) {
    $("main").replaceChildren(notice("The shop is closed", error.message, "error"));
    return;
  }
  if (token.get()) {
    try {
      state.profile = await api("/me");
    } catch (error) {
      if (error.status === 401 || error.status === 403) {
        token.clear();
        $("sign-in-error").textContent = `Your saved token no longer works: ${error.message}.`;
      } else {
        toast(error.message, { tone: "error" });
      }
    }
  }
  renderAccount();
  await show();
  document.body.dataset.ready = "true";
}

start();
