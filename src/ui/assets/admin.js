// The admin pages: overview, event types, operational webhooks, monitors, entity types and
// API tokens. A token without the ability gets the API's refusal, shown as the page.

import { h, fill, link, table, time, field, badge, pager, code, list as splitList } from "./dom.js";
import { api, get, query, enc, act, failure, confirmed } from "./api.js";
import { stackedBars } from "./charts.js";

/** Seconds as a person reads them. */
function duration(secs) {
  if (secs < 1) return "none";
  if (secs < 120) return `${Math.round(secs)} s`;
  if (secs < 7200) return `${Math.round(secs / 60)} min`;
  return `${Math.round(secs / 3600)} h`;
}

export async function overview(ctx, view) {
  const draw = (o) => {
    const minute = (m) => new Date(m.minute).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const q = o.queue;
    const last = o.perMinute[o.perMinute.length - 1] || { accepted: 0, delivered: 0 };
    fill(
      view,
      h("h1", {}, "Overview"),
      h(
        "div",
        { class: "tiles" },
        tile("Accepted this minute", last.accepted),
        tile("Delivered this minute", last.delivered),
        tile("Due now", q.due),
        tile("Oldest due waited", duration(q.oldestDueAgeSeconds)),
        tile("Waiting for a retry", q.scheduled),
        tile("In flight", q.inFlight),
        tile("Parked (endpoint disabled)", q.parked),
        tile("Endpoints enabled / disabled", `${o.endpointsEnabled} / ${o.endpointsDisabled}`),
      ),
      h(
        "div",
        { class: "charts" },
        stackedBars("Messages accepted per minute, last hour", o.perMinute.map((m) => ({ label: minute(m), values: [m.accepted] })), [
          { name: "accepted", cls: "s-info" },
        ]),
        stackedBars(
          "Attempts per minute, last hour",
          o.perMinute.map((m) => ({ label: minute(m), values: [m.delivered, m.failed] })),
          [
            { name: "delivered", cls: "s-ok" },
            { name: "failed", cls: "s-fail" },
          ],
        ),
      ),
      h("h2", {}, "Failing endpoints"),
      table(
        [
          ["Endpoint", (t) => link(`/ui/app/${enc(t.appId)}/endpoint/${enc(t.endpointId)}`, h("span", { class: "url" }, t.url))],
          ["Application", (t) => link(`/ui/app/${enc(t.appId)}`, t.appName)],
          ["Health", (t) => badge(t.state)],
          ["Failures in a row", (t) => String(t.consecutiveFailures)],
          ["Failing since", (t) => time(t.failingSince)],
        ],
        o.troubledEndpoints,
        "Every endpoint is healthy.",
      ),
      h("p", { class: "muted" }, `Updated ${new Date().toLocaleTimeString()}; refreshes every 15 seconds.`),
    );
  };
  draw(await get("/hookd/overview"));
  const refresh = async () => {
    if (!ctx.alive()) return;
    try {
      const o = await get("/hookd/overview");
      if (ctx.alive()) draw(o);
    } catch (e) {
      if (ctx.alive()) view.prepend(failure(e));
    }
    if (ctx.alive()) setTimeout(refresh, 15000);
  };
  setTimeout(refresh, 15000);
}

function tile(label, value) {
  return h("div", { class: "tile" }, h("span", { class: "tile-value" }, String(value)), h("span", { class: "tile-label" }, label));
}

export async function eventTypes(ctx, view) {
  const page = await get(`/event-type${query({ limit: 50, iterator: ctx.search.get("iterator"), with_content: true, include_archived: true })}`);
  if (!ctx.alive()) return;
  const name = h("input", { name: "name", required: true, placeholder: "invoice.paid" });
  const description = h("input", { name: "description", required: true });
  const schema = h("textarea", { name: "schema", rows: 4, placeholder: '{"type": "object", "properties": {"id": {"type": "string"}}}' });
  const status = h("div", {});
  const button = h("button", { type: "submit" }, "Create event type");
  const admin = !ctx.portal;
  const changes = h("div", {});
  const actions = (t) => {
    const at = `/event-type/${enc(t.name)}`;
    const archive = h(
      "button",
      {
        type: "button",
        class: "link",
        onclick: async () => {
          if (await act(archive, changes, () => api("PATCH", at, { archived: !t.archived }))) ctx.rerender();
        },
      },
      t.archived ? "Unarchive" : "Archive",
    );
    const remove = confirmed("Delete", {
      question: `Delete the event type ${t.name} for good? Its schemas go too; archiving keeps them.`,
      status: changes,
      // A DELETE alone archives; `expunge` removes it.
      run: () => api("DELETE", `${at}?expunge=true`),
      then: () => ctx.rerender(),
    });
    return h("span", { class: "actions" }, archive, remove);
  };
  fill(
    view,
    h("h1", {}, "Event types"),
    table(
      [
        ["Name", (t) => h("code", {}, t.name)],
        ["Description", (t) => t.description || "—"],
        ["State", (t) => (t.archived ? badge("archived") : t.deprecated ? badge("deprecated") : badge("active"))],
        [
          "Schemas",
          (t) =>
            t.schemas && Object.keys(t.schemas).length
              ? h("details", {}, h("summary", {}, `versions ${Object.keys(t.schemas).join(", ")}`), code(t.schemas))
              : "—",
        ],
        admin ? ["", actions] : null,
      ].filter(Boolean),
      page.data,
      "No event type registered (messages may still use any).",
    ),
    pager(ctx.search, page),
    changes,
    admin
      ? h(
          "form",
          {
            class: "card",
            onsubmit: async (e) => {
              e.preventDefault();
              const made = await act(button, status, async () => {
                const body = { name: name.value.trim(), description: description.value };
                if (schema.value.trim()) {
                  try {
                    body.schemas = { 1: JSON.parse(schema.value) };
                  } catch (err) {
                    throw new Error(`schema: not JSON (${err.message})`);
                  }
                }
                return api("POST", "/event-type", body);
              });
              if (made) ctx.rerender();
            },
          },
          h("h2", {}, "New event type"),
          field("Name", name),
          field("Description", description),
          field("Schema, version 1 (JSON Schema)", schema, "Optional."),
          button,
          status,
        )
      : null,
  );
}

export async function operational(ctx, view) {
  const page = await get(`/operational-webhook/endpoint${query({ limit: 50, iterator: ctx.search.get("iterator") })}`);
  if (!ctx.alive()) return;
  const status = h("div", {});
  const remove = (e) =>
    confirmed("Delete", {
      question: `Delete the operational webhook endpoint ${e.url}?`,
      status,
      run: () => api("DELETE", `/operational-webhook/endpoint/${enc(e.id)}`),
      then: () => ctx.rerender(),
    });
  const url = h("input", { name: "url", type: "url", required: true });
  const types = h("input", { name: "eventTypes", placeholder: "all; or endpoint.disabled, message.attempt.exhausted" });
  const button = h("button", { type: "submit" }, "Add endpoint");
  fill(
    view,
    h("h1", {}, "Operational webhooks"),
    h("p", {}, "Endpoints that hookd tells about what happens to your endpoints and deliveries (an endpoint disabled, attempts exhausted...)."),
    table(
      [
        ["URL", (e) => h("span", { class: "url" }, e.url)],
        ["Event types", (e) => (e.eventTypes && e.eventTypes.length ? e.eventTypes.join(", ") : "all")],
        ["State", (e) => badge(e.disabled ? "disabled" : "enabled")],
        ["Created", (e) => time(e.createdAt)],
        ["", remove],
      ],
      page.data,
      "No operational webhook endpoint.",
    ),
    pager(ctx.search, page),
    status,
    h(
      "form",
      {
        class: "card",
        onsubmit: async (e) => {
          e.preventDefault();
          const body = { url: url.value.trim() };
          const t = splitList(types.value);
          if (t) body.eventTypes = t;
          if (await act(button, status, () => api("POST", "/operational-webhook/endpoint", body))) ctx.rerender();
        },
      },
      h("h2", {}, "New operational webhook endpoint"),
      field("URL", url),
      field("Event types", types, "Comma-separated; empty: all."),
      button,
    ),
  );
}

export async function monitors(ctx, view) {
  const page = await get(`/monitor${query({ limit: 50, iterator: ctx.search.get("iterator") })}`);
  if (!ctx.alive()) return;
  const status = h("div", {});
  const name = h("input", { name: "name", required: true, placeholder: "nightly import" });
  const app = h("input", { name: "app", placeholder: "application id or uid" });
  const source = h("input", { name: "source", placeholder: "or an ingest source's id or uid" });
  const eventType = h("input", { name: "eventType", placeholder: "optional" });
  const silence = h("input", { name: "maxSilence", type: "number", min: 1, placeholder: "seconds, e.g. 90000" });
  const deadline = h("input", { name: "deadline", placeholder: "or a cron schedule, e.g. 0 3 * * *" });
  const button = h("button", { type: "submit" }, "Create monitor");
  const remove = (m) => {
    const b = confirmed("Delete", {
      question: `Delete the monitor ${m.name}?`,
      status,
      run: () => api("DELETE", `/monitor/${enc(m.id)}`),
      then: () => ctx.rerender(),
    });
    const edit = h(
      "button",
      {
        type: "button",
        class: "link",
        onclick: () => {
          fill(editing, editMonitor(ctx, m));
          editing.querySelector("input").focus();
        },
      },
      "Edit",
    );
    return h("span", { class: "actions" }, edit, b);
  };
  const editing = h("div", {});
  fill(
    view,
    h("h1", {}, "Monitors"),
    h("p", {}, "A monitor goes stale when an application's messages stop coming in time."),
    table(
      [
        ["Name", (m) => m.name],
        // A monitor watches an application's messages, or (newer hookd) an ingest source.
        ["Watches", (m) => (m.app ? link(`/ui/app/${enc(m.app)}`, h("code", {}, m.app)) : m.source ? ["source ", h("code", {}, m.source)] : "—")],
        ["Event type", (m) => m.eventType || "any"],
        ["Expects", (m) => (m.deadline ? `by cron ${m.deadline} (UTC)` : `a message every ${duration(m.maxSilence)}`)],
        ["State", (m) => badge(m.state)],
        ["Last seen", (m) => time(m.lastSeenAt)],
        ["Due", (m) => time(m.dueAt)],
        ["", remove],
      ],
      page.data,
      "No monitor.",
    ),
    pager(ctx.search, page),
    status,
    editing,
    h(
      "form",
      {
        class: "card",
        onsubmit: async (e) => {
          e.preventDefault();
          const body = { name: name.value };
          if (app.value.trim()) body.app = app.value.trim();
          if (source.value.trim()) body.source = source.value.trim();
          if (eventType.value.trim()) body.eventType = eventType.value.trim();
          if (silence.value) body.maxSilence = Number(silence.value);
          if (deadline.value.trim()) body.deadline = deadline.value.trim();
          if (await act(button, status, () => api("POST", "/monitor", body))) ctx.rerender();
        },
      },
      h("h2", {}, "New monitor"),
      field("Name", name),
      field("Application", app),
      field("Ingest source", source, "Give an application or an ingest source."),
      field("Event type", eventType),
      field("Longest silence (seconds)", silence),
      field("Deadline (cron, UTC)", deadline, "Give the longest silence or a deadline."),
      button,
    ),
  );
}

/** The form that changes a monitor's name and what it expects (what it watches stays). */
function editMonitor(ctx, m) {
  const name = h("input", { name: "name", required: true, value: m.name });
  const silence = h("input", { name: "maxSilence", type: "number", min: 1, value: m.maxSilence ?? "" });
  const deadline = h("input", { name: "deadline", value: m.deadline || "" });
  const status = h("div", {});
  const button = h("button", { type: "submit" }, "Save monitor");
  return h(
    "form",
    {
      class: "card",
      onsubmit: async (e) => {
        e.preventDefault();
        const body = { name: name.value, description: m.description ?? null };
        if (silence.value) body.maxSilence = Number(silence.value);
        if (deadline.value.trim()) body.deadline = deadline.value.trim();
        if (await act(button, status, () => api("PUT", `/monitor/${enc(m.id)}`, body))) ctx.rerender();
      },
    },
    h("h2", {}, "Edit monitor ", m.name),
    field("Name", name),
    field("Longest silence (seconds)", silence),
    field("Deadline (cron, UTC)", deadline, "Give the longest silence or a deadline."),
    button,
    status,
  );
}

export async function entityTypes(ctx, view) {
  const page = await get(`/entity-type${query({ limit: 50, iterator: ctx.search.get("iterator") })}`);
  if (!ctx.alive()) return;
  const status = h("div", {});
  const name = h("input", { name: "name", required: true, placeholder: "product" });
  const rules = h("textarea", { name: "rules", rows: 5 }, '[{"eventType": "price.changed", "field": "/price", "when": "changed"}]');
  const button = h("button", { type: "submit" }, "Save entity type");
  fill(
    view,
    h("h1", {}, "Entity types"),
    h("p", {}, "Rules that turn snapshots of your entities into messages when something in them changes."),
    table(
      [
        ["Name", (t) => h("code", {}, t.name)],
        ["Description", (t) => t.description || "—"],
        ["Rules", (t) => h("details", {}, h("summary", {}, `${t.rules.length} rule(s)`), code(t.rules))],
        ["Updated", (t) => time(t.updatedAt)],
      ],
      page.data,
      "No entity type.",
    ),
    pager(ctx.search, page),
    h(
      "form",
      {
        class: "card",
        onsubmit: async (e) => {
          e.preventDefault();
          const done = await act(button, status, async () => {
            let parsed;
            try {
              parsed = JSON.parse(rules.value);
            } catch (err) {
              throw new Error(`rules: not JSON (${err.message})`);
            }
            return api("PUT", `/entity-type/${enc(name.value.trim())}`, { rules: parsed });
          });
          if (done) ctx.rerender();
        },
      },
      h("h2", {}, "Create or replace an entity type"),
      field("Name", name),
      field("Rules (JSON)", rules),
      button,
      status,
    ),
  );
}

const ABILITIES = [
  "admin", "app:read", "app:write", "event-type:read", "event-type:write", "endpoint:read", "endpoint:write",
  "secret:read", "secret:rotate", "message:read", "message:create", "message:write", "attempt:create",
];

export async function tokens(ctx, view) {
  const page = await get(`/auth/token${query({ limit: 50, iterator: ctx.search.get("iterator") })}`);
  if (!ctx.alive()) return;
  const status = h("div", {});
  const made = h("div", {});
  const name = h("input", { name: "name", required: true, maxlength: 256 });
  const app = h("input", { name: "app", placeholder: "optional: limit to one application (id or uid)" });
  const expires = h("input", { name: "expiresAt", type: "datetime-local" });
  const boxes = ABILITIES.map((a) => h("input", { type: "checkbox", name: "ability", value: a }));
  const button = h("button", { type: "submit" }, "Create token");
  const revoke = (t) =>
    confirmed("Revoke", {
      question: `Revoke the token ${t.name}? It stops working at once.`,
      status,
      run: () => api("DELETE", `/auth/token/${enc(t.id)}`),
      then: () => ctx.rerender(),
    });
  fill(
    view,
    h("h1", {}, "API tokens"),
    table(
      [
        ["Name", (t) => t.name],
        ["Token", (t) => h("code", {}, t.censoredToken)],
        ["Kind", (t) => t.kind],
        ["Abilities", (t) => t.abilities.join(", ")],
        ["Application", (t) => (t.app ? link(`/ui/app/${enc(t.app)}`, h("code", {}, t.app)) : "all")],
        ["Expires", (t) => time(t.expiresAt)],
        ["Last used", (t) => time(t.lastUsedAt)],
        ["", revoke],
      ],
      page.data,
      "No stored token (the admin token of the configuration is not listed).",
    ),
    pager(ctx.search, page),
    status,
    h(
      "form",
      {
        class: "card",
        onsubmit: async (e) => {
          e.preventDefault();
          const body = { name: name.value, abilities: boxes.filter((b) => b.checked).map((b) => b.value) };
          if (app.value.trim()) body.app = app.value.trim();
          if (expires.value) body.expiresAt = new Date(expires.value).toISOString();
          const t = await act(button, status, () => api("POST", "/auth/token", body));
          if (t) fill(made, h("p", {}, "The new token, shown this once:"), code(t.token), link("/ui/tokens", "Done"));
        },
      },
      h("h2", {}, "New token"),
      field("Name", name),
      h("fieldset", { class: "abilities" }, h("legend", {}, "Abilities"), boxes.map((b) => h("label", { class: "check" }, b, ` ${b.value}`))),
      field("Application", app),
      field("Expires", expires, "Empty: never."),
      button,
      made,
    ),
  );
}
