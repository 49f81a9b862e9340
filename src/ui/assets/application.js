// Applications: the list, and one application with its endpoints and their health.

import { h, fill, link, table, time, field, facts, badge, pager, list as splitList, code } from "./dom.js";
import { api, get, query, enc, act, confirmed } from "./api.js";
import { meter } from "./charts.js";

export async function list(ctx, view) {
  const page = await get(`/app${query({ limit: 25, iterator: ctx.search.get("iterator") })}`);
  if (!ctx.alive()) return;
  const name = h("input", { name: "name", required: true, maxlength: 256 });
  const uid = h("input", { name: "uid", placeholder: "optional, e.g. acme" });
  const status = h("div", {});
  const button = h("button", { type: "submit" }, "Create application");
  const form = h(
    "form",
    {
      class: "card inline",
      onsubmit: async (e) => {
        e.preventDefault();
        const body = { name: name.value };
        if (uid.value.trim()) body.uid = uid.value.trim();
        const app = await act(button, status, () => api("POST", "/app", body));
        if (app) ctx.navigate(`/ui/app/${enc(app.id)}`);
      },
    },
    h("h2", {}, "New application"),
    field("Name", name),
    field("UID", uid),
    button,
    status,
  );
  fill(
    view,
    h("h1", {}, "Applications"),
    table(
      [
        ["Name", (a) => link(`/ui/app/${enc(a.id)}`, a.name)],
        ["UID", (a) => a.uid || "—"],
        ["ID", (a) => h("code", {}, a.id)],
        ["Created", (a) => time(a.createdAt)],
      ],
      page.data,
      "No application yet: create one below.",
    ),
    pager(ctx.search, page),
    form,
  );
}

/** The endpoint list's health cell. */
function health(e) {
  const hs = e.health || {};
  return h(
    "span",
    { class: "health" },
    badge(hs.state || "healthy"),
    hs.successRate === null || hs.successRate === undefined ? null : meter(hs.successRate, "success rate"),
    hs.consecutiveFailures ? h("small", {}, ` ${hs.consecutiveFailures} failures in a row`) : null,
  );
}

export async function show(ctx, view) {
  const [appKey] = ctx.params;
  const app = await get(`/app/${enc(appKey)}`);
  const page = await get(`/app/${enc(appKey)}/endpoint${query({ limit: 25, iterator: ctx.search.get("iterator") })}`);
  if (!ctx.alive()) return;
  const base = `/ui/app/${enc(app.id)}`;
  fill(
    view,
    h("p", { class: "crumbs" }, ctx.portal ? null : [link("/ui/apps", "Applications"), " / "], app.name),
    h("h1", {}, app.name),
    facts([
      ["ID", h("code", {}, app.id)],
      ["UID", app.uid],
      ["Throttle", app.throttleRate ? `${app.throttleRate}/s` : "none"],
      ["Created", time(app.createdAt)],
    ]),
    h("p", {}, link(`${base}/msg`, "Messages and sending →")),
    h("h2", {}, "Endpoints"),
    table(
      [
        ["URL", (e) => link(`${base}/endpoint/${enc(e.id)}`, h("span", { class: "url" }, e.url))],
        ["Health", health],
        ["Event types", (e) => (e.eventTypes && e.eventTypes.length ? e.eventTypes.join(", ") : "all")],
        ["Description", (e) => e.description || "—"],
      ],
      page.data,
      "No endpoint yet.",
    ),
    pager(ctx.search, page),
    newEndpoint(ctx, app),
    ctx.portal ? null : portalAccess(app),
    ctx.portal ? null : editApp(ctx, app),
    ctx.portal ? null : removeApp(ctx, app),
  );
}

/** Renames the application or changes its UID (admin only: a portal token keeps its app). */
function editApp(ctx, app) {
  const name = h("input", { name: "name", required: true, maxlength: 256, value: app.name });
  const uid = h("input", { name: "uid", value: app.uid || "", placeholder: "empty: none" });
  const status = h("div", {});
  const button = h("button", { type: "submit" }, "Save application");
  return h(
    "form",
    {
      class: "card",
      onsubmit: async (e) => {
        e.preventDefault();
        const body = { name: name.value, uid: uid.value.trim() || null };
        if (await act(button, status, () => api("PATCH", `/app/${enc(app.id)}`, body))) ctx.rerender();
      },
    },
    h("h2", {}, "Edit application"),
    field("Name", name),
    field("UID", uid, "Letters, digits, _ or -; empty: none."),
    button,
    status,
  );
}

function removeApp(ctx, app) {
  const status = h("div", {});
  const button = confirmed("Delete application", {
    question: `Delete the application ${app.name}? Its endpoints, messages and attempts go too.`,
    status,
    run: () => api("DELETE", `/app/${enc(app.id)}`),
    then: () => ctx.navigate("/ui/apps"),
    kind: "secondary",
  });
  return h("section", { class: "card" }, h("h2", {}, "Delete"), button, status);
}

function newEndpoint(ctx, app) {
  const url = h("input", { name: "url", type: "url", required: true, placeholder: "https://example.com/webhooks" });
  const description = h("input", { name: "description" });
  const eventTypes = h("input", { name: "eventTypes", placeholder: "all; or invoice.paid, user.created" });
  const status = h("div", {});
  const button = h("button", { type: "submit" }, "Add endpoint");
  return h(
    "form",
    {
      class: "card",
      onsubmit: async (e) => {
        e.preventDefault();
        const body = { url: url.value.trim(), description: description.value };
        const types = splitList(eventTypes.value);
        if (types) body.eventTypes = types;
        const ep = await act(button, status, () => api("POST", `/app/${enc(app.id)}/endpoint`, body));
        if (ep) ctx.navigate(`/ui/app/${enc(app.id)}/endpoint/${enc(ep.id)}`);
      },
    },
    h("h2", {}, "New endpoint"),
    field("URL", url),
    field("Description", description),
    field("Event types", eventTypes, "Comma-separated; empty receives every event type."),
    button,
    status,
  );
}

/** Makes an app portal link for the application (admin only: the API says so). */
function portalAccess(app) {
  const readOnly = h("input", { type: "checkbox", name: "readOnly" });
  const out = h("div", {});
  const status = h("div", {});
  const button = h("button", { type: "submit" }, "Create portal link");
  return h(
    "form",
    {
      class: "card",
      onsubmit: async (e) => {
        e.preventDefault();
        const access = await act(button, status, () =>
          api("POST", `/auth/app-portal-access/${enc(app.id)}`, { readOnly: readOnly.checked }),
        );
        if (access) {
          fill(
            out,
            h("p", {}, "Give this link to the application's owner. It signs in as a token limited to this application, for 7 days; it is shown once."),
            code(access.url),
          );
        }
      },
    },
    h("h2", {}, "Customer portal"),
    h("label", { class: "check" }, readOnly, " Read only"),
    button,
    status,
    out,
  );
}
