// Messages: the filtered log and sending, one message (payload and per-endpoint status, with
// resend), and one attempt (the response hookd got).

import { h, fill, link, table, time, field, facts, badge, pager, code, list as splitList } from "./dom.js";
import { api, get, query, enc, act } from "./api.js";

/** The datetime-local value of an RFC 3339 time (local time), or "". */
function localInput(iso) {
  const d = iso ? new Date(iso) : null;
  if (!d || Number.isNaN(d.getTime())) return "";
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

/** The uid prefix of an ingest source's internal application, followed by the source's id. */
const INGEST_APP = "hookd-ingest-";

/**
 * The crumbs to a message's application (`withList`: from the applications list). What an
 * ingest source forwarded is in the source's internal application: its crumbs lead to the
 * source instead.
 */
function appCrumbs(ctx, app, base, withList = true) {
  if (!ctx.portal && app.uid && app.uid.startsWith(INGEST_APP)) {
    const source = app.uid.slice(INGEST_APP.length);
    return [link("/ui/ingest", "Ingest sources"), " / ", link(`/ui/ingest/${enc(source)}`, "source ", h("code", {}, source))];
  }
  return [withList && !ctx.portal ? [link("/ui/apps", "Applications"), " / "] : null, link(base, app.name)];
}

export async function list(ctx, view) {
  const [appKey] = ctx.params;
  const s = ctx.search;
  const app = await get(`/app/${enc(appKey)}`);
  const endpoints = await get(`/app/${enc(appKey)}/endpoint?limit=250`);
  const filters = {
    limit: 25,
    iterator: s.get("iterator"),
    event_types: s.get("eventType"),
    channel: s.get("channel"),
    after: s.get("after"),
    before: s.get("before"),
  };
  // The status of a message is per endpoint: with an endpoint chosen, the list is that
  // endpoint's messages (the API's attempted-messages list), which filters by status.
  const byEndpoint = s.get("endpoint");
  const page = byEndpoint
    ? await get(`/app/${enc(appKey)}/endpoint/${enc(byEndpoint)}/msg${query({ ...filters, status: s.get("status") })}`)
    : await get(`/app/${enc(appKey)}/msg${query(filters)}`);
  if (!ctx.alive()) return;
  const base = `/ui/app/${enc(app.id)}`;
  const rows = byEndpoint ? page.data.map((d) => ({ ...d, delivery: d.statusText })) : page.data;
  fill(
    view,
    h("p", { class: "crumbs" }, appCrumbs(ctx, app, base), " / messages"),
    h("h1", {}, "Messages"),
    filterForm(ctx, s, endpoints.data, base),
    table(
      [
        ["When", (m) => link(`${base}/msg/${enc(m.id)}`, time(m.timestamp))],
        ["Event type", (m) => h("code", {}, m.eventType)],
        ["ID", (m) => h("code", {}, m.id)],
        ["Channels", (m) => (m.channels || []).join(", ") || "—"],
        byEndpoint ? ["Delivery", (m) => badge(m.delivery)] : null,
      ].filter(Boolean),
      rows,
      "No message matches.",
    ),
    pager(s, page),
    ctx.caller.abilities.some((a) => a === "admin" || a === "message:create") ? sendForm(ctx, app, base) : null,
  );
}

function filterForm(ctx, s, endpoints, base) {
  const eventType = h("input", { name: "eventType", value: s.get("eventType") || "", placeholder: "invoice.paid, user.created" });
  const channel = h("input", { name: "channel", value: s.get("channel") || "" });
  const after = h("input", { name: "after", type: "datetime-local", value: localInput(s.get("after")) });
  const before = h("input", { name: "before", type: "datetime-local", value: localInput(s.get("before")) });
  const endpoint = h(
    "select",
    { name: "endpoint" },
    h("option", { value: "" }, "any endpoint"),
    endpoints.map((e) => h("option", { value: e.id, selected: s.get("endpoint") === e.id }, e.url)),
  );
  const status = h(
    "select",
    { name: "status" },
    [["", "any status"], ["0", "succeeded"], ["1", "pending"], ["2", "failed"], ["3", "sending"]].map(([v, label]) =>
      h("option", { value: v, selected: (s.get("status") || "") === v }, label),
    ),
  );
  const iso = (input) => (input.value ? new Date(input.value).toISOString() : "");
  return h(
    "form",
    {
      class: "card filters",
      role: "search",
      onsubmit: (e) => {
        e.preventDefault();
        const q = query({
          eventType: eventType.value.trim(),
          channel: channel.value.trim(),
          after: iso(after),
          before: iso(before),
          endpoint: endpoint.value,
          status: endpoint.value ? status.value : "",
        });
        ctx.navigate(`${base}/msg${q}`);
      },
    },
    field("Event types", eventType),
    field("Channel", channel),
    field("After", after),
    field("Before", before),
    field("Endpoint", endpoint),
    field("Status at that endpoint", status),
    h("button", { type: "submit" }, "Filter"),
    link(`${base}/msg`, "Clear"),
  );
}

function sendForm(ctx, app, base) {
  const eventType = h("input", { name: "eventType", required: true, placeholder: "invoice.paid" });
  const payload = h("textarea", { name: "payload", rows: 4, required: true }, '{"example": true}');
  const channels = h("input", { name: "channels", placeholder: "optional" });
  const status = h("div", {});
  const button = h("button", { type: "submit" }, "Send message");
  return h(
    "form",
    {
      class: "card",
      onsubmit: async (e) => {
        e.preventDefault();
        const msg = await act(button, status, async () => {
          let body;
          try {
            body = JSON.parse(payload.value);
          } catch (err) {
            throw new Error(`payload: not JSON (${err.message})`);
          }
          const out = { eventType: eventType.value.trim(), payload: body };
          const ch = splitList(channels.value);
          if (ch) out.channels = ch;
          return api("POST", `/app/${enc(app.id)}/msg`, out);
        });
        if (msg) ctx.navigate(`${base}/msg/${enc(msg.id)}`);
      },
    },
    h("h2", {}, "Send a message"),
    field("Event type", eventType),
    field("Payload (a JSON object)", payload),
    field("Channels", channels),
    button,
    status,
  );
}

export async function show(ctx, view) {
  const [appKey, msgKey] = ctx.params;
  const app = await get(`/app/${enc(appKey)}`);
  const msg = await get(`/app/${enc(appKey)}/msg/${enc(msgKey)}`);
  const destinations = await get(`/app/${enc(appKey)}/msg/${enc(msg.id)}/endpoint?limit=250`);
  const attempts = await get(`/app/${enc(appKey)}/attempt/msg/${enc(msg.id)}${query({ limit: 50, iterator: ctx.search.get("iterator") })}`);
  if (!ctx.alive()) return;
  const base = `/ui/app/${enc(app.id)}`;
  const status = h("div", {});
  const resend = (d) => {
    const button = h(
      "button",
      {
        type: "button",
        class: "secondary",
        onclick: async () => {
          const done = await act(button, status, () => api("POST", `/app/${enc(app.id)}/msg/${enc(msg.id)}/endpoint/${enc(d.id)}/resend`, {}), "Resent: a new attempt is on its way.");
          if (done) setTimeout(() => ctx.alive() && ctx.rerender(), 1000);
        },
      },
      "Resend",
    );
    return button;
  };
  fill(
    view,
    h("p", { class: "crumbs" }, appCrumbs(ctx, app, base), " / ", link(`${base}/msg`, "messages")),
    h("h1", {}, "Message ", h("code", {}, msg.id)),
    facts([
      ["Event type", h("code", {}, msg.eventType)],
      ["Created", time(msg.timestamp)],
      ["Event ID", msg.eventId],
      ["Channels", (msg.channels || []).join(", ") || null],
      ["Deliver at", msg.deliverAt ? time(msg.deliverAt) : null],
    ]),
    h("h2", {}, "Payload"),
    code(msg.payload),
    h("h2", {}, "Endpoints"),
    table(
      [
        ["Endpoint", (d) => link(`${base}/endpoint/${enc(d.id)}`, h("span", { class: "url" }, d.url))],
        ["Status", (d) => badge(d.statusText)],
        ["Next attempt", (d) => time(d.nextAttempt)],
        ["", resend],
      ],
      destinations.data,
      "No endpoint was sent this message.",
    ),
    status,
    h("h2", {}, "Attempts"),
    table(
      [
        ["When", (a) => link(`${base}/msg/${enc(msg.id)}/attempt/${enc(a.id)}`, time(a.timestamp))],
        ["Status", (a) => badge(a.statusText)],
        ["Response", (a) => (a.responseStatusCode ? String(a.responseStatusCode) : a.errorClass || "no response")],
        ["Duration", (a) => `${a.responseDurationMs} ms`],
        ["URL", (a) => h("span", { class: "url" }, a.url)],
      ],
      attempts.data,
      "No attempt yet.",
    ),
    pager(ctx.search, attempts),
  );
}

const TRIGGERS = ["scheduled", "manual"];

export async function attempt(ctx, view) {
  const [appKey, msgKey, attemptKey] = ctx.params;
  const app = await get(`/app/${enc(appKey)}`);
  const a = await get(`/app/${enc(appKey)}/msg/${enc(msgKey)}/attempt/${enc(attemptKey)}`);
  if (!ctx.alive()) return;
  const base = `/ui/app/${enc(app.id)}`;
  fill(
    view,
    h("p", { class: "crumbs" }, appCrumbs(ctx, app, base, false), " / ", link(`${base}/msg/${enc(a.msgId)}`, "message"), " / attempt"),
    h("h1", {}, "Attempt ", h("code", {}, a.id)),
    facts([
      ["Status", badge(a.statusText)],
      ["When", time(a.timestamp)],
      ["URL", h("span", { class: "url" }, a.url)],
      ["Endpoint", link(`${base}/endpoint/${enc(a.endpointId)}`, h("code", {}, a.endpointId))],
      ["Response status", a.responseStatusCode ? String(a.responseStatusCode) : "no response"],
      ["Duration", `${a.responseDurationMs} ms`],
      ["Error class", a.errorClass],
      ["Error", a.error],
      ["Retry policy", a.policy],
      ["Timeout", a.timeoutMs ? `${a.timeoutMs} ms` : null],
      ["Trigger", TRIGGERS[a.triggerType] || String(a.triggerType)],
    ]),
    h("h2", {}, "Request"),
    facts([
      ["Method and URL", h("span", { class: "url" }, `POST ${a.url}`)],
      ["Body", link(`${base}/msg/${enc(a.msgId)}`, "the message's payload")],
    ]),
    h("h2", {}, "Request headers"),
    table(
      [
        ["Name", ([name]) => h("code", {}, name)],
        ["Value", ([, value]) => h("span", { class: "url" }, value)],
      ],
      Object.entries(a.requestHeaders || {}),
      a.statusText === "success"
        ? "Not kept for successful attempts: hookd keeps the request headers of those that failed."
        : "None recorded (no request was made, or the attempt predates hookd keeping them).",
    ),
    h("p", { class: "muted" }, "As hookd set them on a failed attempt; the HTTP client adds Host, Content-Length and User-Agent. Credentials among the endpoint's custom headers are redacted."),
    h("h2", {}, "Response headers"),
    table(
      [
        ["Name", ([name]) => h("code", {}, name)],
        ["Value", ([, value]) => h("span", { class: "url" }, value)],
      ],
      Object.entries(a.responseHeaders || {}),
      "No response headers recorded.",
    ),
    h("h2", {}, "Response body"),
    a.response ? code(a.response) : h("p", { class: "empty" }, "Empty."),
  );
}
