// One endpoint: its health and attempts over time, settings (filters, signature scheme,
// policies), headers, secret, and the actions on it (enable/disable, recover, replay, send an
// example). Each section is a form calling one API route.

import { h, fill, link, table, time, field, facts, badge, pager, code, list as splitList } from "./dom.js";
import { api, get, query, enc, act, failure, confirmed } from "./api.js";
import { stackedBars, meter } from "./charts.js";

export async function show(ctx, view) {
  const [appKey, epKey] = ctx.params;
  const path = `/app/${enc(appKey)}/endpoint/${enc(epKey)}`;
  const [app, ep] = await Promise.all([get(`/app/${enc(appKey)}`), get(path)]);
  const attempts = await get(
    `/app/${enc(appKey)}/attempt/endpoint/${enc(epKey)}${query({ limit: 25, iterator: ctx.search.get("iterator") })}`,
  );
  const recent = await get(`/app/${enc(appKey)}/attempt/endpoint/${enc(epKey)}?limit=250`);
  if (!ctx.alive()) return;
  const appBase = `/ui/app/${enc(app.id)}`;
  const hs = ep.health || {};
  fill(
    view,
    h("p", { class: "crumbs" }, ctx.portal ? null : [link("/ui/apps", "Applications"), " / "], link(appBase, app.name), " / endpoint"),
    h("h1", { class: "url" }, ep.url),
    facts([
      ["ID", h("code", {}, ep.id)],
      ["Health", h("span", {}, badge(hs.state || "healthy"), hs.successRate == null ? null : meter(hs.successRate, "success rate"))],
      ["Failures in a row", String(hs.consecutiveFailures || 0)],
      ["Failing since", time(hs.failingSince)],
      ["Last success", time(hs.lastSuccessAt)],
      ["Last failure", time(hs.lastFailureAt)],
      ["Created", time(ep.createdAt)],
    ]),
    enableToggle(ctx, path, ep),
    activity(recent.data),
    h("h2", {}, "Attempts"),
    table(
      [
        ["When", (a) => link(`${appBase}/msg/${enc(a.msgId)}/attempt/${enc(a.id)}`, time(a.timestamp))],
        ["Status", (a) => badge(a.statusText)],
        ["Response", (a) => (a.responseStatusCode ? String(a.responseStatusCode) : a.errorClass || "no response")],
        ["Duration", (a) => `${a.responseDurationMs} ms`],
        ["Message", (a) => link(`${appBase}/msg/${enc(a.msgId)}`, h("code", {}, a.msgId))],
      ],
      attempts.data,
      "No attempt yet.",
    ),
    pager(ctx.search, attempts),
    settings(ctx, path, ep),
    headers(path),
    secret(path),
    sendExample(ctx, path, appBase),
    replay(path),
    mayChange(ctx) ? removeEndpoint(ctx, path, ep, appBase) : null,
  );
}

/** Whether the token may change endpoints (a read-only portal link may not). */
function mayChange(ctx) {
  return ctx.caller.abilities.some((a) => a === "admin" || a === "endpoint:write");
}

function removeEndpoint(ctx, path, ep, appBase) {
  const status = h("div", {});
  const button = confirmed("Delete endpoint", {
    question: `Delete the endpoint ${ep.url}? It gets nothing more; its attempts go too.`,
    status,
    run: () => api("DELETE", path),
    then: () => ctx.navigate(appBase),
    kind: "secondary",
  });
  return h("section", { class: "card" }, h("h2", {}, "Delete"), button, status);
}

/** Attempts per hour over the last day, from the latest attempts (up to 250). */
function activity(recent) {
  const hour = 3600 * 1000;
  const end = Math.ceil(Date.now() / hour) * hour;
  const points = [];
  for (let i = 23; i >= 0; i--) {
    const start = end - (i + 1) * hour;
    const inHour = recent.filter((a) => {
      const t = Date.parse(a.timestamp);
      return t >= start && t < start + hour;
    });
    points.push({
      label: new Date(start).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
      values: [inHour.filter((a) => a.status === 0).length, inHour.filter((a) => a.status !== 0).length],
    });
  }
  return stackedBars("Attempts per hour, last 24 hours (latest 250 attempts)", points, [
    { name: "succeeded", cls: "s-ok" },
    { name: "failed", cls: "s-fail" },
  ]);
}

function enableToggle(ctx, path, ep) {
  const status = h("div", {});
  const button = h(
    "button",
    {
      type: "button",
      class: ep.disabled ? "" : "secondary",
      onclick: async () => {
        const done = await act(button, status, () => api("PATCH", path, { disabled: !ep.disabled }));
        if (done) ctx.rerender();
      },
    },
    ep.disabled ? "Enable endpoint" : "Disable endpoint",
  );
  return h("div", { class: "actions" }, ep.disabled ? h("p", {}, badge("disabled"), " Deliveries wait until the endpoint is enabled again.") : null, button, status);
}

function settings(ctx, path, ep) {
  const url = h("input", { name: "url", type: "url", required: true, value: ep.url });
  const description = h("input", { name: "description", value: ep.description });
  const eventTypes = h("input", { name: "eventTypes", value: (ep.eventTypes || []).join(", ") });
  const channels = h("input", { name: "channels", value: (ep.channels || []).join(", ") });
  const throttle = h("input", { name: "throttleRate", type: "number", min: 0, value: ep.throttleRate ?? "" });
  const scheme = h(
    "select",
    { name: "scheme" },
    ["standard", "stripe", "hmac-sha256"].map((s) => h("option", { value: s, selected: ep.signature && ep.signature.scheme === s }, s)),
  );
  const ordering = h(
    "select",
    { name: "ordering" },
    ["concurrent", "fifo"].map((o) => h("option", { value: o, selected: ep.ordering === o }, o)),
  );
  const retry = h("textarea", { name: "retryPolicy", rows: 3 }, ep.retryPolicy ? JSON.stringify(ep.retryPolicy) : "");
  const failures = h("input", { name: "autoDisableAfterFailures", type: "number", min: 0, value: ep.autoDisableAfterFailures ?? "" });
  const status = h("div", {});
  const button = h("button", { type: "submit" }, "Save settings");
  const number = (input) => (input.value === "" ? null : Number(input.value));
  return h(
    "form",
    {
      class: "card",
      onsubmit: async (e) => {
        e.preventDefault();
        const saved = await act(button, status, async () => {
          let retryPolicy = null;
          if (retry.value.trim()) {
            try {
              retryPolicy = JSON.parse(retry.value);
            } catch (err) {
              throw new Error(`retry policy: not JSON (${err.message})`);
            }
          }
          const body = {
            url: url.value.trim(),
            description: description.value,
            eventTypes: splitList(eventTypes.value),
            channels: splitList(channels.value),
            throttleRate: number(throttle),
            ordering: ordering.value,
            retryPolicy,
            autoDisableAfterFailures: number(failures),
          };
          // Only a changed scheme is sent: the current one may carry options (header, prefix).
          if (!ep.signature || ep.signature.scheme !== scheme.value) body.signature = { scheme: scheme.value };
          return api("PATCH", path, body);
        }, "Saved.");
        if (saved) ctx.rerender();
      },
    },
    h("h2", {}, "Settings"),
    field("URL", url),
    field("Description", description),
    field("Event types", eventTypes, "Comma-separated; empty receives every event type."),
    field("Channels", channels, "Comma-separated; empty receives every channel."),
    field("Throttle (deliveries per second)", throttle, "Empty or 0: no limit."),
    field("Signature scheme", scheme),
    field("Ordering", ordering),
    field("Retry policy (JSON)", retry, 'E.g. {"schedule": [5, 60, 600]}; empty: none.'),
    field("Disable after failures in a row", failures, "Empty: the server's option."),
    button,
    status,
  );
}

function headers(path) {
  const list = h("div", {});
  const status = h("div", {});
  const load = async () => {
    let got;
    try {
      got = await get(`${path}/headers`);
    } catch (e) {
      fill(list, failure(e));
      return;
    }
    const rows = [
      ...Object.entries(got.headers).map(([name, value]) => ({ name, value })),
      ...got.sensitive.map((name) => ({ name, value: "(hidden: holds a credential)" })),
    ];
    fill(
      list,
      table(
        [
          ["Name", (r) => h("code", {}, r.name)],
          ["Value", (r) => h("span", { class: "url" }, r.value)],
          ["", (r) => h("button", { type: "button", class: "link", onclick: () => change({ deleteHeaders: [r.name] }) }, `Remove ${r.name}`)],
        ],
        rows,
        "No custom header.",
      ),
    );
  };
  const change = async (body) => {
    if (await act(list, status, () => api("PATCH", `${path}/headers`, body), "Headers saved.")) load();
  };
  const name = h("input", { name: "headerName", required: true, placeholder: "X-Team" });
  const value = h("input", { name: "headerValue", required: true });
  const button = h("button", { type: "submit" }, "Set header");
  load();
  return h(
    "form",
    {
      class: "card",
      onsubmit: (e) => {
        e.preventDefault();
        change({ headers: { [name.value.trim()]: value.value } });
      },
    },
    h("h2", {}, "Headers"),
    list,
    h("div", { class: "inline" }, field("Name", name), field("Value", value), button),
    status,
  );
}

function secret(path) {
  const out = h("div", {});
  const status = h("div", {});
  const show = (s) =>
    fill(out, code(s.key), s.publicKey ? h("p", {}, "Public key: ", h("code", {}, s.publicKey)) : null);
  const reveal = h(
    "button",
    { type: "button", class: "secondary", onclick: async () => { const s = await act(reveal, status, () => get(`${path}/secret`)); if (s) show(s); } },
    "Reveal secret",
  );
  const rotate = h(
    "button",
    {
      type: "button",
      onclick: async () => {
        const s = await act(rotate, status, () => api("POST", `${path}/secret/rotate`, {}), "Rotated: the old secret keeps signing for 24 hours.");
        if (s) show(s);
      },
    },
    "Rotate secret",
  );
  return h("section", { class: "card" }, h("h2", {}, "Signing secret"), h("div", { class: "actions" }, reveal, rotate), status, out);
}

function sendExample(ctx, path, appBase) {
  const eventType = h("input", { name: "exampleEventType", required: true, placeholder: "invoice.paid" });
  const status = h("div", {});
  const button = h("button", { type: "submit" }, "Send example");
  return h(
    "form",
    {
      class: "card inline",
      onsubmit: async (e) => {
        e.preventDefault();
        const msg = await act(button, status, () => api("POST", `${path}/send-example`, { eventType: eventType.value.trim() }));
        if (msg) fill(status, h("div", { class: "ok", role: "status" }, "Sent: ", link(`${appBase}/msg/${enc(msg.id)}`, msg.id)));
      },
    },
    h("h2", {}, "Send an example"),
    field("Event type", eventType, "Its schema's example, if it has one."),
    button,
    status,
  );
}

function replay(path) {
  const day = new Date(Date.now() - 24 * 3600 * 1000);
  const local = new Date(day.getTime() - day.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  const since = h("input", { name: "since", type: "datetime-local", required: true, value: local });
  const kind = h(
    "select",
    { name: "kind" },
    h("option", { value: "recover" }, "Recover: retry the failed deliveries"),
    h("option", { value: "replay-missing" }, "Replay missing: messages never sent to it"),
    h("option", { value: "bulk-replay" }, "Replay all: send every message again"),
  );
  const status = h("div", {});
  const button = h("button", { type: "submit" }, "Start");
  return h(
    "form",
    {
      class: "card inline",
      onsubmit: async (e) => {
        e.preventDefault();
        const at = new Date(since.value);
        const task = await act(button, status, async () => {
          if (Number.isNaN(at.getTime())) throw new Error("since: give a date and time");
          return api("POST", `${path}/${kind.value}`, { since: at.toISOString() });
        });
        if (task) fill(status, h("div", { class: "ok", role: "status" }, `Task ${task.id} ${task.status}.`));
      },
    },
    h("h2", {}, "Recover and replay"),
    field("Messages since", since),
    field("What", kind),
    button,
    status,
  );
}
