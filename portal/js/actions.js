// What a person can do to one of their desktops, by status: Connect, Stop, Resume, Delete.

import { confirmAction } from "./dialog.js";
import { busy, h } from "./dom.js";
import { shortId } from "./format.js";

/** Asks for confirmation (if any), keeps the button busy during the call; null if cancelled. */
export async function runAction(button, { confirm, busyLabel, call }) {
  if (confirm && !(await confirmAction(confirm))) return null;
  const done = busy(button, busyLabel);
  try {
    return await call();
  } finally {
    done();
  }
}

function stopConfirmation(session) {
  return session.backend === "batch"
    ? {
        title: "Stop this desktop?",
        message:
          "This desktop runs in a container: stopping it ends it, and anything not saved elsewhere is lost.",
        confirmLabel: "Stop and end desktop",
      }
    : {
        title: "Stop this desktop?",
        message:
          "Open applications are closed, but the disk is kept. You can resume the desktop later.",
        confirmLabel: "Stop desktop",
      };
}

function deleteConfirmation() {
  return {
    title: "Delete this desktop?",
    message: "The desktop and its disk are deleted for good. This cannot be undone.",
    confirmLabel: "Delete desktop",
  };
}

/** A link that opens the desktop in DCV's web client, in a new tab (not offered while the API
 * cannot be reached: whether the desktop is still there is unknown). */
export function connectLink(session, testid) {
  return h(
    "a",
    {
      class: "button button--primary",
      href: session.connectionUrl,
      target: "_blank",
      rel: "noopener",
      "data-testid": testid,
      "data-needs-api": true,
    },
    "Connect",
    h("span", { class: "visually-hidden" }, " (opens in a new tab)"),
  );
}

const CLASSES = { delete: "button button--danger", resume: "button button--primary" };

/**
 * The controls for a desktop in its current status. onChanged(message) runs after an accepted
 * action (the desktop's status has changed); onError(message) when it was refused or failed.
 * withConnect: false leaves Connect out (for a page that shows it elsewhere).
 */
export function sessionActions(session, { api, onChanged, onError, withConnect = true }) {
  const id = encodeURIComponent(session.sessionId);
  const name = `desktop ${shortId(session.sessionId)}`;

  function button(testid, label, options, changed) {
    const node = h(
      "button",
      {
        type: "button",
        class: CLASSES[testid] ?? "button",
        "data-testid": testid,
        "aria-label": `${label} ${name}`,
        onClick: async () => {
          try {
            if (await runAction(node, options)) onChanged(changed);
          } catch (error) {
            if (error.status !== 0) onError(error.message); // else the page's banner says it
          }
        },
      },
      label,
    );
    return node;
  }

  const controls = [];
  if (session.status === "READY") {
    if (withConnect && session.connectionUrl) controls.push(connectLink(session, "connect"));
    controls.push(
      button(
        "stop",
        "Stop",
        {
          confirm: stopConfirmation(session),
          busyLabel: "Stopping…",
          call: () => api.post(`/sessions/${id}/stop`),
        },
        "Your desktop is stopping.",
      ),
    );
  }
  if (session.status === "STOPPED") {
    controls.push(
      button(
        "resume",
        "Resume",
        { busyLabel: "Resuming…", call: () => api.post(`/sessions/${id}/start`) },
        "Your desktop is starting again.",
      ),
    );
  }
  if (session.status === "READY" || session.status === "STOPPED") {
    controls.push(
      button(
        "delete",
        "Delete",
        {
          confirm: deleteConfirmation(),
          busyLabel: "Deleting…",
          call: () => api.delete(`/sessions/${id}`),
        },
        "Your desktop is being deleted.",
      ),
    );
  }
  return controls;
}
