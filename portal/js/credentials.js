// "Show credentials": the desktop's DCV user name and password (masked until revealed), each with
// a Copy button (the clipboard, or else the text selected for the person to copy).

import { busy, h, messageBox } from "./dom.js";

const MASK = "••••••••••••";

function selectText(node) {
  const range = document.createRange();
  range.selectNodeContents(node);
  const selection = getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

export function credentialsPanel(api, sessionId) {
  const status = h("p", { class: "copy-status", role: "status" });
  const error = messageBox();
  const details = h("div", { class: "credentials-values", hidden: true });
  const toggle = h(
    "button",
    {
      type: "button",
      class: "button",
      "data-testid": "show-credentials",
      "aria-expanded": "false",
    },
    "Show credentials",
  );

  async function copy(text, node, what, beforeSelect) {
    try {
      await navigator.clipboard.writeText(text);
      status.textContent = `${what} copied.`;
    } catch {
      beforeSelect?.();
      selectText(node);
      status.textContent = `${what} selected: press Ctrl+C (⌘C on a Mac) to copy it.`;
    }
  }

  function show({ username, password }) {
    const user = h("code", { class: "credential", "data-testid": "credential-username" }, username);
    const secret = h("code", { class: "credential", "data-testid": "credential-password" }, MASK);
    const reveal = h(
      "button",
      {
        type: "button",
        class: "button button--small",
        "data-testid": "reveal-password",
        "aria-pressed": "false",
      },
      "Reveal",
    );
    const setRevealed = (revealed) => {
      secret.textContent = revealed ? password : MASK;
      reveal.setAttribute("aria-pressed", String(revealed));
      reveal.textContent = revealed ? "Hide" : "Reveal";
    };
    reveal.addEventListener("click", () =>
      setRevealed(reveal.getAttribute("aria-pressed") !== "true"),
    );
    details.replaceChildren(
      h(
        "dl",
        { class: "credentials-list" },
        h("dt", {}, "User name"),
        h(
          "dd",
          {},
          user,
          h(
            "button",
            {
              type: "button",
              class: "button button--small",
              "data-testid": "copy-username",
              onClick: () => copy(username, user, "User name"),
            },
            "Copy",
            h("span", { class: "visually-hidden" }, " user name"),
          ),
        ),
        h("dt", {}, "Password"),
        h(
          "dd",
          {},
          secret,
          reveal,
          h(
            "button",
            {
              type: "button",
              class: "button button--small",
              "data-testid": "copy-password",
              onClick: () => copy(password, secret, "Password", () => setRevealed(true)),
            },
            "Copy",
            h("span", { class: "visually-hidden" }, " password"),
          ),
        ),
      ),
      status,
    );
    details.hidden = false;
    toggle.textContent = "Hide credentials";
    toggle.setAttribute("aria-expanded", "true");
  }

  function hide() {
    details.replaceChildren();
    details.hidden = true;
    toggle.textContent = "Show credentials";
    toggle.setAttribute("aria-expanded", "false");
  }

  toggle.addEventListener("click", async () => {
    if (toggle.getAttribute("aria-expanded") === "true") {
      hide();
      return;
    }
    error.clear();
    const done = busy(toggle, "Loading credentials…");
    try {
      const credentials = await api.get(`/sessions/${encodeURIComponent(sessionId)}/credentials`);
      done();
      show(credentials);
    } catch (failure) {
      done();
      error.show(failure.message);
    }
  });

  return { toggle, node: h("div", { class: "credentials" }, error.node, details) };
}
