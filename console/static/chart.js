// Stacked bar charts drawn as SVG by hand: a chart library would outweigh the whole console.
import { downloadCsv, h } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  for (const child of children) element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return element;
}

function niceMax(value) {
  // Halves stay whole numbers: 4, 10, 20, 40, 100, …
  if (value <= 4) return 4;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 4, 10]) if (step * power >= value) return step * power;
  return value;
}

// A figure with a stacked bar chart of `rows` (one bar per label), a legend, the data as a table
// (behind a disclosure, for screen readers and exact figures) and a CSV export of the same rows.
// series: [{key, label, color}]; rows: [{label, [key]: number}].
export function stackedBars({ id, title, series, rows, filename }) {
  const width = Math.max(360, rows.length * 28 + 60);
  const height = 220;
  const left = 40;
  const bottom = 40;
  const plot = height - bottom - 10;
  const max = niceMax(Math.max(1, ...rows.map((row) => series.reduce((sum, item) => sum + (row[item.key] || 0), 0))));
  const band = (width - left - 10) / Math.max(1, rows.length);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-labelledby": `${id}-title` });
  for (const tick of [0, max / 2, max]) {
    const y = 10 + plot - (tick / max) * plot;
    svg.append(s("line", { x1: left, x2: width - 10, y1: y, y2: y, stroke: "#d5dae1" }));
    svg.append(s("text", { x: left - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#5a6472" }, String(tick)));
  }
  rows.forEach((row, index) => {
    let y = 10 + plot;
    const x = left + index * band + band * 0.15;
    for (const item of series) {
      const value = row[item.key] || 0;
      if (!value) continue;
      const barHeight = (value / max) * plot;
      y -= barHeight;
      svg.append(
        s("rect", { x, y, width: band * 0.7, height: barHeight, fill: item.color }, s("title", {}, `${row.label}: ${value} ${item.label}`)),
      );
    }
    const every = Math.ceil(rows.length / 12);
    if (index % every === 0) {
      svg.append(
        s("text", { x: x + band * 0.35, y: height - bottom + 16, "text-anchor": "middle", "font-size": 11, fill: "#5a6472" }, row.short || row.label),
      );
    }
  });
  const header = ["label", ...series.map((item) => item.key)];
  const data = rows.map((row) => [row.label, ...series.map((item) => row[item.key] || 0)]);
  return h(
    "figure",
    { class: "chart card", id },
    h("figcaption", { id: `${id}-title` }, h("strong", {}, title)),
    h(
      "ul",
      { class: "legend" },
      series.map((item) => {
        const swatch = h("span", { class: "swatch", "aria-hidden": "true" });
        swatch.style.background = item.color; // CSSOM, allowed by the page's CSP (a style attribute is not)
        return h("li", {}, swatch, item.label);
      }),
    ),
    svg,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "secondary", onclick: () => downloadCsv(filename, header, data) }, `Export CSV: ${title}`),
    ),
    h(
      "details",
      {},
      h("summary", {}, "Show the figures as a table"),
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, header.map((text) => h("th", { scope: "col" }, text)))),
        h("tbody", {}, data.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))),
      ),
    ),
  );
}
