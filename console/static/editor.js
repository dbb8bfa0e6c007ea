// Editor screens: documents, upload, a document's chunks, try a question.
import { ApiError, api } from "./api.js";
import { announce, badge, confirmAction, field, fill, h, highlighted, notice, percent, select, table, when } from "./ui.js";

// Per-file refusals in plain words, by the API's stable code; the API's own message follows.
const PLAIN = {
  no_text_layer: "scanned PDF without a text layer (OCR is not available)",
  corrupt_pdf: "the PDF is damaged and cannot be read",
  encrypted_pdf: "the PDF is password-protected",
  content_mismatch: "the file's content does not match its extension",
  corrupt_docx: "the Word file is damaged and cannot be read",
  unsupported_type: "this file type is not supported",
  empty_file: "the file is empty",
  no_text: "no text was found in the file",
  too_large: "the file is too large",
  invalid_utf8: "the text is not UTF-8 encoded",
  invalid_front_matter: "the front matter (the YAML block at the top) is invalid",
  invalid_csv: "the CSV file cannot be read",
  missing_columns: "the CSV file lacks the question and answer columns",
  invalid_json: "the JSON file cannot be read",
  invalid_yaml: "the YAML file cannot be read",
  invalid_faq: "the FAQ list is not in the expected shape",
  document_exists: "a document with this id exists already (open it and use Replace)",
  duplicate_id: "another file in this upload has the same document id",
  invalid_id: "the file name cannot be used as a document id",
  invalid_filename: "the file name cannot be used",
  audience_not_allowed: "this key may not write documents of that audience",
  writer_busy: "the server is busy with other writes; try again shortly",
};

export function plainError(code, message) {
  const plain = PLAIN[code];
  return plain ? `${plain} (${message})` : message;
}

const FORMATS = ".md,.markdown,.txt,.html,.htm,.pdf,.docx,.csv,.json,.yaml,.yml";

async function documentsScreen(main) {
  const data = await api("/v1/documents?limit=1000");
  const documents = data.documents;
  const distinct = (name) => [...new Set(documents.map((doc) => doc[name]).filter(Boolean))].sort();
  const search = h("input", { type: "search", name: "q", placeholder: "title or id" });
  const language = select("language", [["", "any"], ...distinct("language").map((v) => [v, v])]);
  const audience = select("audience", [["", "any"], ...distinct("audience").map((v) => [v, v])]);
  const product = select("product", [["", "any"], ...distinct("product").map((v) => [v, v])]);
  const results = h("div");
  const count = h("p", { class: "muted", "aria-live": "polite" });
  const draw = () => {
    const needle = search.value.trim().toLowerCase();
    const shown = documents.filter(
      (doc) =>
        (!needle || doc.title.toLowerCase().includes(needle) || doc.document_id.toLowerCase().includes(needle)) &&
        (!language.value || doc.language === language.value) &&
        (!audience.value || doc.audience === audience.value) &&
        (!product.value || doc.product === product.value),
    );
    count.textContent = `${shown.length} of ${documents.length} documents`;
    fill(results,
      table(
        "Documents",
        ["Title", "Id", "Language", "Audience", "Product", "Version", "Updated", "Chunks"],
        shown.map((doc) => [
          h("a", { href: `#/documents/${encodeURIComponent(doc.document_id)}`, lang: doc.language }, doc.title),
          doc.document_id,
          doc.language,
          doc.audience,
          doc.product || "—",
          doc.version,
          when(doc.updated_at),
          doc.chunks,
        ]),
        { numeric: [5, 7] },
      ),
    );
  };
  for (const control of [search, language, audience, product]) control.addEventListener("input", draw);
  fill(main,
    h("h1", {}, "Documents"),
    h("div", { class: "actions" }, h("a", { class: "button", href: "#/upload" }, "Upload documents")),
    h(
      "form",
      { class: "filters", role: "search", onsubmit: (event) => event.preventDefault() },
      field("Search", search),
      field("Language", language),
      field("Audience", audience),
      field("Product", product),
    ),
    count,
    results,
  );
  draw();
}

// One outcome line per file: added/updated with its chunks, or refused with the reason in plain words.
function outcomeItem(result) {
  if (result.outcome === "failed") {
    return h("li", { class: "error" }, h("strong", {}, result.file), ": refused — ", plainError(result.code, result.error));
  }
  const link = h("a", { href: `#/documents/${encodeURIComponent(result.document_id)}` }, result.document_id);
  return h("li", { class: "ok" }, h("strong", {}, result.file), `: ${result.outcome} as `, link, ` (${result.chunks} chunks)`);
}

async function uploadScreen(main) {
  const input = h("input", { type: "file", name: "file", multiple: true, accept: FORMATS });
  const progress = h("progress", { max: 1, value: 0, hidden: true, "aria-label": "Upload progress" });
  const progressText = h("p", { "aria-live": "polite" });
  const list = h("ul", { class: "files", "aria-label": "Upload results" });
  const drop = h(
    "div",
    { class: "drop", id: "drop" },
    h("p", {}, "Drop files here, or choose them:"),
    field("Files to upload", input),
    h("p", { class: "muted" }, "Markdown, text, HTML, PDF (with a text layer), DOCX, and FAQ lists in CSV, JSON or YAML."),
  );
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    upload([...event.dataTransfer.files]);
  });
  input.addEventListener("change", () => upload([...input.files]));

  async function upload(files) {
    if (!files.length) return;
    fill(list);
    const form = new FormData();
    for (const file of files) form.append("file", file, file.name);
    progress.hidden = false;
    progress.max = files.length;
    progress.value = 0;
    progressText.textContent = `Uploading ${files.length} file(s)…`;
    let results;
    try {
      const reply = await api("/v1/documents", { method: "POST", form });
      results = reply.job_id ? await follow(reply) : [reply];
    } catch (error) {
      if (!(error instanceof ApiError) || files.length !== 1) throw error;
      // One file is written at once; a refusal is the file's outcome.
      results = [{ file: files[0].name, outcome: "failed", code: error.code, error: error.message }];
    }
    progress.value = progress.max;
    fill(list, ...results.map(outcomeItem));
    const failed = results.filter((result) => result.outcome === "failed").length;
    progressText.textContent = `Done: ${results.length - failed} ingested, ${failed} refused.`;
    announce(progressText.textContent);
    input.value = "";
  }

  // Poll the job, showing each file's outcome as it arrives.
  async function follow(job) {
    while (true) {
      progress.value = job.files_done;
      progressText.textContent = `Processing: ${job.files_done} of ${job.files_total} file(s) done (${job.status}).`;
      fill(list, ...job.results.map(outcomeItem));
      if (["succeeded", "failed", "cancelled"].includes(job.status)) return job.results;
      await new Promise((resolve) => setTimeout(resolve, 400));
      job = await api(`/v1/jobs/${encodeURIComponent(job.job_id)}`);
    }
  }

  fill(main, h("h1", {}, "Upload documents"), drop, progress, progressText, list);
}

async function documentScreen(main, documentId) {
  const doc = await api(`/v1/documents/${encodeURIComponent(documentId).replaceAll("%2F", "/")}`);
  const path = `/v1/documents/${encodeURIComponent(doc.document_id).replaceAll("%2F", "/")}`;
  const replaceInput = h("input", { type: "file", name: "file", accept: FORMATS });
  const message = h("div", { "aria-live": "polite" });
  const replace = async () => {
    const file = replaceInput.files[0];
    if (!file) return fill(message, notice("Choose the new file first.", "error"));
    if (!(await confirmAction("Replace this document?", `${doc.title} (version ${doc.version}) will be replaced by ${file.name}.`, "Replace"))) return;
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const result = await api(path, { method: "PUT", form });
      fill(message, notice(`Replaced: ${result.outcome}, version ${result.version}, ${result.chunks} chunks.`));
      await documentScreen(main, doc.document_id);
      announce("Document replaced");
    } catch (error) {
      fill(message, notice(plainError(error.code, error.message), "error"));
    }
  };
  const remove = async () => {
    if (!(await confirmAction("Delete this document?", `${doc.title} leaves answers at once. This cannot be undone.`, "Delete"))) return;
    try {
      await api(path, { method: "DELETE" });
      announce("Document deleted");
      location.hash = "#/documents";
    } catch (error) {
      fill(message, notice(error.message, "error"));
    }
  };
  const meta = doc.metadata || {};
  fill(main,
    h("h1", { lang: doc.language }, doc.title),
    h(
      "dl",
      { class: "meta" },
      [
        ["Id", doc.document_id],
        ["Language", doc.language],
        ["Kind", doc.kind],
        ["Audience", doc.audience],
        ["Product", doc.product || "—"],
        ["Tags", meta.tags || "—"],
        ["Version", doc.version],
        ["Updated", when(doc.updated_at)],
        ["Source", doc.source],
      ].map(([name, value]) => [h("dt", {}, name), h("dd", { id: `meta-${name.toLowerCase()}` }, value)]),
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "manage" },
      h("h2", { id: "manage" }, "Replace or delete"),
      field("New version of this document", replaceInput),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", onclick: replace }, "Replace"),
        h("button", { type: "button", class: "danger", onclick: remove }, "Delete document"),
      ),
      message,
    ),
    h("h2", {}, `Chunks (${doc.chunk_details.length}), as the engine sees them`),
    doc.chunk_details.map((chunk) =>
      h(
        "article",
        { class: "card", "aria-label": `Chunk ${chunk.position + 1}` },
        h("p", { class: "path" }, `${chunk.position + 1}. ${chunk.section || "(no heading)"} · ${chunk.kind} · ${chunk.chunk_id}`),
        h("div", { class: "chunk", lang: doc.language }, chunk.text),
      ),
    ),
  );
}

async function tryScreen(main) {
  const question = h("textarea", { name: "question", rows: 3, required: true, maxlength: 2000 });
  const language = select("language", [
    ["", "detect"],
    ["en", "English"],
    ["lv", "Latvian"],
    ["ru", "Russian"],
    ["zh", "Chinese"],
    ["de", "German"],
    ["es", "Spanish"],
  ]);
  const output = h("div", { "aria-live": "polite", id: "preview" });
  const form = h(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        fill(output, h("p", { class: "muted" }, "Asking…"));
        try {
          const body = { question: question.value };
          if (language.value) body.language = language.value;
          renderPreview(output, await api("/v1/preview", { method: "POST", json: body }));
          announce("Answer ready");
        } catch (error) {
          fill(output, notice(error.message, "error"));
        }
      },
    },
    field("Question", question),
    field("Language", language),
    h("button", { type: "submit" }, "Ask"),
  );
  fill(main,
    h("h1", {}, "Try a question"),
    h("p", { class: "muted" }, "Answered as a customer with this key's tenant and audience would be; nothing is recorded."),
    form,
    output,
  );
}

function renderPreview(output, preview) {
  const answer = preview.answer;
  const byChunk = new Map(preview.candidates.map((candidate) => [candidate.chunk_id, candidate]));
  fill(output,
    h("h2", {}, "Answer"),
    h(
      "p",
      {},
      badge(answer.status),
      ` confidence ${percent(answer.confidence)} · language ${answer.language}`,
    ),
    h("p", { class: "card", lang: answer.language, id: "answer-text" }, answer.answer),
    h("h3", {}, "Reasons"),
    h("ul", {}, answer.reasons.map((reason) => h("li", {}, reason))),
    h("h3", {}, `Citations (${answer.citations.length})`),
    answer.citations.map((citation, index) => {
      const chunk = byChunk.get(citation.chunk_id);
      return h(
        "article",
        { class: "card citation" },
        h(
          "p",
          { class: "path" },
          `[${index + 1}] `,
          h("a", { href: `#/documents/${encodeURIComponent(citation.document_id)}`, lang: citation.language }, citation.title),
          ` · ${citation.section || "(no heading)"} · score ${citation.score.toFixed(3)}`,
        ),
        h("div", { class: "chunk", lang: citation.language }, highlighted(chunk ? chunk.text : citation.quote, citation.quote)),
      );
    }),
    h("h3", {}, "Candidates the decision saw"),
    table(
      "Candidate passages",
      ["#", "Passage", "Heading path", "Dense", "Lexical", "Best sentence", "Why"],
      preview.candidates.map((candidate) => [
        candidate.rank,
        h("a", { href: `#/documents/${encodeURIComponent(candidate.document_id)}`, lang: candidate.language }, candidate.title),
        candidate.section || "—",
        candidate.score.toFixed(3),
        candidate.lexical_score.toFixed(2),
        candidate.best_sentence === null ? "—" : candidate.best_sentence.toFixed(3),
        candidate.cited ? h("strong", {}, candidate.why) : candidate.why,
      ]),
      { numeric: [0, 3, 4, 5] },
    ),
  );
}

export const editorScreens = [
  { pattern: /^\/documents$/, nav: "/documents", label: "Documents", permission: "documents", render: documentsScreen },
  { pattern: /^\/upload$/, nav: "/upload", label: "Upload", permission: "documents", render: uploadScreen },
  { pattern: /^\/documents\/(.+)$/, title: "Document", permission: "documents", render: documentScreen },
  { pattern: /^\/try$/, nav: "/try", label: "Try a question", permission: "documents", render: tryScreen },
];
