// #/ — my desktops: the "New desktop" form and the live list of the caller's desktops.

import { sessionActions } from "../actions.js";
import { busy, h, messageBox, reconcile } from "../dom.js";
import { backendLabel, formatDateTime, osLabel, shortId } from "../format.js";
import { poll } from "../poll.js";
import { cell, statusBadge } from "./parts.js";

const LIST_INTERVAL_MS = 5000;

function select(id, label, testid) {
  const control = h("select", { id, class: "input", name: id, "data-testid": testid });
  return { control, node: h("div", { class: "field" }, h("label", { for: id }, label), control) };
}

function setOptions(control, values, labelOf, selected) {
  control.replaceChildren(...values.map((value) => h("option", { value }, labelOf(value))));
  control.value = values.includes(selected) ? selected : values[0];
}

/** The "New desktop" form, its choices from GET /options. */
function newDesktopForm({ api, requestDesktop, navigate }) {
  const error = messageBox();
  const backend = select("new-backend", "Desktop type", "new-backend");
  const os = select("new-os", "Operating system", "new-os");
  const instanceType = select("new-instance-type", "Instance type", "new-instance-type");
  const submit = h(
    "button",
    { type: "submit", class: "button button--primary", "data-testid": "new-submit" },
    "Start desktop",
  );
  const fields = h(
    "fieldset",
    { class: "new-desktop-fields", disabled: true },
    h("legend", { class: "visually-hidden" }, "Desktop to start"),
    backend.node,
    os.node,
    instanceType.node,
    h("div", { class: "field field--action" }, submit),
  );
  const hint = h("p", { class: "hint", id: "new-desktop-hint" });
  const form = h(
    "form",
    {
      class: "new-desktop",
      "data-testid": "new-desktop-form",
      "aria-describedby": "new-desktop-hint",
    },
    fields,
  );
  let options = null;

  function chooseBackend() {
    setOptions(os.control, options.os[backend.control.value] ?? [], osLabel, os.control.value);
    chooseOs();
  }

  function chooseOs() {
    const types = options.instanceTypes[backend.control.value] ?? [];
    setOptions(
      instanceType.control,
      types,
      String,
      options.defaultInstanceTypes?.[os.control.value],
    );
  }

  async function load() {
    error.clear();
    try {
      options = await api.get("/options");
    } catch (failure) {
      const retry = h("button", { type: "button", class: "button", onClick: load }, "Try again");
      error.show(`The desktop choices could not be loaded. ${failure.message}`, retry);
      return;
    }
    setOptions(backend.control, options.backends, backendLabel);
    chooseBackend();
    const limit = options.maxActiveSessions;
    hint.textContent = limit
      ? `You can have ${limit} active ${limit === 1 ? "desktop" : "desktops"} at a time.`
      : "";
    fields.disabled = false;
  }

  backend.control.addEventListener("change", chooseBackend);
  os.control.addEventListener("change", chooseOs);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.clear();
    const done = busy(submit, "Starting…");
    try {
      const accepted = await requestDesktop({
        backend: backend.control.value,
        os: os.control.value,
        instanceType: instanceType.control.value,
      });
      navigate(`#/sessions/${encodeURIComponent(accepted.sessionId)}`);
    } catch (failure) {
      done();
      error.show(
        failure.retryable
          ? `${failure.message} Press Start desktop again to retry.`
          : failure.message,
      );
    }
  });
  load();
  return h(
    "section",
    { class: "card", "aria-labelledby": "new-desktop-title" },
    h("h2", { id: "new-desktop-title" }, "New desktop"),
    form,
    hint,
    error.node,
  );
}

function desktopRow(session, actions) {
  return h(
    "tr",
    {
      "data-testid": "desktop-row",
      "data-session-id": session.sessionId,
      "data-status": session.status,
    },
    h(
      "th",
      { scope: "row", "data-label": "Desktop" },
      h(
        "a",
        { href: `#/sessions/${encodeURIComponent(session.sessionId)}`, class: "mono" },
        shortId(session.sessionId),
      ),
    ),
    cell(
      "Status",
      statusBadge(session.status),
      session.statusReason ? h("span", { class: "cell-note" }, session.statusReason) : null,
    ),
    cell("Type", backendLabel(session.backend)),
    cell("OS", osLabel(session.os)),
    cell("Instance type", h("span", { class: "mono" }, session.instanceType ?? "—")),
    cell("Created", h("time", { datetime: session.createdAt }, formatDateTime(session.createdAt))),
    cell("Actions", h("div", { class: "actions" }, actions)),
  );
}

export function desktopsView(main, ctx) {
  const { api, announce, setTitle } = ctx;
  setTitle("My desktops");
  const error = messageBox(); // loading the list
  const actionError = messageBox(); // the last action, until the next one succeeds
  const rows = h("tbody");
  const table = h(
    "div",
    { class: "table-wrap", hidden: true },
    h(
      "table",
      { class: "table table--cards" },
      h("caption", { class: "visually-hidden" }, "Your desktops, newest first"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Desktop", "Status", "Type", "OS", "Instance type", "Created", "Actions"].map((title) =>
            h("th", { scope: "col" }, title),
          ),
        ),
      ),
      rows,
    ),
  );
  const placeholder = h("p", { class: "empty", role: "status" }, "Loading your desktops…");

  const poller = poll(async () => {
    try {
      const { sessions } = await api.get("/sessions");
      error.clear();
      reconcile(rows, sessions, {
        keyOf: (session) => session.sessionId,
        signatureOf: (session) => JSON.stringify(session),
        render: (session) =>
          desktopRow(
            session,
            sessionActions(session, {
              api,
              onChanged: (message) => {
                actionError.clear();
                announce(message);
                poller.refresh();
              },
              onError: (message) => actionError.show(message),
            }),
          ),
      });
      table.hidden = sessions.length === 0;
      placeholder.hidden = sessions.length > 0;
      placeholder.textContent = "You have no desktops yet. Start one with the form above.";
    } catch (failure) {
      const what = rows.children.length ? "updated" : "loaded";
      error.show(`Your desktops could not be ${what}. ${failure.message}`);
      placeholder.hidden = true;
    }
    return LIST_INTERVAL_MS;
  });

  main.append(
    h("div", { class: "page-header" }, h("h1", { tabindex: "-1" }, "My desktops")),
    newDesktopForm(ctx),
    h(
      "section",
      { class: "section", "aria-labelledby": "desktops-title" },
      h("h2", { id: "desktops-title" }, "Your desktops"),
      error.node,
      actionError.node,
      placeholder,
      table,
    ),
  );
  return () => poller.stop();
}
