// What a person can do to one of their desktops, by status: Connect, Stop, Resume, Delete, Cancel
// (while it starts), Hide (once it has ended).

import { confirmAction } from "./dialog.js";
import { busy, h } from "./dom.js";
import { desktopName, isResume } from "./format.js";

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
        title: `Stop "${desktopName(session)}"?`,
        message:
          "This desktop runs in a container: stopping it ends it, and anything not saved elsewhere is lost.",
        confirmLabel: "Stop and end desktop",
      }
    : {
        title: `Stop "${desktopName(session)}"?`,
        message:
          "Open applications are closed, but the disk is kept. You can resume the desktop later.",
        confirmLabel: "Stop desktop",
      };
}

function deleteConfirmation(session) {
  return {
    title: `Delete "${desktopName(session)}"?`,
    message: "The desktop and its disk are deleted for good. This cannot be undone.",
    confirmLabel: "Delete desktop",
  };
}

/** Cancelling a desktop that is still starting: what is undone, and that the slot is free. */
export function cancelConfirmation(session) {
  return {
    title: `Cancel "${desktopName(session)}"?`,
    message: isResume(session)
      ? "It is starting again. Cancelling ends this desktop for good: its disk is deleted and " +
        "nothing on it is kept. This cannot be undone."
      : "It is still starting. Cancelling stops that and removes what was made for it so far; " +
        "nothing is kept. You can start another desktop straight away.",
    confirmLabel: "Cancel desktop",
    dismissLabel: "Keep starting",
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
 * withConnect: false leaves Connect out (for a page that shows it elsewhere); withHide: true offers
 * to hide (or show again) an ended or failed desktop.
 */
export function sessionActions(
  session,
  { api, onChanged, onError, withConnect = true, withHide = false },
) {
  const id = encodeURIComponent(session.sessionId);
  const name = `"${desktopName(session)}"`;

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
  if (session.status === "PROVISIONING") {
    controls.push(
      button(
        "cancel",
        "Cancel",
        {
          confirm: cancelConfirmation(session),
          busyLabel: "Cancelling…",
          call: () => api.delete(`/sessions/${id}`),
        },
        "Your desktop is being cancelled.",
      ),
    );
  }
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
          confirm: deleteConfirmation(session),
          busyLabel: "Deleting…",
          call: () => api.delete(`/sessions/${id}`),
        },
        "Your desktop is being deleted.",
      ),
    );
  }
  if ((session.status === "TERMINATED" || session.status === "FAILED") && withHide) {
    controls.push(
      session.hidden
        ? button(
            "unhide",
            "Show again",
            {
              busyLabel: "Showing…",
              call: () => api.patch(`/sessions/${id}`, { hidden: false }),
            },
            "The desktop shows in your desktops again.",
          )
        : button(
            "hide",
            "Hide",
            { busyLabel: "Hiding…", call: () => api.patch(`/sessions/${id}`, { hidden: true }) },
            "The desktop is hidden from your desktops.",
          ),
    );
  }
  return controls;
}
