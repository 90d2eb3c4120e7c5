// #/ — my desktops: the "New desktop" form and the live list of the caller's desktops.

import { sessionActions } from "../actions.js";
import { busy, h, messageBox, reconcile } from "../dom.js";
import { ACTIVE, backendLabel, desktopName, formatDateTime, osLabel } from "../format.js";
import { poll } from "../poll.js";
import { cell, statusBadge } from "./parts.js";

const LIST_INTERVAL_MS = 5000;
const OPTIONS_RETRY_MS = 5000;

function select(id, label, testid) {
  const control = h("select", { id, class: "input", name: id, "data-testid": testid });
  return { control, node: h("div", { class: "field" }, h("label", { for: id }, label), control) };
}

function setOptions(control, values, labelOf, selected) {
  control.replaceChildren(...values.map((value) => h("option", { value }, labelOf(value))));
  control.value = values.includes(selected) ? selected : values[0];
}

/** A 409 from POST /sessions at the active-desktop limit (not an Idempotency-Key conflict). */
const isLimit = (failure) =>
  failure.status === 409 &&
  (Array.isArray(failure.body.active) ||
    typeof failure.body.limit === "number" ||
    /\bactive\b/.test(failure.body.message ?? ""));

/**
 * At the active-desktop limit: says so in the portal's words, names the active desktops and
 * offers to open them (active: [{sessionId, name, status}]).
 */
function limitMessage(limit, active) {
  const names = active.map((desktop) => `"${desktopName(desktop)}"`).join(", ");
  const count = `${limit} active ${limit === 1 ? "desktop" : "desktops"}`;
  const link = (desktop, label) =>
    h("a", { href: `#/sessions/${encodeURIComponent(desktop.sessionId)}` }, label);
  const what = names
    ? `You already have ${count}, the most allowed: ${names}.`
    : `You already have ${count}, the most allowed.`;
  const offer =
    active.length === 1
      ? [link(active[0], "Open it"), ", or stop or delete it to start another."]
      : active.length
        ? [
            active.flatMap((desktop, index) => [
              index ? ", " : "",
              link(desktop, `Open "${desktopName(desktop)}"`),
            ]),
            ". Stop or delete one to start another.",
          ]
        : ["Stop or delete one of your desktops to start another."];
  return [what, h("p", {}, ...offer)];
}

/** One profile to choose: its name, what it is, and what stopping it does. */
function profileChoice(profile, onChoose) {
  const id = `new-profile-${profile.id}`;
  const input = h("input", {
    type: "radio",
    name: "profile",
    id,
    value: profile.id,
    class: "profile-radio",
    "data-testid": "new-profile",
    "aria-describedby": `${id}-about`,
    onChange: onChoose,
  });
  const node = h(
    "label",
    { class: "profile", for: id, "data-testid": `profile-${profile.id}` },
    input,
    h(
      "span",
      { class: "profile-text" },
      h("span", { class: "profile-name" }, profile.name),
      h(
        "span",
        { id: `${id}-about`, class: "profile-about" },
        h("span", { class: "profile-description" }, profile.description),
        h(
          "span",
          { class: "profile-stopped", "data-testid": "profile-when-stopped" },
          `When you stop it: ${profile.whenStopped}`,
        ),
      ),
    ),
  );
  return { input, node };
}

/**
 * The "New desktop" form: the caller's profiles (GET /profiles), an instance type among the
 * chosen profile's, an optional name; the limit from GET /options. setDesktops(sessions) tells it
 * the person's desktops (to close it at the limit); stop() ends its retries.
 */
function newDesktopForm({ api, requestDesktop, navigate }) {
  const error = messageBox();
  const limitBox = messageBox({ kind: "info", testid: "limit-message" });
  const choices = h("div", { class: "profiles", role: "radiogroup", "aria-label": "Desktop" });
  const instanceType = select("new-instance-type", "Instance type", "new-instance-type");
  const name = h("input", {
    id: "new-name",
    class: "input",
    name: "name",
    maxlength: "60",
    autocomplete: "off",
    "data-testid": "new-name",
  });
  const submit = h(
    "button",
    { type: "submit", class: "button button--primary", "data-testid": "new-submit" },
    "Start desktop",
  );
  const fields = h(
    "fieldset",
    { class: "new-desktop-fields new-desktop-fields--profiles", disabled: true },
    h("legend", { class: "visually-hidden" }, "Desktop to start"),
    choices,
    h(
      "div",
      { class: "new-desktop-row" },
      instanceType.node,
      h("div", { class: "field" }, h("label", { for: "new-name" }, "Name (optional)"), name),
      h("div", { class: "field field--action" }, submit),
    ),
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
  let profiles = null;
  let desktops = null; // the person's desktops, once listed
  let refused = null; // the active desktops a 409 named, until the list changes

  function activeDesktops() {
    return refused ?? (desktops ?? []).filter((desktop) => ACTIVE.has(desktop.status));
  }

  /** Open, unless the choices are missing or the person is at the limit (then says why). */
  function updateState() {
    const limit = options?.maxActiveSessions;
    const active = activeDesktops();
    const atLimit = Boolean(limit) && (refused !== null || active.length >= limit);
    if (atLimit) {
      const [what, offer] = limitMessage(limit, active);
      limitBox.show(what, offer);
    } else {
      limitBox.clear();
    }
    fields.disabled = !options || !profiles?.length || atLimit;
  }

  function chosen() {
    const id = choices.querySelector("input:checked")?.value;
    return profiles?.find((profile) => profile.id === id) ?? null;
  }

  function chooseProfile() {
    const profile = chosen();
    setOptions(instanceType.control, profile?.instanceTypes ?? [], String);
    name.placeholder = profile?.name ?? "";
  }

  /** Loads the choices; unreachable, it tries again by itself (the page's banner says so). */
  async function load() {
    try {
      [options, profiles] = await Promise.all([
        api.get("/options"),
        api.get("/profiles").then((answer) => answer.items),
      ]);
    } catch (failure) {
      options = null;
      if (failure.status === 0) {
        error.clear();
        return OPTIONS_RETRY_MS;
      }
      const retry = h(
        "button",
        {
          type: "button",
          class: "button",
          onClick: () => {
            loader = poll(load);
          },
        },
        "Try again",
      );
      error.show(`The desktop choices could not be loaded. ${failure.message}`, retry);
      return null;
    }
    error.clear();
    choices.replaceChildren(
      ...profiles.map((profile) => profileChoice(profile, chooseProfile).node),
    );
    const first = choices.querySelector("input");
    if (first) first.checked = true;
    chooseProfile();
    const limit = options.maxActiveSessions;
    hint.textContent = !profiles.length
      ? "No desktop is open to you yet. Ask your administrator for access."
      : limit
        ? `You can have ${limit} active ${limit === 1 ? "desktop" : "desktops"} at a time.`
        : "";
    updateState();
    return null;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.clear();
    const profile = chosen();
    if (!profile) return;
    const done = busy(submit, "Starting…");
    try {
      const accepted = await requestDesktop({
        profile: profile.id,
        instanceType: instanceType.control.value,
        ...(name.value.trim() ? { name: name.value.trim() } : {}),
      });
      navigate(`#/sessions/${encodeURIComponent(accepted.sessionId)}`);
    } catch (failure) {
      done();
      if (isLimit(failure)) {
        // At the limit (another tab or the CLI got there first): the portal's words, not the API's.
        refused = Array.isArray(failure.body.active) ? failure.body.active : activeDesktops();
        updateState();
      } else if (failure.status !== 0) {
        // (unreachable: the page's banner says so; pressing Start again is safe, see api.js)
        error.show(
          failure.retryable
            ? `${failure.message} Press Start desktop again to retry.`
            : failure.message,
        );
      }
    }
  });
  let loader = poll(load);
  return {
    node: h(
      "section",
      { class: "card", "aria-labelledby": "new-desktop-title" },
      h("h2", { id: "new-desktop-title" }, "New desktop"),
      form,
      hint,
      limitBox.node,
      error.node,
    ),
    setDesktops(sessions) {
      const signature = (list) => JSON.stringify(list.map((s) => [s.sessionId, s.status]));
      if (desktops && signature(desktops) !== signature(sessions)) refused = null;
      desktops = sessions;
      updateState();
    },
    stop: () => loader.stop(),
  };
}

/** What kind of desktop: its profile's name, or (before profiles) its OS and backend. */
const kindLabel = (session) =>
  session.profileName ?? `${osLabel(session.os)} · ${backendLabel(session.backend)}`;

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
        {
          href: `#/sessions/${encodeURIComponent(session.sessionId)}`,
          "data-testid": "desktop-name",
        },
        desktopName(session),
      ),
      session.hidden ? h("span", { class: "cell-note" }, "Hidden") : null,
    ),
    cell(
      "Status",
      statusBadge(session.status),
      session.statusReason ? h("span", { class: "cell-note" }, session.statusReason) : null,
    ),
    cell("Kind", kindLabel(session)),
    cell("Instance type", h("span", { class: "mono" }, session.instanceType ?? "—")),
    cell("Created", h("time", { datetime: session.createdAt }, formatDateTime(session.createdAt))),
    cell("Actions", h("div", { class: "actions" }, actions)),
  );
}

export function desktopsView(main, ctx) {
  const { api, announce, setTitle } = ctx;
  setTitle("My desktops");
  const newDesktop = newDesktopForm(ctx);
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
          ["Desktop", "Status", "Kind", "Instance type", "Created", "Actions"].map((title) =>
            h("th", { scope: "col" }, title),
          ),
        ),
      ),
      rows,
    ),
  );
  const placeholder = h("p", { class: "empty", role: "status" }, "Loading your desktops…");
  const showHidden = h("input", {
    type: "checkbox",
    id: "show-hidden",
    "data-testid": "show-hidden",
    onChange: () => poller.refresh(),
  });

  const poller = poll(async () => {
    try {
      const { sessions } = await api.get("/sessions", {
        hidden: showHidden.checked ? "true" : undefined,
      });
      error.clear();
      reconcile(rows, sessions, {
        keyOf: (session) => session.sessionId,
        signatureOf: (session) => JSON.stringify(session),
        render: (session) =>
          desktopRow(
            session,
            sessionActions(session, {
              api,
              withHide: true,
              onChanged: (message) => {
                actionError.clear();
                announce(message);
                poller.refresh();
              },
              onError: (message) => actionError.show(message),
            }),
          ),
      });
      newDesktop.setDesktops(sessions);
      table.hidden = sessions.length === 0;
      placeholder.hidden = sessions.length > 0;
      placeholder.textContent = "You have no desktops yet. Start one with the form above.";
    } catch (failure) {
      if (failure.status === 0) {
        error.clear(); // the page's banner says so; the list keeps what it showed
      } else {
        const what = rows.children.length ? "updated" : "loaded";
        error.show(`Your desktops could not be ${what}. ${failure.message}`);
        placeholder.hidden = true;
      }
    }
    return LIST_INTERVAL_MS;
  });

  main.append(
    h("div", { class: "page-header" }, h("h1", { tabindex: "-1" }, "My desktops")),
    newDesktop.node,
    h(
      "section",
      { class: "section", "aria-labelledby": "desktops-title" },
      h("h2", { id: "desktops-title" }, "Your desktops"),
      h(
        "div",
        { class: "check" },
        showHidden,
        h("label", { for: "show-hidden" }, "Show hidden desktops"),
      ),
      error.node,
      actionError.node,
      placeholder,
      table,
    ),
  );
  return () => {
    poller.stop();
    newDesktop.stop();
  };
}
