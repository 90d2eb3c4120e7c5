// #/sessions/<id> — one desktop: the waiting screen while it is provisioning (or has failed),
// "ready" with Connect and its credentials, or what its status means; followed live.

import { connectLink, sessionActions } from "../actions.js";
import { credentialsPanel } from "../credentials.js";
import { busy, h, messageBox } from "../dom.js";
import { backendLabel, desktopName, formatDateTime, osLabel, shortId } from "../format.js";
import { poll } from "../poll.js";
import { definitionList, statusBadge } from "./parts.js";
import { readyTimeline, waitingScreen } from "./waiting.js";

const CHANGING_MS = 2000; // PROVISIONING, STOPPING, TERMINATING: watch closely
const STEADY_MS = 10000; // READY, STOPPED: only an idle stop or another tab changes them
const RETRY_MS = 5000;
const FINAL = new Set(["FAILED", "TERMINATED"]);

const STATUS_TEXT = {
  STOPPING: [
    "Your desktop is stopping",
    "Its disk is kept: you can resume it once it has stopped.",
  ],
  STOPPED: [
    "Your desktop is stopped",
    "Resume it to pick up where you left off: your disk was kept.",
  ],
  TERMINATING: ["Your desktop is being deleted", "This takes a moment."],
  TERMINATED: ["This desktop has ended", "Start a new desktop from My desktops."],
};
const CANCELLING = [
  "Your desktop is being cancelled",
  "What was made for it so far is being removed. This takes a moment.",
];
const NAME_MAX = 60;

/**
 * The desktop's name and "Rename": an inline form (PATCH /sessions/{id} {name}); the name shown
 * follows the API except while the person is editing it. onRenamed(session) gets the answer.
 */
function renamer(api, sessionId, onRenamed) {
  const error = messageBox();
  const text = h("span", { class: "desktop-name", "data-testid": "desktop-name" });
  const renameButton = h(
    "button",
    { type: "button", class: "button button--small", "data-testid": "rename" },
    "Rename",
  );
  const shown = h("div", { class: "desktop-name-bar" }, text, renameButton);
  const input = h("input", {
    id: "rename-input",
    class: "input",
    maxlength: String(NAME_MAX),
    autocomplete: "off",
    "data-testid": "rename-input",
  });
  const save = h(
    "button",
    { type: "submit", class: "button button--primary", "data-testid": "rename-save" },
    "Save",
  );
  const form = h(
    "form",
    { class: "rename-form", hidden: true, "aria-label": "Rename this desktop" },
    h("label", { for: "rename-input", class: "visually-hidden" }, "New name"),
    input,
    save,
    h(
      "button",
      { type: "button", class: "button", onClick: () => close(), "data-testid": "rename-cancel" },
      "Cancel",
    ),
  );
  let name = "";

  function close() {
    form.hidden = true;
    shown.hidden = false;
    error.clear();
    renameButton.focus();
  }

  renameButton.addEventListener("click", () => {
    input.value = name;
    shown.hidden = true;
    form.hidden = false;
    input.select();
    input.focus();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const wanted = input.value.trim();
    if (!wanted) {
      error.show("Give the desktop a name, or press Cancel to keep its name.");
      input.focus();
      return;
    }
    const done = busy(save, "Saving…");
    try {
      const renamed = await api.patch(`/sessions/${encodeURIComponent(sessionId)}`, {
        name: wanted,
      });
      done();
      name = desktopName(renamed);
      text.textContent = name;
      close();
      onRenamed(renamed);
    } catch (failure) {
      done();
      if (failure.status !== 0) error.show(failure.message);
    }
  });
  return {
    node: h("div", { class: "renamer" }, shown, form, error.node),
    update(session) {
      name = desktopName(session);
      text.textContent = name;
    },
  };
}

export function desktopView(main, ctx, sessionId) {
  const { api, announce, brand, navigate, requestDesktop, setTitle } = ctx;
  setTitle(`Desktop ${shortId(sessionId)}`);
  const error = messageBox(); // following the desktop
  const actionError = messageBox(); // the last action, until the next one succeeds
  // "We sent a message to <address>: confirm it" after the person's first desktop
  const notice = messageBox({ kind: "info", testid: "notifications-notice" });
  const noticeText = requestDesktop.takeNotice?.();
  if (noticeText) notice.show(noticeText);
  const body = h(
    "div",
    { class: "desktop-body" },
    h("p", { class: "empty", role: "status" }, "Loading the desktop…"),
  );
  const details = h("section", { class: "card", "aria-labelledby": "details-title", hidden: true });
  let session = null;
  let waiting = null;
  const crumb = h("span", { "aria-current": "page" }, `Desktop ${shortId(sessionId)}`);
  const naming = renamer(api, sessionId, (renamed) => {
    announce(`Renamed to ${desktopName(renamed)}.`);
    poller.refresh();
  });
  naming.node.hidden = true;

  /** "Try again": the same desktop (its profile, type and name), started anew; its page follows. */
  async function retry() {
    const { backend, os, instanceType, profile, name } = session;
    const accepted = await requestDesktop(
      profile
        ? { profile, instanceType, ...(name ? { name } : {}) }
        : { backend, os, instanceType },
    );
    navigate(`#/sessions/${encodeURIComponent(accepted.sessionId)}`);
  }

  const actionCallbacks = {
    api,
    withConnect: false,
    onChanged: (message) => {
      actionError.clear();
      announce(message);
      poller.refresh();
    },
    onError: (message) => actionError.show(message),
  };

  /** READY: Connect, the credentials, and how the desktop was started (observedStart: when the
   * waiting screen saw the provisioning begin, if it did). */
  function readyPanel(observedStart) {
    const credentials = credentialsPanel(api, sessionId);
    return h(
      "section",
      { class: "card ready", "data-testid": "ready-banner", "aria-labelledby": "ready-title" },
      h("h1", { id: "ready-title", tabindex: "-1" }, "Your desktop is ready"),
      h(
        "p",
        {},
        "Connect opens the desktop in a new browser tab. Sign in there with this desktop's credentials.",
      ),
      h(
        "div",
        { class: "actions" },
        session.connectionUrl ? connectLink(session, "connect-link") : null,
        credentials.toggle,
      ),
      h(
        "p",
        { class: "hint", "data-when-unreachable": true, "data-testid": "connect-unavailable" },
        "Connect comes back once DCV Fleet can be reached again.",
      ),
      credentials.node,
      h("div", { class: "actions actions--secondary" }, sessionActions(session, actionCallbacks)),
      readyTimeline(session, observedStart),
    );
  }

  /** What the status means; a desktop cancelled while starting says so (previousStatus). */
  function statusPanel(previousStatus) {
    const cancelling = session.status === "TERMINATING" && previousStatus === "PROVISIONING";
    const [title, text] = cancelling
      ? CANCELLING
      : (STATUS_TEXT[session.status] ?? [`Status: ${session.status}`, ""]);
    const ended = session.status === "TERMINATED";
    return h(
      "section",
      { class: "card", "aria-labelledby": "status-title", "data-testid": "status-panel" },
      h("h1", { id: "status-title", tabindex: "-1" }, title),
      ended && session.statusReason ? h("p", {}, session.statusReason) : null,
      h("p", {}, text),
      h(
        "div",
        { class: "actions" },
        sessionActions(session, actionCallbacks),
        ended
          ? h("a", { class: "button button--primary", href: "#/" }, "Start a new desktop")
          : null,
      ),
    );
  }

  /** Builds the body again only when the status changes, so what the person opened stays open. */
  function render(next, previousStatus) {
    session = next;
    const provisioning = next.status === "PROVISIONING" || next.status === "FAILED";
    setTitle(desktopName(next));
    crumb.textContent = desktopName(next);
    naming.update(next);
    naming.node.hidden = false;
    if (provisioning) {
      if (!waiting) {
        waiting = waitingScreen(brand, retry);
        body.replaceChildren(waiting.node);
      }
      if (next.status !== previousStatus) {
        // Cancel while it starts (built once per status, so the dialog's opener stays put).
        waiting.setActions(sessionActions(next, actionCallbacks));
      }
      waiting.update(next);
    } else if (next.status !== previousStatus) {
      const observedStart = waiting?.startedAt();
      waiting?.stop();
      waiting = null;
      body.replaceChildren(
        next.status === "READY" ? readyPanel(observedStart) : statusPanel(previousStatus),
      );
      if (previousStatus === "PROVISIONING" && next.status === "READY") {
        announce("Your desktop is ready.");
      }
    }
    details.replaceChildren(
      h("h2", { id: "details-title" }, "Details"),
      definitionList([
        ["Status", h("span", {}, statusBadge(next.status))],
        ["Reason", next.status === "FAILED" ? null : next.statusReason], // FAILED shows it above
        ["Profile", next.profileName],
        ["Type", backendLabel(next.backend)],
        ["Operating system", osLabel(next.os)],
        ["Instance type", next.instanceType],
        ["Instance", next.instanceId],
        ["Batch job", next.jobId],
        ["Created", formatDateTime(next.createdAt)],
        ["Last change", formatDateTime(next.updatedAt)],
        ["Desktop ID", h("span", { class: "mono" }, next.sessionId)],
      ]),
    );
    details.hidden = false;
  }

  const poller = poll(async () => {
    try {
      const next = await api.get(`/sessions/${encodeURIComponent(sessionId)}`);
      error.clear();
      render(next, session?.status);
      if (FINAL.has(next.status)) return null;
      return next.status === "READY" || next.status === "STOPPED" ? STEADY_MS : CHANGING_MS;
    } catch (failure) {
      if (failure.status === 404) {
        body.replaceChildren(
          h(
            "section",
            { class: "card" },
            h("h1", { tabindex: "-1" }, "Desktop not found"),
            h("p", {}, "There is no desktop at this address in your account."),
            h("a", { class: "button", href: "#/" }, "Back to my desktops"),
          ),
        );
        details.hidden = true;
        return null;
      }
      if (failure.status === 0)
        error.clear(); // the page's banner says so
      else error.show(session ? `Live updates paused: ${failure.message}` : failure.message);
      return RETRY_MS;
    }
  });

  main.append(
    h(
      "nav",
      { class: "breadcrumb", "aria-label": "Breadcrumb" },
      h("a", { href: "#/" }, "My desktops"),
      crumb,
    ),
    naming.node,
    notice.node,
    error.node,
    actionError.node,
    body,
    details,
  );
  return () => {
    poller.stop();
    waiting?.stop();
  };
}
