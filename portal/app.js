// DCV Fleet portal: loads config.json and brand.json, then shows sign-in or the page the hash
// names (#/ my desktops, #/sessions/<id> one desktop, #/admin the fleet).

import { createApi, desktopRequester } from "./js/api.js";
import { Auth } from "./js/auth.js";
import { applyBrand, loadBrand } from "./js/brand.js";
import { h } from "./js/dom.js";
import { adminView } from "./js/views/admin.js";
import { desktopView } from "./js/views/desktop.js";
import { desktopsView } from "./js/views/desktops.js";
import { signInView } from "./js/views/signin.js";

const CONFIG_KEYS = ["apiUrl", "userPoolId", "userPoolClientId", "cognitoEndpoint"];

const ROUTES = [
  { pattern: /^#?\/?$/, view: desktopsView, nav: "desktops" },
  { pattern: /^#\/sessions\/([^/]+)$/, view: desktopView, nav: "desktops" },
  { pattern: /^#\/admin$/, view: adminView, nav: "admin" },
];

const main = document.getElementById("main");

async function loadConfig() {
  const response = await fetch("config.json", { cache: "no-cache" });
  if (!response.ok) throw new Error(`config.json could not be loaded (HTTP ${response.status}).`);
  const config = await response.json();
  const missing = CONFIG_KEYS.filter((key) => typeof config[key] !== "string" || !config[key]);
  if (missing.length) throw new Error(`config.json lacks ${missing.join(", ")}.`);
  return config;
}

function notFoundView(container, { setTitle }) {
  setTitle("Page not found");
  container.append(
    h(
      "section",
      { class: "card" },
      h("h1", { tabindex: "-1" }, "Page not found"),
      h("p", {}, "There is nothing at this address."),
      h("a", { class: "button", href: "#/" }, "Go to my desktops"),
    ),
  );
  return () => {};
}

/** announce(message) reads message out politely; announce.clear() drops what a page said (and
 * anything still on its way), so the next page starts silent. */
function announcer() {
  const region = document.getElementById("announcer");
  let timer = null;
  function announce(message) {
    clearTimeout(timer);
    region.textContent = "";
    // A new text node a moment later, so a repeated message is announced again.
    timer = setTimeout(() => {
      region.textContent = message;
    }, 100);
  }
  announce.clear = () => {
    clearTimeout(timer);
    region.textContent = "";
  };
  return announce;
}

/** One banner for the whole page while the API cannot be reached (views show no message of their
 * own for it); body[data-unreachable] hides what needs the API (Connect) until it answers again. */
function reachability() {
  const banner = document.querySelector("[data-testid=unreachable-banner]");
  return (reachable) => {
    banner.hidden = reachable;
    document.body.toggleAttribute("data-unreachable", !reachable);
  };
}

function start(config, brand) {
  const auth = new Auth(config);
  const api = createApi(config.apiUrl, auth, reachability());
  const header = {
    nav: document.querySelector("[data-signed-in]"),
    user: document.querySelector("[data-user-name]"),
    admin: document.querySelector("[data-testid=admin-link]"),
    links: document.querySelectorAll("[data-nav]"),
  };
  const ctx = {
    api,
    auth,
    brand,
    announce: announcer(),
    requestDesktop: desktopRequester(api),
    navigate: (hash) => {
      location.hash = hash;
    },
    setTitle: (title) => {
      document.title = `${title} · ${brand.name}`;
    },
  };
  let cleanup = () => {};
  let expired = false;

  function render({ focus }) {
    cleanup();
    ctx.announce.clear();
    main.replaceChildren();
    header.nav.hidden = !auth.signedIn;
    header.user.textContent = auth.userName;
    header.admin.hidden = !auth.isAdmin;
    if (!auth.signedIn) {
      cleanup = () => {};
      signInView(main, ctx, { expired });
      main.querySelector("input")?.focus();
      return;
    }
    const route = ROUTES.find(({ pattern }) => pattern.test(location.hash));
    for (const link of header.links) {
      if (route?.nav === link.dataset.nav) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    cleanup = route
      ? route.view(
          main,
          ctx,
          ...location.hash.match(route.pattern).slice(1).map(decodeURIComponent),
        )
      : notFoundView(main, ctx);
    if (focus) (main.querySelector("h1") ?? main).focus();
  }

  auth.addEventListener("change", ({ detail }) => {
    expired = detail.reason === "expired";
    if (detail.reason === "signout" && location.hash !== "#/") {
      location.hash = "#/"; // the next user starts from their own desktops; hashchange renders
      return;
    }
    render({ focus: detail.reason === "signin" });
  });
  window.addEventListener("hashchange", () => render({ focus: true }));
  document.querySelector("[data-testid=signout]").addEventListener("click", () => auth.signOut());
  render({ focus: false });
}

document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault(); // "#main" would be read as a route
  main.focus();
});

const brand = await loadBrand();
applyBrand(brand);
let config = null;
try {
  config = await loadConfig();
} catch (error) {
  main.replaceChildren(
    h(
      "section",
      { class: "card", role: "alert" },
      h("h1", {}, "The portal is not available"),
      h("p", {}, `It is not configured correctly: ${error.message} Contact your administrator.`),
    ),
  );
}
if (config) start(config, brand);
