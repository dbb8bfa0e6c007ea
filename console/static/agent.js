// Agent screens: the escalation inbox and one escalation with its resolution form.
import { api, query } from "./api.js";
import { announce, badge, downloadText, field, fill, h, notice, percent, select, table, when } from "./ui.js";

const REASONS = [
  "customer_requested_human",
  "strong_emotion",
  "urgent",
  "sensitive_topic",
  "repeated_abstention",
  "caller_requested",
];
const LANGUAGES = ["en", "lv", "ru", "zh", "de", "es", "fr"];

async function inboxScreen(main) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const status = select("status", [["", "any"], ["open", "open"], ["resolved", "resolved"]], params.get("status") ?? "open");
  const reason = select("reason", [["", "any"], ...REASONS.map((code) => [code, code.replaceAll("_", " ")])], params.get("reason") || "");
  const language = select("language", [["", "any"], ...LANGUAGES.map((code) => [code, code])], params.get("language") || "");
  const results = h("div", { "aria-live": "polite" });
  const load = async () => {
    const data = await api("/v1/escalations" + query({ status: status.value, reason: reason.value, language: language.value, limit: 200 }));
    fill(results,
      h("p", { class: "muted" }, `${data.total} escalation(s), newest first`),
      table(
        "Escalations",
        ["Created", "Question", "Language", "Reasons", "Confidence", "Status"],
        data.escalations.map((row) => [
          when(row.created_at),
          h("a", { href: `#/escalations/${encodeURIComponent(row.escalation_id)}`, lang: row.language }, row.question || "(no text)"),
          row.language,
          row.reason_codes.join(", "),
          percent(row.confidence),
          badge(row.status),
        ]),
        { numeric: [4] },
      ),
    );
  };
  for (const control of [status, reason, language]) control.addEventListener("change", () => load().catch(showError));
  const showError = (error) => fill(results, notice(error.message, "error"));
  fill(main,
    h("h1", {}, "Escalation inbox"),
    h("form", { class: "filters", onsubmit: (event) => event.preventDefault() }, field("Status", status), field("Reason", reason), field("Language", language)),
    results,
  );
  await load();
}

async function escalationScreen(main, escalationId) {
  const row = await api(`/v1/escalations/${encodeURIComponent(escalationId)}`);
  const record = row.record;
  const attempted = record.attempted_answer;
  const answer = h("textarea", { name: "answer", rows: 5, required: true, maxlength: 10000 });
  const agent = h("input", { type: "text", name: "agent", maxlength: 200, autocomplete: "name" });
  const faq = h("input", { type: "checkbox", name: "offer_as_faq", id: "offer-faq", checked: true });
  const gap = h("input", { type: "checkbox", name: "kb_gap", id: "kb-gap" });
  const message = h("div", { "aria-live": "polite" });
  const resolveForm = h(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          await api(`/v1/escalations/${encodeURIComponent(row.escalation_id)}/resolve`, {
            method: "POST",
            json: { answer: answer.value, agent: agent.value || null, offer_as_faq: faq.checked, kb_gap: gap.checked },
          });
          announce("Escalation resolved");
          await escalationScreen(main, row.escalation_id);
          main.querySelector("#resolution")?.focus();
        } catch (error) {
          fill(message, notice(error.message, "error"));
        }
      },
    },
    field("Your reply to the customer", answer),
    field("Agent name", agent),
    h("label", { class: "check", for: "offer-faq" }, faq, "Offer this reply to editors as a FAQ candidate"),
    h("label", { class: "check", for: "kb-gap" }, gap, "The knowledge base does not cover this question"),
    h("button", { type: "submit" }, "Resolve"),
    message,
  );
  fill(main,
    h("h1", {}, "Escalation ", badge(row.status)),
    h(
      "dl",
      { class: "meta" },
      [
        ["Question", h("span", { lang: row.language }, record.question)],
        ["Language", row.language],
        ["Created", when(row.created_at)],
        ["Confidence", percent(row.confidence)],
        ["Conversation", row.conversation_id],
      ].map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]),
    ),
    h("h2", {}, "Reasons"),
    h("ul", {}, record.reasons.map((reason) => h("li", {}, reason))),
    h("h2", {}, "Transcript"),
    h(
      "div",
      { class: "transcript" },
      record.transcript.map((entry) =>
        h("p", { class: entry.role, lang: entry.role === "customer" ? row.language : null }, h("strong", {}, `${entry.role} (${when(entry.at)}): `), entry.text),
      ),
    ),
    h("h2", {}, "Attempted answer"),
    h("p", {}, badge(attempted.status), ` confidence ${percent(attempted.confidence)}`),
    h("p", { class: "card", lang: row.language }, attempted.answer),
    h("ul", {}, attempted.reasons.map((reason) => h("li", {}, reason))),
    h("h2", {}, "Candidate sources"),
    table(
      "Candidate sources",
      ["Document", "Heading path", "Language", "Score"],
      record.candidates.map((candidate) => [
        h("span", { lang: candidate.language }, `${candidate.title} (${candidate.document_id})`),
        candidate.section || "—",
        candidate.language,
        candidate.score.toFixed(3),
      ]),
      { numeric: [3] },
    ),
    row.resolution
      ? h(
          "section",
          { class: "card", id: "resolution", tabindex: -1, "aria-labelledby": "resolution-title" },
          h("h2", { id: "resolution-title" }, "Resolved"),
          h("p", {}, `${when(row.resolved_at)} by ${row.resolution.agent || "an agent"}${row.resolution.offer_as_faq ? " · offered as FAQ" : ""}`),
          h("p", { class: "chunk" }, row.resolution.answer),
        )
      : h("section", { class: "card", "aria-labelledby": "resolve-title" }, h("h2", { id: "resolve-title" }, "Resolve"), resolveForm),
  );
}

async function faqScreen(main) {
  const data = await api("/v1/faq-candidates");
  fill(main,
    h("h1", {}, "FAQ candidates"),
    h("p", { class: "muted" }, "Agents' replies offered as FAQ entries. Review the draft, then upload it as a document."),
    table(
      "FAQ candidates",
      ["Question", "Answer", "Language", "Agent", "Resolved"],
      data.candidates.map((row) => [
        h("span", { lang: row.language }, row.question),
        h("span", { lang: row.language }, row.answer),
        row.language,
        row.agent || "—",
        when(row.resolved_at),
      ]),
    ),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", onclick: () => downloadText("faq-candidates.md", data.markdown, "text/markdown;charset=utf-8") }, "Download the Markdown draft"),
    ),
    field("Markdown draft", h("textarea", { rows: 10, readonly: true }, data.markdown)),
  );
}

export const agentScreens = [
  { pattern: /^\/inbox(?:\?.*)?$/, nav: "/inbox", label: "Inbox", permission: "escalations", render: inboxScreen },
  { pattern: /^\/escalations\/([^/?]+)$/, title: "Escalation", permission: "escalations", render: escalationScreen },
  { pattern: /^\/faq$/, nav: "/faq", label: "FAQ candidates", permission: "faq_candidates", render: faqScreen },
];
