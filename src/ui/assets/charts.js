// Small inline SVG charts, drawn from numbers (no library). Each bar has a <title>, so a
// pointer or a screen reader gets its figures; the chart as a whole has an aria-label.

import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  return el;
}

/**
 * Stacked bars: `points` are {label, values: [n, ...]}, one bar per point, one segment per
 * series (`series`: [{name, cls}]). Scales to the largest total; the frame is 100 units high
 * and stretches to its box's width.
 */
export function stackedBars(title, points, series) {
  const width = Math.max(points.length * 10, 100);
  const height = 100;
  const max = Math.max(1, ...points.map((p) => p.values.reduce((a, b) => a + b, 0)));
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: "none",
    role: "img",
    "aria-label": `${title}, ${points.length} bars, largest ${max}`,
    class: "chart",
  });
  points.forEach((p, i) => {
    let y = height;
    const text = `${p.label}: ${series.map((s, j) => `${s.name} ${p.values[j]}`).join(", ")}`;
    const group = svg("g", {}, svg("title", {}, text));
    p.values.forEach((v, j) => {
      if (!v) return;
      const barHeight = (v / max) * (height - 4);
      y -= barHeight;
      group.appendChild(
        svg("rect", { x: i * 10 + 1, y, width: 8, height: barHeight, class: series[j].cls }),
      );
    });
    // An invisible full-height rectangle, so the title shows wherever the column is hovered.
    group.appendChild(svg("rect", { x: i * 10, y: 0, width: 10, height, class: "hit" }));
    chart.appendChild(group);
  });
  const totals = series.map((s, j) => points.reduce((a, p) => a + p.values[j], 0));
  return h(
    "figure",
    { class: "figure" },
    h("figcaption", {}, title, " ", h("span", { class: "muted" }, `(peak ${max})`)),
    chart,
    points.length ? h("div", { class: "axis", "aria-hidden": "true" }, h("span", {}, points[0].label), h("span", {}, points[points.length - 1].label)) : null,
    h(
      "div",
      { class: "legend" },
      series.map((s, j) => h("span", {}, h("i", { class: `swatch ${s.cls}` }), `${s.name}: ${totals[j]}`)),
    ),
  );
}

/** A bar for a share (0–1), e.g. an endpoint's success rate. */
export function meter(share, label) {
  const pct = Math.round(Math.max(0, Math.min(1, share)) * 100);
  return h(
    "span",
    { class: "meter", role: "meter", "aria-valuenow": pct, "aria-valuemin": 0, "aria-valuemax": 100, "aria-label": label },
    svg("svg", { viewBox: "0 0 100 8", preserveAspectRatio: "none" },
      svg("rect", { x: 0, y: 0, width: 100, height: 8, class: "meter-bg" }),
      svg("rect", { x: 0, y: 0, width: pct, height: 8, class: pct >= 90 ? "s-ok" : pct >= 50 ? "s-warn" : "s-fail" }),
    ),
    ` ${pct}%`,
  );
}
