// Lead screens for A/B experiments of answer profiles (/v1/experiments).
import { api } from "./api.js";
import { announce, badge, confirmAction, field, fill, h, notice, select, table, when } from "./ui.js";

const METRIC_LABELS = {
  answered_rate: "Answered",
  abstained_rate: "Abstained",
  escalated_rate: "Escalated",
  helpful_rate: "Helpful (of answers with feedback)",
  latency_p50_ms: "Latency p50 (ms)",
};

function shown(metric, value) {
  if (value === null || value === undefined) return "—";
  return metric === "latency_p50_ms" ? value.toFixed(0) : `${(value * 100).toFixed(1)}%`;
}

function shownDifference(metric, value) {
  if (value === null || value === undefined) return "—";
  const sign = value > 0 ? "+" : "";
  return metric === "latency_p50_ms" ? `${sign}${value.toFixed(0)}` : `${sign}${(value * 100).toFixed(1)} pts`;
}

async function experimentsScreen(main) {
  const data = await api("/v1/experiments");
  const name = h("input", { type: "text", name: "name", required: true, maxlength: 200 });
  const profile = select("profile", data.profiles.map((item) => [item, item]));
  const share = h("input", { type: "number", name: "share", min: 1, max: 100, step: 1, value: 50, required: true });
  const message = h("div", { "aria-live": "polite" });
  const running = data.experiments.some((item) => item.status !== "stopped");
  const form = h(
    "form",
    {
      class: "filters",
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          const created = await api("/v1/experiments", {
            method: "POST",
            json: { name: name.value, profile: profile.value, share: Number(share.value) / 100 },
          });
          announce("Experiment started");
          location.hash = `#/experiments/${created.experiment_id}`;
        } catch (error) {
          fill(message, notice(error.message, "error"));
        }
      },
    },
    field("Name", name),
    field("Profile for B", profile),
    field("Share of new conversations for B (%)", share),
    h("button", { type: "submit", disabled: running || !data.profiles.length }, "Start experiment"),
  );
  fill(
    main,
    h("h1", {}, "Experiments"),
    h(
      "p",
      { class: "muted" },
      "A share of new conversations is answered with another profile (B); the rest with the server's own (A). A conversation's variant follows from its id.",
    ),
    table(
      "Experiments",
      ["Name", "Profile (B)", "Share", "Status", "Started", "Ended"],
      data.experiments.map((item) => [
        h("a", { href: `#/experiments/${item.experiment_id}` }, item.name),
        item.profile,
        `${Math.round(item.share * 100)}%`,
        badge(item.status),
        when(item.created_at),
        item.ended_at ? when(item.ended_at) : "—",
      ]),
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "new-experiment" },
      h("h2", { id: "new-experiment" }, "New experiment"),
      data.profiles.length
        ? running
          ? notice("An experiment is running or promoted: stop it before starting another.")
          : null
        : notice("No profiles to try: put TOML profiles in <data dir>/profiles/ (e.g. one written by answerdesk eval calibrate)."),
      form,
      message,
    ),
  );
}

async function experimentScreen(main, experimentId) {
  const detail = await api(`/v1/experiments/${encodeURIComponent(experimentId)}`);
  const message = h("div", { "aria-live": "polite" });
  const act = async (action, title, text) => {
    if (!(await confirmAction(title, text, title.split(" ")[0]))) return;
    try {
      await api(`/v1/experiments/${encodeURIComponent(experimentId)}/${action}`, { method: "POST" });
      announce(`Experiment ${action === "stop" ? "stopped" : "promoted"}`);
      await experimentScreen(main, experimentId);
    } catch (error) {
      fill(message, notice(error.message, "error"));
    }
  };
  const variants = Object.fromEntries(detail.variants.map((item) => [item.variant, item]));
  fill(
    main,
    h("h1", {}, `Experiment: ${detail.name} `, badge(detail.status)),
    h(
      "p",
      {},
      `B = profile ${detail.profile}, ${Math.round(detail.share * 100)}% of new conversations; started ${when(detail.created_at)}.`,
    ),
    table(
      "Variants",
      ["Variant", "Profile", "Conversations", "Answers", "With feedback"],
      detail.variants.map((item) => [item.variant, item.profile, item.conversations, item.answers, item.feedback]),
      { numeric: [2, 3, 4] },
    ),
    h("h2", {}, `B − A with ${Math.round(detail.confidence * 100)}% intervals`),
    table(
      "Comparison",
      ["Metric", "A", "B", "B − A", "Interval", "Verdict"],
      detail.differences.map((item) => [
        METRIC_LABELS[item.metric] || item.metric,
        shown(item.metric, variants.A[item.metric]),
        shown(item.metric, variants.B[item.metric]),
        shownDifference(item.metric, item.difference),
        item.low === null ? "—" : `${shownDifference(item.metric, item.low)} … ${shownDifference(item.metric, item.high)}`,
        item.verdict,
      ]),
    ),
    h(
      "p",
      { class: "muted" },
      "Intervals: bootstrap over conversations (each saw one variant), the maths of answerdesk eval compare.",
    ),
    h(
      "div",
      { class: "actions" },
      detail.status === "running"
        ? h(
            "button",
            {
              type: "button",
              onclick: () => act("promote", "Promote B", `Every new conversation will be answered with ${detail.profile}.`),
            },
            "Promote B",
          )
        : null,
      detail.status !== "stopped"
        ? h(
            "button",
            { type: "button", class: "danger", onclick: () => act("stop", "Stop experiment", "Every new conversation will be answered with the server's profile (A).") },
            "Stop experiment",
          )
        : null,
      h("a", { class: "button secondary", href: "#/experiments" }, "All experiments"),
    ),
    message,
  );
}

export const experimentScreens = [
  { pattern: /^\/experiments$/, nav: "/experiments", label: "Experiments", permission: "experiments", render: experimentsScreen },
  { pattern: /^\/experiments\/([0-9a-f]+)$/, title: "Experiment", permission: "experiments", render: experimentScreen },
];
