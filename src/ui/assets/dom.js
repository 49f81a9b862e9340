// Building the DOM safely: every piece of data goes in as text (textContent, attribute
// values), never as HTML, so nothing an API answer holds can run in the page.

/** An element: h("a", {href: "/ui", class: "x", onclick: f}, "text", child, [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "value") {
      el.value = value;
    } else if (key === "checked") {
      el.checked = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A timestamp in the viewer's time zone (empty for none). */
export function when(ts) {
  if (!ts) return "—";
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : d.toLocaleString();
}

/** A <time> element, with the exact instant in its title. */
export function time(ts) {
  return ts ? h("time", { datetime: ts, title: ts }, when(ts)) : "—";
}

/** A link inside the app (handled by the router, see app.js). */
export function link(href, ...children) {
  return h("a", { href, "data-link": true }, ...children);
}

/** A table: columns are [label, row => cell]; an empty list shows `empty`. */
export function table(columns, rows, empty = "Nothing here yet.") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, columns.map(([label]) => h("th", { scope: "col" }, label)))),
      h(
        "tbody",
        {},
        rows.map((row) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row))))),
      ),
    ),
  );
}

/** Pretty JSON (or text as it is) in a scrolling block. */
export function code(value) {
  let text = value;
  if (typeof value !== "string") text = JSON.stringify(value, null, 2);
  else {
    try {
      text = JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      text = value;
    }
  }
  return h("pre", { class: "code", tabindex: "0" }, text);
}

let fieldCount = 0;

/** A label with its control, and a hint the control is described by. */
export function field(label, control, hint) {
  const id = control.id || `f${++fieldCount}`;
  control.id = id;
  let note = null;
  if (hint) {
    note = h("small", { id: `${id}-hint` }, hint);
    control.setAttribute("aria-describedby", note.id);
  }
  return h("div", { class: "field" }, h("label", { for: id }, label), control, note);
}

/** A definition list of [term, value] pairs. */
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(Boolean).map(([term, value]) => [h("dt", {}, term), h("dd", {}, value ?? "—")]),
  );
}

/** A badge for a state (healthy, failing, success, fail, ...). */
export function badge(state) {
  return h("span", { class: `badge badge-${String(state).toLowerCase()}` }, state);
}

/** Splits "a, b ,c" into ["a", "b", "c"]; empty gives null. */
export function list(text) {
  const items = text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return items.length ? items : null;
}

/**
 * Links to the previous and next pages of a list answer ({data, iterator, prevIterator,
 * done}), keeping the page's other query parameters. `done` speaks of the direction the
 * page was fetched in: forwards (an iterator, or none) or backwards (a `-` iterator).
 */
export function pager(search, page) {
  const at = (iterator) => {
    const q = new URLSearchParams(search);
    q.set("iterator", iterator);
    return `${location.pathname}?${q}`;
  };
  const current = search.get("iterator") || "";
  const backwards = current.startsWith("-");
  const hasPrevious = backwards ? !page.done : current !== "";
  const hasNext = backwards ? true : !page.done;
  const links = [];
  if (hasPrevious && page.prevIterator) links.push(link(at(page.prevIterator), "← Previous"));
  if (hasNext && page.iterator) links.push(link(at(page.iterator), "Next →"));
  return links.length ? h("nav", { class: "pager", "aria-label": "Pages" }, links) : null;
}
