// Ingest sources (admin): the list with the form that creates one, and one source with its
// ingest URL (copy, rotate the token), its endpoints (add, delete, secret), its log (every
// request it received, with the message it became) and deletion.
//
// What a source forwarded is a message of the source's internal application (`appId`): it
// is hidden from the applications list but reachable by id, so the log links to the
// message's page there, attempts included.

import { h, fill, link, table, time, field, facts, badge, pager, code } from "./dom.js";
import { api, get, query, enc, act, confirmed } from "./api.js";

const BASE = "/ingest/api/v1/source";

/** The types hookd verifies, and what each `config` holds (a template to edit). */
const TYPES = [
  ["generic-webhook", {}, "Nothing is checked: anyone with the URL can post."],
  ["svix", { secret: "" }, "The Standard Webhooks secret (whsec_…) the sender signs with."],
  ["stripe", { secret: "" }, "The endpoint's signing secret in Stripe (whsec_…)."],
  ["github", { secret: "" }, "The webhook's secret in GitHub; leave out secret ({}) to take unsigned requests."],
  ["shopify", { secret: "" }, "The app's client secret (X-Shopify-Hmac-Sha256)."],
  ["slack", { secret: "" }, "The app's signing secret (X-Slack-Signature)."],
  [
    "hookd-hmac",
    { secret: "", header: "X-Signature", prefix: "sha256=", encoding: "hex", timestampHeader: "X-Timestamp", toleranceSeconds: 300 },
    "HMAC-SHA256 of the body (of {timestamp}.{body} with a timestampHeader); encoding hex or base64; leave out timestampHeader and toleranceSeconds if the sender sends no timestamp.",
  ],
  ["hookd-basic", { username: "", password: "" }, "Authorization: Basic with this username and password."],
  ["hookd-bearer", { token: "" }, "Authorization: Bearer with this token."],
  [
    "cron",
    { schedule: "0 2 * * *", payload: '{"job": "crawl"}', contentType: "application/json" },
    "Posts payload (the text of a JSON object) to the endpoints on the schedule, in UTC (five fields, or six with seconds first).",
  ],
];

/** The senders that sign as Standard Webhooks do: their config is svix's. */
const STANDARD_WEBHOOKS = [
  "beehiiv", "brex", "clerk", "guesty", "incident-io", "lithic", "nash", "open-ai", "pleo", "psi-fi", "render",
  "replicate", "resend", "safebase", "sardine", "stych",
];

function template(type) {
  const known = TYPES.find(([name]) => name === type);
  return known ? [known[1], known[2]] : [TYPES[1][1], TYPES[1][2]];
}

/** Where a source is posted to: its ingest URL, or a cron source's schedule. */
function target(s) {
  if (s.type === "cron") return `cron ${s.config && s.config.schedule ? s.config.schedule : "?"} (UTC)`;
  return s.ingestUrl ? h("span", { class: "url" }, s.ingestUrl) : "—";
}

export async function list(ctx, view) {
  const page = await get(`${BASE}${query({ limit: 25, iterator: ctx.search.get("iterator") })}`);
  if (!ctx.alive()) return;
  fill(
    view,
    h("h1", {}, "Ingest sources"),
    h("p", {}, "URLs on hookd where a third party posts its webhooks: hookd checks each request as the source's type says, logs it, and forwards it to the source's endpoints."),
    table(
      [
        ["Name", (s) => link(`/ui/ingest/${enc(s.id)}`, s.name)],
        ["Type", (s) => h("code", {}, s.type)],
        ["Ingest URL or schedule", target],
        ["Created", (s) => time(s.createdAt)],
      ],
      page.data,
      "No ingest source yet: create one below.",
    ),
    pager(ctx.search, page),
    newSource(ctx),
  );
}

/** The type select, `current` selected. */
function typeSelect(current) {
  return h(
    "select",
    { name: "type" },
    TYPES.map(([t]) => h("option", { value: t, selected: t === current }, t)),
    h(
      "optgroup",
      { label: "Standard Webhooks senders (config as svix)" },
      STANDARD_WEBHOOKS.map((t) => h("option", { value: t, selected: t === current }, t)),
    ),
  );
}

/** The config textarea with its hint, refilled with the type's template when it changes. */
function configField(type, note) {
  const config = h("textarea", { name: "config", rows: 6 });
  const hint = h("span", {});
  const describe = () => {
    const [value, about] = template(type.value);
    config.value = JSON.stringify(value, null, 2);
    fill(hint, about, note ? ` ${note}` : null, " Changing the type puts that type's template here.");
  };
  type.addEventListener("change", describe);
  describe();
  return [config, hint];
}

/** The textarea's JSON, or an error naming the field. */
function parseConfig(config) {
  try {
    return JSON.parse(config.value || "{}");
  } catch (err) {
    throw new Error(`config: not JSON (${err.message})`);
  }
}

function newSource(ctx) {
  const name = h("input", { name: "name", required: true, minlength: 2, maxlength: 256, placeholder: "Stripe payments" });
  const uid = h("input", { name: "uid", placeholder: "optional, e.g. stripe" });
  const type = typeSelect("generic-webhook");
  const [config, hint] = configField(type);
  const status = h("div", {});
  const button = h("button", { type: "submit" }, "Create source");
  const form = h(
    "form",
    {
      class: "card",
      onsubmit: async (e) => {
        e.preventDefault();
        const made = await act(button, status, async () => {
          const body = { name: name.value, type: type.value, config: parseConfig(config) };
          if (uid.value.trim()) body.uid = uid.value.trim();
          return api("POST", BASE, body);
        });
        if (made) ctx.navigate(`/ui/ingest/${enc(made.id)}`);
      },
    },
    h("h2", {}, "New ingest source"),
    field("Name", name),
    field("UID", uid),
    field("Type", type),
    field("Config (JSON)", config, hint),
    button,
    status,
  );
  return form;
}

/**
 * Changes a source: everything is given again (PUT), the config too, since its secrets are
 * not shown back: the textarea starts from the type's template with the current config's
 * other settings (a cron source's schedule, an HMAC header) in it.
 */
function editSource(ctx, path, source) {
  const name = h("input", { name: "name", required: true, minlength: 2, maxlength: 256, value: source.name });
  const uid = h("input", { name: "uid", value: source.uid || "", placeholder: "empty: none" });
  const type = typeSelect(source.type);
  const [config, hint] = configField(type, "Secrets are not shown back: give the secret again.");
  config.value = JSON.stringify({ ...template(source.type)[0], ...(source.config || {}) }, null, 2);
  const status = h("div", {});
  const button = h("button", { type: "submit" }, "Save source");
  return h(
    "form",
    {
      class: "card",
      onsubmit: async (e) => {
        e.preventDefault();
        const saved = await act(button, status, async () => {
          const body = { name: name.value, uid: uid.value.trim() || null, type: type.value, config: parseConfig(config) };
          if (source.metadata) body.metadata = source.metadata;
          return api("PUT", path, body);
        });
        if (saved) ctx.rerender();
      },
    },
    h("h2", {}, "Edit source"),
    field("Name", name),
    field("UID", uid),
    field("Type", type),
    field("Config (JSON)", config, hint),
    button,
    status,
  );
}

export async function show(ctx, view) {
  const [key] = ctx.params;
  const source = await get(`${BASE}/${enc(key)}`);
  const path = `${BASE}/${enc(source.id)}`;
  const [endpoints, log] = await Promise.all([
    get(`${path}/endpoint?limit=250`),
    get(`${path}/log${query({ limit: 25, iterator: ctx.search.get("iterator") })}`),
  ]);
  if (!ctx.alive()) return;
  const appBase = `/ui/app/${enc(source.appId)}`;
  const cron = source.type === "cron";
  const config = source.config && Object.keys(source.config).length ? code(source.config) : "—";
  fill(
    view,
    h("p", { class: "crumbs" }, link("/ui/ingest", "Ingest sources"), " / ", source.name),
    h("h1", {}, source.name),
    facts([
      ["ID", h("code", {}, source.id)],
      ["UID", source.uid],
      ["Type", h("code", {}, source.type)],
      cron ? ["Schedule", target(source)] : null,
      ["Config", config],
      ["Forwarded messages", link(`${appBase}/msg`, "in the source's application →")],
      ["Created", time(source.createdAt)],
      ["Updated", time(source.updatedAt)],
    ]),
    cron ? null : ingestUrl(path, source),
    h("h2", {}, "Endpoints"),
    h("p", { class: "muted" }, "Each endpoint gets every request the source forwards, signed by hookd with the endpoint's secret."),
    endpointList(ctx, path, endpoints),
    newEndpoint(ctx, path),
    h("h2", {}, "Log"),
    h("p", { class: "muted" }, "Every request the source received, newest first, kept 30 days."),
    table(
      [
        ["When", (l) => time(l.created_at)],
        ["Status", outcome],
        ["Error", (l) => l.error_text || "—"],
        ["Request", request],
        ["Message", (l) => (l.msg_id ? link(`${appBase}/msg/${enc(l.msg_id)}`, h("code", {}, l.msg_id)) : "—")],
      ],
      log.data,
      cron ? "No run yet." : "No request received yet.",
    ),
    pager(ctx.search, log),
    editSource(ctx, path, source),
    removeSource(ctx, path, source),
  );
}

/** A log entry's answer: forwarded (200) or refused, with the status hookd gave. */
function outcome(l) {
  return h("span", { class: "health" }, badge(l.status_code === 200 ? "forwarded" : "refused"), " ", String(l.status_code));
}

/** A log entry's payload and headers, folded. */
function request(l) {
  const size = new TextEncoder().encode(l.payload || "").length;
  return h(
    "details",
    {},
    h("summary", {}, `payload, ${size} bytes`),
    l.payload ? code(l.payload) : h("p", { class: "empty" }, "Empty body."),
    facts(Object.entries(l.headers || {}).map(([name, value]) => [name, h("span", { class: "url" }, value)])),
  );
}

function ingestUrl(path, source) {
  const url = h("input", { name: "ingestUrl", readonly: true, value: source.ingestUrl || "", "aria-label": "Ingest URL" });
  url.addEventListener("focus", () => url.select());
  const status = h("div", {});
  const copy = h(
    "button",
    {
      type: "button",
      class: "secondary",
      onclick: async () => {
        await act(copy, status, async () => {
          try {
            await navigator.clipboard.writeText(url.value);
          } catch {
            url.focus();
            throw new Error("The browser did not let the page copy: the URL is selected, copy it with Ctrl+C or ⌘C.");
          }
        }, "Copied.");
      },
    },
    "Copy",
  );
  const rotate = h(
    "button",
    {
      type: "button",
      onclick: async () => {
        if (!window.confirm("Give the source a new URL? The current one keeps working for 48 hours.")) return;
        const out = await act(rotate, status, () => api("POST", `${path}/token/rotate`, {}), "Rotated: the previous URL keeps working for 48 hours.");
        if (out && out.ingestUrl) url.value = out.ingestUrl;
      },
    },
    "Rotate URL token",
  );
  return h(
    "section",
    { class: "card" },
    h("h2", {}, "Ingest URL"),
    h("p", {}, "Give this URL to the sender; its requests must be signed as the type ", h("code", {}, source.type), " says. It needs no hookd token."),
    h("div", { class: "actions copyable" }, url, copy, rotate),
    status,
  );
}

function endpointList(ctx, path, page) {
  const status = h("div", {});
  const out = h("div", {});
  const showSecret = (ep, s) => fill(out, h("p", {}, "Signing secret of ", h("span", { class: "url" }, ep.url), ":"), code(s.key));
  const actions = (ep) => {
    const at = `${path}/endpoint/${enc(ep.id)}`;
    const reveal = h(
      "button",
      {
        type: "button",
        class: "link",
        onclick: async () => {
          const s = await act(reveal, status, () => get(`${at}/secret`));
          if (s) showSecret(ep, s);
        },
      },
      "Reveal secret",
    );
    const rotate = h(
      "button",
      {
        type: "button",
        class: "link",
        onclick: async () => {
          const s = await act(rotate, status, async () => {
            await api("POST", `${at}/secret/rotate`, {});
            return get(`${at}/secret`);
          }, "Rotated: the old secret keeps signing for 24 hours.");
          if (s) showSecret(ep, s);
        },
      },
      "Rotate secret",
    );
    const remove = confirmed("Delete", {
      question: `Delete the endpoint ${ep.url}? It gets nothing more from this source.`,
      status,
      run: () => api("DELETE", at),
      then: () => ctx.rerender(),
    });
    const edit = h(
      "button",
      {
        type: "button",
        class: "link",
        onclick: () => {
          fill(out, editEndpoint(ctx, at, ep));
          out.querySelector("input").focus();
        },
      },
      "Edit",
    );
    return h("span", { class: "actions" }, edit, reveal, rotate, remove);
  };
  return h(
    "div",
    {},
    table(
      [
        ["URL", (ep) => h("span", { class: "url" }, ep.url)],
        ["Description", (ep) => ep.description || "—"],
        ["State", (ep) => badge(ep.disabled ? "disabled" : "enabled")],
        ["Created", (ep) => time(ep.createdAt)],
        ["", actions],
      ],
      page.data,
      "No endpoint yet: what the source receives is logged but goes nowhere.",
    ),
    page.done ? null : h("p", { class: "muted" }, "The first 250 endpoints."),
    status,
    out,
  );
}

/** Changes an endpoint's URL, description and state; the rest of it is sent back as it is. */
function editEndpoint(ctx, at, ep) {
  const url = h("input", { name: "url", type: "url", required: true, value: ep.url });
  const description = h("input", { name: "description", value: ep.description || "" });
  const disabled = h("input", { type: "checkbox", name: "disabled", checked: ep.disabled });
  const status = h("div", {});
  const button = h("button", { type: "submit" }, "Save endpoint");
  return h(
    "form",
    {
      class: "card",
      onsubmit: async (e) => {
        e.preventDefault();
        const body = { url: url.value.trim(), description: description.value, disabled: disabled.checked };
        if (ep.uid) body.uid = ep.uid;
        if (ep.throttleRate) body.throttleRate = ep.throttleRate;
        if (ep.metadata) body.metadata = ep.metadata;
        if (await act(button, status, () => api("PUT", at, body))) ctx.rerender();
      },
    },
    h("h2", {}, "Edit endpoint"),
    field("URL", url),
    field("Description", description),
    h("label", { class: "check" }, disabled, " Disabled"),
    button,
    status,
  );
}

function newEndpoint(ctx, path) {
  const url = h("input", { name: "url", type: "url", required: true, placeholder: "https://example.com/webhooks" });
  const description = h("input", { name: "description" });
  const status = h("div", {});
  const button = h("button", { type: "submit" }, "Add endpoint");
  return h(
    "form",
    {
      class: "card inline",
      onsubmit: async (e) => {
        e.preventDefault();
        const body = { url: url.value.trim(), description: description.value };
        if (await act(button, status, () => api("POST", `${path}/endpoint`, body))) ctx.rerender();
      },
    },
    h("h2", {}, "New endpoint"),
    field("URL", url),
    field("Description", description),
    button,
    status,
  );
}

function removeSource(ctx, path, source) {
  const status = h("div", {});
  const button = confirmed("Delete source", {
    question: `Delete the source ${source.name}? Its URL stops working; its endpoints, messages and log go too.`,
    status,
    run: () => api("DELETE", path),
    then: () => ctx.navigate("/ui/ingest"),
    kind: "secondary",
  });
  return h("section", { class: "card" }, h("h2", {}, "Delete"), button, status);
}
