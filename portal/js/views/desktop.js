// #/sessions/<id> — one desktop: the waiting screen while it is provisioning (or has failed),
// "ready" with Connect and its credentials, or what its status means; followed live.

import { connectLink, sessionActions } from "../actions.js";
import { credentialsPanel } from "../credentials.js";
import { h, messageBox } from "../dom.js";
import { backendLabel, formatDateTime, osLabel, shortId } from "../format.js";
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

  /** "Try again": the same desktop, started anew; its page follows. */
  async function retry() {
    const { backend, os, instanceType } = session;
    const accepted = await requestDesktop({ backend, os, instanceType });
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

  function statusPanel() {
    const [title, text] = STATUS_TEXT[session.status] ?? [`Status: ${session.status}`, ""];
    return h(
      "section",
      { class: "card", "aria-labelledby": "status-title" },
      h("h1", { id: "status-title", tabindex: "-1" }, title),
      h("p", {}, text),
      h("div", { class: "actions" }, sessionActions(session, actionCallbacks)),
    );
  }

  /** Builds the body again only when the status changes, so what the person opened stays open. */
  function render(next, previousStatus) {
    session = next;
    const provisioning = next.status === "PROVISIONING" || next.status === "FAILED";
    if (provisioning) {
      if (!waiting) {
        waiting = waitingScreen(brand, retry);
        body.replaceChildren(waiting.node);
      }
      waiting.update(next);
    } else if (next.status !== previousStatus) {
      const observedStart = waiting?.startedAt();
      waiting?.stop();
      waiting = null;
      body.replaceChildren(next.status === "READY" ? readyPanel(observedStart) : statusPanel());
      if (previousStatus === "PROVISIONING" && next.status === "READY") {
        announce("Your desktop is ready.");
      }
    }
    details.replaceChildren(
      h("h2", { id: "details-title" }, "Details"),
      definitionList([
        ["Status", h("span", {}, statusBadge(next.status))],
        ["Reason", next.status === "FAILED" ? null : next.statusReason], // FAILED shows it above
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
      if (failure.status === 0) error.clear(); // the page's banner says so
      else error.show(session ? `Live updates paused: ${failure.message}` : failure.message);
      return RETRY_MS;
    }
  });

  main.append(
    h(
      "nav",
      { class: "breadcrumb", "aria-label": "Breadcrumb" },
      h("a", { href: "#/" }, "My desktops"),
      h("span", { "aria-current": "page" }, `Desktop ${shortId(sessionId)}`),
    ),
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
