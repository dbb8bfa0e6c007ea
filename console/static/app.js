// The console's shell: sign-in, the role's screens in the navigation, hash routing.
import { ApiError, api, forgetKey, keepKey, storedKey } from "./api.js";
import { agentScreens } from "./agent.js";
import { editorScreens } from "./editor.js";
import { experimentScreens } from "./experiments.js";
import { leadScreens } from "./lead.js";
import { field, fill, h, notice } from "./ui.js";

// Each screen: the hash it answers, its nav label (none: reached by link), the permission it needs.
const SCREENS = [...editorScreens, ...agentScreens, ...leadScreens, ...experimentScreens];
const main = document.getElementById("main");
let me = null;

function allowed(screen) {
  return me && me.permissions.includes(screen.permission);
}

function match(hash) {
  const path = hash.replace(/^#/, "") || "/";
  for (const screen of SCREENS) {
    const found = screen.pattern.exec(path);
    if (found) return { screen, params: found.slice(1).map(decodeURIComponent) };
  }
  return null;
}

function renderNav(current) {
  const nav = document.getElementById("nav");
  const items = SCREENS.filter((screen) => screen.nav && allowed(screen));
  fill(nav,
    h(
      "ul",
      {},
      items.map((screen) =>
        h("li", {}, h("a", { href: "#" + screen.nav, "aria-current": current === screen ? "page" : null }, screen.label)),
      ),
    ),
  );
  const who = document.getElementById("who");
  fill(who,
    ...(me
      ? [
          h("span", {}, `${me.role} · tenant ${me.tenant} · ${me.audience}`),
          h("button", { class: "secondary", type: "button", onclick: signOut }, "Sign out"),
        ]
      : []),
  );
}

function signOut() {
  forgetKey();
  me = null;
  go("#/signin");
}

// Show the screen of `hash`: a new hash fires hashchange (which routes), the same one does not.
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function signInScreen(message) {
  document.title = "Sign in · AnswerDesk console";
  const input = h("input", { type: "password", name: "key", autocomplete: "off", required: true, spellcheck: "false" });
  const problem = h("div", { "aria-live": "assertive" }, message ? notice(message, "error") : null);
  const form = h(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          const who = await api("/v1/me", { key: input.value.trim() });
          keepKey(input.value.trim());
          me = who;
          go("#" + firstScreen());
        } catch (error) {
          fill(problem,
            notice(error instanceof ApiError && error.status === 401 ? "This key is unknown or revoked." : error.message, "error"),
          );
          input.focus();
        }
      },
    },
    field("API key", input),
    h("p", { class: "muted" }, "The key is kept in this tab only (session storage) and sent to this server's /v1 API."),
    h("button", { type: "submit" }, "Sign in"),
  );
  fill(main, h("h1", {}, "Sign in"), problem, form);
  renderNav(null);
  input.focus();
}

function firstScreen() {
  const first = SCREENS.find((screen) => screen.nav && allowed(screen));
  return first ? first.nav : "/none";
}

function noScreens(view) {
  fill(view,
    h("h1", {}, "No console screens for this key"),
    notice(`A ${me.role} key has no console screens. Sign in with an editor, agent or admin key.`, "error"),
  );
}

let routing = 0; // the latest route(); an older one still loading must not take the focus

async function route() {
  const turn = ++routing;
  if (!storedKey()) return signInScreen();
  if (!me) {
    try {
      me = await api("/v1/me");
    } catch (error) {
      forgetKey();
      return signInScreen(error.status === 401 ? "Your key is no longer valid; sign in again." : error.message);
    }
  }
  const found = match(location.hash);
  if (!found || location.hash === "#/signin") {
    location.replace("#" + firstScreen()); // fires hashchange, which routes
    return;
  }
  const { screen, params } = found;
  renderNav(screen);
  if (!allowed(screen)) {
    document.title = "Not allowed · AnswerDesk console";
    fill(main,
      h("h1", {}, "Not allowed"),
      notice(`A ${me.role} key may not open this screen.`, "error"),
    );
    return;
  }
  document.title = `${screen.label || screen.title} · AnswerDesk console`;
  fill(main, h("p", { class: "muted" }, "Loading…"));
  // Each screen draws into its own view, shown only if no newer navigation happened meanwhile.
  const view = h("div", { class: "view" });
  try {
    await screen.render(view, ...params);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return signOut();
    fill(view, h("h1", {}, screen.label || screen.title), notice(error.message, "error"));
  }
  if (turn !== routing) return;
  fill(main, view);
  const heading = main.querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: false });
  }
}

SCREENS.push({ pattern: /^\/none$/, title: "No screens", permission: "ask", render: async (view) => noScreens(view) });
window.addEventListener("hashchange", route);
route();
