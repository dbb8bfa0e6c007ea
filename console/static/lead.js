// Lead screens (admin keys): the dashboard, the gap report, keys.
import { api, query } from "./api.js";
import { stackedBars } from "./chart.js";
import { announce, confirmAction, field, fill, h, notice, percent, select, table, when } from "./ui.js";

const STATUS_SERIES = [
  { key: "answered", label: "answered", color: "#2e7d32" },
  { key: "abstained", label: "abstained", color: "#b26a00" },
  { key: "escalated", label: "escalated", color: "#c62828" },
];
const FEEDBACK_SERIES = [
  { key: "helpful", label: "helpful", color: "#1f5fbf" },
  { key: "not_helpful", label: "not helpful", color: "#9aa3ad" },
];

function periodForm(onChange) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const today = new Date().toISOString().slice(0, 10);
  const monthAgo = new Date(Date.now() - 29 * 86400000).toISOString().slice(0, 10);
  const since = h("input", { type: "date", name: "since", value: params.get("since") || monthAgo });
  const until = h("input", { type: "date", name: "until", value: params.get("until") || today });
  const form = h(
    "form",
    {
      class: "filters",
      onsubmit: (event) => {
        event.preventDefault();
        onChange(since.value, until.value);
      },
    },
    field("From", since),
    field("To", until),
    h("button", { type: "submit" }, "Show"),
  );
  return { form, since, until };
}

function tile(label, value, id) {
  return h("div", { class: "tile" }, h("div", { class: "muted" }, label), h("div", { class: "value", id }, value));
}

async function dashboardScreen(main) {
  const output = h("div", { "aria-live": "polite" });
  const load = async (since, until) => {
    fill(output, h("p", { class: "muted" }, "Loading…"));
    try {
      const stats = await api("/v1/stats" + query({ since, until }));
      drawDashboard(output, stats);
    } catch (error) {
      fill(output, notice(error.message, "error"));
    }
  };
  const period = periodForm(load);
  fill(main, h("h1", {}, "Dashboard"), period.form, output);
  await load(period.since.value, period.until.value);
}

function drawDashboard(output, stats) {
  const range = `${stats.since}_${stats.until}`;
  const days = stats.days.map((day) => ({ ...day, label: day.day, short: day.day.slice(5) }));
  fill(output,
    h(
      "div",
      { class: "tiles", id: "totals" },
      tile("Questions", stats.totals.total, "total-questions"),
      tile("Answered", stats.totals.answered, "total-answered"),
      tile("Abstained", stats.totals.abstained, "total-abstained"),
      tile("Escalated", stats.totals.escalated, "total-escalated"),
      tile("Escalation rate", percent(stats.escalation_rate), "escalation-rate"),
      tile("Resolution rate", percent(stats.resolution_rate), "resolution-rate"),
      tile("Helpful / not", `${stats.helpful} / ${stats.not_helpful}`, "feedback"),
      tile("Latency p50 / p95", stats.latency_p50_ms === null ? "—" : `${Math.round(stats.latency_p50_ms)} / ${Math.round(stats.latency_p95_ms)} ms`, "latency"),
    ),
    stackedBars({ id: "chart-days", title: "Questions per day by status", series: STATUS_SERIES, rows: days, filename: `questions-per-day_${range}.csv` }),
    stackedBars({
      id: "chart-languages",
      title: "Questions per language",
      series: STATUS_SERIES,
      rows: stats.languages.map((row) => ({ ...row, label: row.language })),
      filename: `questions-per-language_${range}.csv`,
    }),
    stackedBars({ id: "chart-feedback", title: "Feedback per day", series: FEEDBACK_SERIES, rows: days, filename: `feedback-per-day_${range}.csv` }),
    h("h2", {}, "Escalations"),
    h("p", {}, `${stats.escalations} created in the period, ${stats.escalations_resolved} resolved. `, h("a", { href: "#/inbox" }, "Open the inbox")),
  );
}

async function gapsScreen(main) {
  const output = h("div", { "aria-live": "polite" });
  const load = async (since, until) => {
    fill(output, h("p", { class: "muted" }, "Clustering the unanswered questions…"));
    try {
      const report = await api("/v1/gaps" + query({ since, until }));
      fill(output,
        h("p", {}, `${report.unanswered} unanswered question(s) in ${report.clusters.length} group(s), largest first.`),
        table(
          "Knowledge-base gaps",
          ["Questions", "Languages", "Examples", "Nearest document", "To do"],
          report.clusters.map((cluster) => [
            cluster.size,
            Object.entries(cluster.languages).map(([language, count]) => `${language} ${count}`).join(", "),
            h("ul", {}, cluster.examples.map((example) => h("li", { lang: example.language }, `${example.language}: ${example.question}`))),
            cluster.nearest
              ? [h("a", { href: `#/documents/${encodeURIComponent(cluster.nearest.document_id)}` }, cluster.nearest.title), ` · ${cluster.nearest.section || ""} (${cluster.nearest.score.toFixed(3)})`]
              : "—",
            h("a", { href: "#/upload" }, "Write this article"),
          ]),
          { numeric: [0] },
        ),
      );
    } catch (error) {
      fill(output, notice(error.message, "error"));
    }
  };
  const period = periodForm(load);
  fill(main, h("h1", {}, "Knowledge-base gaps"), period.form, output);
  await load(period.since.value, period.until.value);
}

async function keysScreen(main) {
  const data = await api("/v1/keys");
  const role = select("role", [["reader", "reader"], ["editor", "editor"], ["agent", "agent"], ["admin", "admin"]]);
  const audience = select("audience", [["public", "public"], ["internal", "internal"]]);
  const name = h("input", { type: "text", name: "name", maxlength: 100 });
  const created = h("div", { "aria-live": "polite" });
  const revoke = async (key) => {
    if (!(await confirmAction("Revoke this key?", `${key.name || key.key_id} (${key.role}) stops working at its next request.`, "Revoke"))) return;
    try {
      await api(`/v1/keys/${encodeURIComponent(key.key_id)}`, { method: "DELETE" });
      announce("Key revoked");
      await keysScreen(main);
    } catch (error) {
      fill(created, notice(error.message, "error"));
    }
  };
  fill(main,
    h("h1", {}, "API keys"),
    table(
      "API keys",
      ["Name", "Key id", "Role", "Audience", "Created", "Revoked", ""],
      data.keys.map((key) => [
        key.name || "—",
        key.key_id,
        key.role,
        key.audience,
        when(key.created_at),
        key.revoked_at ? when(key.revoked_at) : "—",
        key.revoked_at ? "" : h("button", { type: "button", class: "secondary", onclick: () => revoke(key), "aria-label": `Revoke ${key.name || key.key_id}` }, "Revoke"),
      ]),
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "new-key" },
      h("h2", { id: "new-key" }, "New key"),
      h(
        "form",
        {
          class: "filters",
          onsubmit: async (event) => {
            event.preventDefault();
            try {
              const result = await api("/v1/keys", { method: "POST", json: { role: role.value, audience: audience.value, name: name.value } });
              await keysScreen(main);
              main.querySelector("#new-key").after(
                notice("Copy the key now: it is shown only once."),
                h("p", { class: "token", id: "new-token" }, result.key),
              );
              announce("Key created");
            } catch (error) {
              fill(created, notice(error.message, "error"));
            }
          },
        },
        field("Role", role),
        field("Audience", audience),
        field("Name", name),
        h("button", { type: "submit" }, "Create key"),
      ),
      created,
    ),
  );
}

export const leadScreens = [
  { pattern: /^\/dashboard(?:\?.*)?$/, nav: "/dashboard", label: "Dashboard", permission: "stats", render: dashboardScreen },
  { pattern: /^\/gaps(?:\?.*)?$/, nav: "/gaps", label: "Gaps", permission: "stats", render: gapsScreen },
  { pattern: /^\/keys$/, nav: "/keys", label: "Keys", permission: "keys", render: keysScreen },
];
