// Small DOM helpers shared by the screens. Text is always set as text, never parsed as HTML.

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

let fieldCount = 0;

// A labelled control: <div class="field"><label for=id>…</label>control</div>.
export function field(label, control) {
  if (!control.id) control.id = `f${++fieldCount}`;
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control);
}

export function select(name, options, value = "") {
  return h(
    "select",
    { name },
    options.map(([optionValue, text]) => h("option", { value: optionValue, selected: optionValue === value }, text)),
  );
}

export function table(caption, headers, rows, { numeric = [] } = {}) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, headers.map((text, i) => h("th", { scope: "col", class: numeric.includes(i) ? "num" : null }, text)))),
      h(
        "tbody",
        {},
        rows.length
          ? rows.map((cells) => h("tr", {}, cells.map((cell, i) => h("td", { class: numeric.includes(i) ? "num" : null }, cell))))
          : h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "Nothing to show.")),
      ),
    ),
  );
}

export function badge(text) {
  return h("span", { class: `badge ${text}` }, text);
}

export function notice(text, kind = "") {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : null }, text);
}

// Announce to screen readers (the polite live region in index.html).
export function announce(text) {
  const region = document.getElementById("status");
  region.textContent = "";
  setTimeout(() => (region.textContent = text), 30);
}

// A modal confirmation (native <dialog>: focus is trapped and Escape cancels).
export function confirmAction(title, text, okLabel = "Confirm") {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  dialog.returnValue = "cancel";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

export function percent(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)}%`;
}

// Text with the first occurrence of `quote` wrapped in <mark> (quotes are verbatim spans of the chunk).
export function highlighted(text, quote) {
  const at = quote ? text.indexOf(quote) : -1;
  if (at < 0) return [text];
  return [text.slice(0, at), h("mark", {}, quote), text.slice(at + quote.length)];
}

// Download rows as CSV (what a chart shows), RFC 4180 quoting.
export function downloadCsv(filename, header, rows) {
  const quote = (value) => {
    const text = value === null || value === undefined ? "" : String(value);
    return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const body = [header, ...rows].map((row) => row.map(quote).join(",")).join("\r\n") + "\r\n";
  downloadText(filename, body, "text/csv;charset=utf-8");
}

export function downloadText(filename, text, type = "text/plain;charset=utf-8") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h("a", { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// replaceChildren that also takes (nested) arrays of nodes and text, like h().
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}
