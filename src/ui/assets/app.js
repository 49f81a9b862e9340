// hookd's admin UI and customer portal: the shell, sign-in and the router.
//
// Routing is on the path (`/ui/app/{app}/msg`): hookd serves the shell for every /ui path,
// so every page has a link of its own. The token is kept in sessionStorage (gone when the
// tab closes) and sent to the API; an app portal link brings its token in the fragment
// (`/ui/portal/{app}#token=…`), which is stored and then taken out of the address.
//
// What a page shows is what the API answers for the token: a portal token gets its own
// application's pages, and the API refuses it everything else (404 for another
// application, 403 for the admin pages), which the page then shows.

import { h, fill, link, field } from "./dom.js";
import { api, token, signIn, signOut, failure, act, ApiError } from "./api.js";
import * as admin from "./admin.js";
import * as application from "./application.js";
import * as endpoint from "./endpoint.js";
import * as messages from "./messages.js";
import * as ingest from "./ingest.js";

const ROUTES = [
  [/^\/ui\/?$/, admin.overview],
  [/^\/ui\/apps$/, application.list],
  [/^\/ui\/app\/([^/]+)$/, application.show],
  [/^\/ui\/app\/([^/]+)\/endpoint\/([^/]+)$/, endpoint.show],
  [/^\/ui\/app\/([^/]+)\/msg$/, messages.list],
  [/^\/ui\/app\/([^/]+)\/msg\/([^/]+)$/, messages.show],
  [/^\/ui\/app\/([^/]+)\/msg\/([^/]+)\/attempt\/([^/]+)$/, messages.attempt],
  [/^\/ui\/event-types$/, admin.eventTypes],
  [/^\/ui\/operational$/, admin.operational],
  [/^\/ui\/monitors$/, admin.monitors],
  [/^\/ui\/entity-types$/, admin.entityTypes],
  [/^\/ui\/tokens$/, admin.tokens],
  [/^\/ui\/ingest$/, ingest.list],
  [/^\/ui\/ingest\/([^/]+)$/, ingest.show],
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");

/** The signed-in token's whoami answer, once read. */
let caller = null;
/** Bumped on every navigation: a page still loading for an older one stops drawing. */
let generation = 0;

/** Goes to an app path, adding it to the history unless `replace`. */
export function navigate(path, replace = false) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render(true);
}

function takeFragmentToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const given = fragment.get("token");
  if (!given) return;
  signIn(given);
  caller = null;
  // The token must not stay in the address bar, the history or a bookmark.
  history.replaceState(null, "", location.pathname + location.search);
}

/** Whether the signed-in token has `ability` (admin has them all). */
function can(ability) {
  return Boolean(caller) && caller.abilities.some((a) => a === "admin" || a === ability);
}

function drawNav() {
  const items = [];
  if (caller && caller.appId) {
    const app = encodeURIComponent(caller.appId);
    items.push(["Endpoints", `/ui/app/${app}`], ["Messages", `/ui/app/${app}/msg`], ["Event types", "/ui/event-types"]);
  } else if (caller) {
    // Only the pages the token may read; the API refuses the others anyway.
    const pages = [
      ["Overview", "/ui", "admin"],
      ["Applications", "/ui/apps", "app:read"],
      ["Event types", "/ui/event-types", "event-type:read"],
      ["Operational webhooks", "/ui/operational", "admin"],
      ["Monitors", "/ui/monitors", "admin"],
      ["Entity types", "/ui/entity-types", "event-type:read"],
      ["Ingest sources", "/ui/ingest", "admin"],
      ["API tokens", "/ui/tokens", "admin"],
    ];
    items.push(...pages.filter(([, , ability]) => can(ability)));
  }
  fill(
    nav,
    h(
      "ul",
      {},
      items.map(([label, href]) => {
        const current = location.pathname === href || (href !== "/ui" && location.pathname.startsWith(`${href}/`));
        return h("li", {}, h("a", { href, "data-link": true, "aria-current": current ? "page" : null }, label));
      }),
    ),
  );
  if (!caller) {
    fill(who);
    return;
  }
  const label = caller.appId ? `Portal: ${caller.appId}` : caller.tokenId ? `Token ${caller.tokenId}` : "Admin token";
  fill(
    who,
    h("span", { class: "muted" }, label),
    h("button", { type: "button", class: "link", onclick: () => { signOut(); caller = null; navigate("/ui"); } }, "Sign out"),
  );
}

function signInPage(message) {
  const input = h("input", { type: "password", name: "token", required: true, autocomplete: "off", id: "token" });
  const status = h("div", {});
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    {
      class: "card narrow",
      onsubmit: async (e) => {
        e.preventDefault();
        const value = input.value.trim();
        const found = await act(button, status, () => api("GET", "/auth/whoami", undefined, value));
        if (found) {
          signIn(value);
          caller = found;
          render(false);
        }
      },
    },
    h("h1", {}, "Sign in to hookd"),
    h("p", {}, "Use an API token: the admin token of the configuration, or one made with ", h("code", {}, "hookd token create"), ". It is kept in this tab only."),
    field("API token", input),
    button,
    status,
    message ? failure({ message }) : null,
  );
  fill(main, form);
  input.focus();
}

async function render(moved) {
  const mine = ++generation;
  takeFragmentToken();
  if (!token()) {
    caller = null;
    drawNav();
    signInPage();
    return;
  }
  if (!caller) {
    try {
      caller = await api("GET", "/auth/whoami");
    } catch (e) {
      if (mine !== generation) return;
      if (e instanceof ApiError && e.status === 401) {
        signOut();
        drawNav();
        signInPage(e.message);
      } else {
        fill(main, failure(e));
      }
      return;
    }
    if (mine !== generation) return;
  }
  const path = location.pathname.replace(/\/+$/, "") || "/ui";
  const portal = path.match(/^\/ui\/portal\/([^/]+)$/);
  if (portal) return navigate(`/ui/app/${portal[1]}`, true);
  if (caller.appId && path === "/ui") return navigate(`/ui/app/${encodeURIComponent(caller.appId)}`, true);
  // The overview is an admin's; another token starts at the applications.
  if (path === "/ui" && !can("admin")) return navigate("/ui/apps", true);
  drawNav();
  document.title = "hookd";
  const view = h("div", { class: "view" });
  fill(main, view);
  if (moved) main.focus();
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  if (!route) {
    fill(view, h("h1", {}, "Not found"), h("p", {}, "There is no page here. ", link("/ui", "Go to the start.")));
    return;
  }
  const params = path.match(route[0]).slice(1).map(decodeURIComponent);
  const ctx = {
    caller,
    portal: Boolean(caller.appId),
    params,
    search: new URLSearchParams(location.search),
    alive: () => mine === generation,
    navigate,
    rerender: () => render(false),
  };
  try {
    await route[1](ctx, view);
    // The tab and the history name the page (set as text: a title is never parsed).
    const heading = view.querySelector("h1");
    if (mine === generation && heading) document.title = `${heading.textContent} · hookd`;
  } catch (e) {
    if (mine !== generation) return;
    if (e instanceof ApiError && e.status === 401) {
      signOut();
      caller = null;
      drawNav();
      signInPage(e.message);
      return;
    }
    fill(view, h("h1", {}, "Cannot show this page"), failure(e));
  }
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-link]");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", () => render(true));

render(false);
