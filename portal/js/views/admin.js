// #/admin — the fleet, for members of the "admins" group: every desktop (filter by status and user,
// stop or terminate any of them), the GPU instances (filter by state) and the desktops on each,
// the audit trail of administrators' actions and the desktop profiles, page by page.

import { runAction } from "../actions.js";
import { h, messageBox } from "../dom.js";
import {
  STATUSES,
  auditActionLabel,
  backendLabel,
  desktopName,
  formatDateTime,
  idleLabel,
  instanceStateLabel,
  osLabel,
  shortId,
  statusLabel,
} from "../format.js";
import { cell, statusBadge } from "./parts.js";

const INSTANCE_STATES = ["running", "stopped", "terminated"];

function table(testid, caption, columns) {
  const body = h("tbody");
  const node = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "table table--cards", "data-testid": testid },
      h("caption", { class: "visually-hidden" }, caption),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          columns.map((title) => h("th", { scope: "col" }, title)),
        ),
      ),
      body,
    ),
  );
  return { node, body };
}

const mono = (text) => (text ? h("span", { class: "mono" }, text) : "—");

/**
 * A filtered, paged listing: load(nextToken) → {items, nextToken}; renderRow(item, error) builds
 * a row (error: the listing's message box, for its actions). Loads the first page at once.
 */
function pagedListing({ title, testid, caption, columns, filters, load, renderRow, noun }) {
  const error = messageBox();
  const listing = table(testid, caption, columns);
  const summary = h("p", { class: "hint", role: "status" });
  const more = h("button", { type: "button", class: "button", hidden: true }, "Load more");
  let nextToken = null;
  let generation = 0; // a reload makes answers to older requests stale

  async function fetchPage(append) {
    const mine = append ? generation : ++generation;
    error.clear();
    more.disabled = true;
    summary.textContent = `Loading ${noun.many}…`;
    try {
      const page = await load(append ? nextToken : undefined);
      if (mine !== generation) return;
      if (!append) listing.body.replaceChildren();
      listing.body.append(...page.items.map((item) => renderRow(item, error)));
      nextToken = page.nextToken ?? null;
      const count = listing.body.children.length;
      summary.textContent = count
        ? `${count} ${count === 1 ? noun.one : noun.many} shown.`
        : `No ${noun.many} match the filters.`;
    } catch (failure) {
      if (mine !== generation) return;
      summary.textContent = "";
      if (failure.status !== 0) error.show(failure.message); // else the page's banner says it
    } finally {
      if (mine === generation) {
        more.hidden = !nextToken;
        more.disabled = false;
      }
    }
  }

  more.addEventListener("click", () => fetchPage(true));
  filters?.addEventListener("submit", (event) => {
    event.preventDefault();
    fetchPage(false);
  });
  for (const control of filters?.querySelectorAll("select") ?? []) {
    control.addEventListener("change", () => fetchPage(false));
  }
  fetchPage(false);

  const id = `${testid}-title`;
  return h(
    "section",
    { class: "section", "aria-labelledby": id },
    h("h2", { id }, title),
    filters ?? null,
    error.node,
    summary,
    listing.node,
    h("div", { class: "load-more" }, more),
  );
}

function filterField(id, label, control) {
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

/** A search box for a user: the API takes a user name, e-mail or sub. */
function userFilter(id, testid) {
  return h("input", {
    id,
    class: "input",
    type: "search",
    placeholder: "User name, e-mail or ID",
    autocomplete: "off",
    "data-testid": testid,
  });
}

/** A listing's filters, applied with the button (or Enter). */
function filterForm(label, ...fields) {
  return h(
    "form",
    { class: "filters", role: "search", "aria-label": label },
    ...fields,
    h(
      "div",
      { class: "field field--action" },
      h("button", { type: "submit", class: "button" }, "Apply"),
    ),
  );
}

function sessionsListing({ api, announce }) {
  const status = h(
    "select",
    { id: "admin-status", class: "input", "data-testid": "admin-status-filter" },
    h("option", { value: "" }, "Any status"),
    STATUSES.map((value) => h("option", { value }, statusLabel(value))),
  );
  const user = userFilter("admin-user", "admin-user-filter");
  const filters = filterForm(
    "Filter desktops",
    filterField("admin-status", "Status", status),
    filterField("admin-user", "User", user),
  );

  function row(session, error) {
    const id = encodeURIComponent(session.sessionId);
    const name = `"${desktopName(session)}"`;
    const owner = session.ownerName ?? session.ownerEmail ?? "The owner";
    const node = h("tr", {
      "data-testid": "admin-session-row",
      "data-session-id": session.sessionId,
      "data-status": session.status,
    });

    function action(testid, label, options) {
      const button = h(
        "button",
        {
          type: "button",
          class: testid === "admin-terminate" ? "button button--danger" : "button",
          "data-testid": testid,
          "aria-label": `${label} ${name}`,
        },
        label,
      );
      button.addEventListener("click", async () => {
        error.clear();
        try {
          const accepted = await runAction(button, options);
          if (!accepted) return;
          announce(`${desktopName(session)}: ${statusLabel(accepted.status)}.`);
          const updated = row({ ...session, status: accepted.status }, error);
          node.replaceWith(updated);
          updated.querySelector("th").focus(); // the row's buttons may be gone
        } catch (failure) {
          error.show(failure.message);
        }
      });
      return button;
    }

    const actions = [];
    if (session.status === "READY") {
      actions.push(
        action("admin-stop", "Stop", {
          confirm: {
            title: `Stop ${name}?`,
            message:
              session.backend === "batch"
                ? `${owner}'s desktop runs in a container: stopping it ends it.`
                : `${owner}'s open applications are closed; the disk is kept and they can resume it.`,
            confirmLabel: "Stop desktop",
          },
          busyLabel: "Stopping…",
          call: () => api.post(`/admin/sessions/${id}/stop`),
        }),
      );
    }
    if (session.status === "READY" || session.status === "STOPPED") {
      actions.push(
        action("admin-terminate", "Terminate", {
          confirm: {
            title: `Terminate ${name}?`,
            message: `${owner}'s desktop and its disk are deleted for good. This cannot be undone.`,
            confirmLabel: "Terminate desktop",
          },
          busyLabel: "Terminating…",
          call: () => api.delete(`/admin/sessions/${id}`),
        }),
      );
    }
    node.append(
      h(
        "th",
        { scope: "row", "data-label": "Desktop", tabindex: "-1" },
        h("span", { "data-testid": "admin-session-name" }, desktopName(session)),
        h("span", { class: "cell-note mono" }, shortId(session.sessionId)),
        session.hidden ? h("span", { class: "cell-note" }, "Hidden by its owner") : null,
      ),
      cell(
        "Owner",
        session.ownerName ?? session.ownerEmail ?? "—",
        session.ownerEmail && session.ownerName
          ? h("span", { class: "cell-note" }, session.ownerEmail)
          : null,
      ),
      cell(
        "Status",
        statusBadge(session.status),
        session.statusReason
          ? h("span", { class: "cell-note", "data-testid": "admin-reason" }, session.statusReason)
          : null,
        session.statusDetail
          ? h(
              "span",
              { class: "cell-note mono", "data-testid": "admin-detail" },
              session.statusDetail,
            )
          : null,
      ),
      cell(
        "Type",
        session.profileName ?? `${backendLabel(session.backend)} · ${osLabel(session.os)}`,
        session.profileName
          ? h(
              "span",
              { class: "cell-note" },
              `${backendLabel(session.backend)} · ${osLabel(session.os)}`,
            )
          : null,
      ),
      cell(
        "Instance",
        mono(session.instanceType),
        h("span", { class: "cell-note mono" }, session.instanceId ?? session.jobId ?? ""),
      ),
      cell(
        "Created",
        h("time", { datetime: session.createdAt }, formatDateTime(session.createdAt)),
      ),
      cell("Actions", h("div", { class: "actions" }, actions)),
    );
    return node;
  }

  return pagedListing({
    title: "Desktops",
    testid: "admin-sessions",
    caption: "Every desktop in the fleet, newest first",
    columns: ["Desktop", "Owner", "Status", "Type", "Instance", "Created", "Actions"],
    filters,
    noun: { one: "desktop", many: "desktops" },
    renderRow: row,
    load: async (nextToken) => {
      const page = await api.get("/admin/sessions", {
        status: status.value,
        user: user.value.trim(),
        nextToken,
      });
      return { items: page.sessions, nextToken: page.nextToken };
    },
  });
}

/** The desktops on an instance: a Batch instance's list (several may share it), else its one. */
function instanceDesktops(instance) {
  if (Array.isArray(instance.desktops)) {
    if (!instance.desktops.length) return "—";
    return h(
      "ul",
      { class: "cell-list", "data-testid": "instance-desktops" },
      instance.desktops.map((desktop) =>
        h(
          "li",
          {},
          desktopName(desktop),
          h(
            "span",
            { class: "cell-note" },
            `${desktop.ownerName ?? "—"} · ${statusLabel(desktop.status)}`,
          ),
        ),
      ),
    );
  }
  return instance.sessionId ? mono(shortId(instance.sessionId)) : "—";
}

function instancesListing({ api }) {
  const state = h(
    "select",
    { id: "admin-state", class: "input", "data-testid": "admin-state-filter" },
    INSTANCE_STATES.map((value) => h("option", { value }, instanceStateLabel(value))),
  );
  const user = userFilter("admin-instance-user", "admin-instance-user-filter");
  const filters = filterForm(
    "Filter instances",
    filterField("admin-state", "State", state),
    filterField("admin-instance-user", "User", user),
  );
  return pagedListing({
    title: "Instances",
    testid: "admin-instances",
    caption: "GPU instances of the fleet",
    columns: ["Instance", "State", "Type", "Desktops", "Owner", "Launched", "Zone and address"],
    filters,
    noun: { one: "instance", many: "instances" },
    renderRow: (instance) =>
      h(
        "tr",
        {
          "data-testid": "admin-instance-row",
          "data-instance-id": instance.instanceId,
          "data-state": instance.state,
        },
        h("th", { scope: "row", "data-label": "Instance" }, mono(instance.instanceId)),
        cell(
          "State",
          h(
            "span",
            { class: `badge badge--${instance.state}` },
            instanceStateLabel(instance.state),
          ),
        ),
        cell(
          "Type",
          mono(instance.instanceType),
          h("span", { class: "cell-note" }, backendLabel(instance.backend)),
        ),
        cell("Desktops", instanceDesktops(instance)),
        cell("Owner", instance.ownerName ?? (instance.owner ? mono(instance.owner) : "—")),
        cell("Launched", instance.launchTime ? formatDateTime(instance.launchTime) : "—"),
        cell(
          "Zone and address",
          [instance.availabilityZone, instance.privateIpAddress].filter(Boolean).join(" · ") || "—",
        ),
      ),
    load: async (nextToken) => {
      const page = await api.get("/admin/instances", {
        state: state.value,
        user: user.value.trim(),
        nextToken,
      });
      return { items: page.instances, nextToken: page.nextToken };
    },
  });
}

/** GET /admin/audit: who did what, newest first. */
function auditListing({ api }) {
  return pagedListing({
    title: "Audit trail",
    testid: "admin-audit",
    caption: "Administrators' actions, newest first",
    columns: ["When", "Who", "Action", "Target", "Detail"],
    filters: null,
    noun: { one: "entry", many: "entries" },
    renderRow: (entry) =>
      h(
        "tr",
        { "data-testid": "admin-audit-row", "data-action": entry.action },
        h(
          "th",
          { scope: "row", "data-label": "When" },
          h("time", { datetime: entry.at }, formatDateTime(entry.at)),
        ),
        cell("Who", entry.actorName ?? entry.actor ?? "—"),
        cell("Action", auditActionLabel(entry.action)),
        cell("Target", mono(entry.target)),
        cell("Detail", entry.detail ?? "—"),
      ),
    load: async (nextToken) => {
      const page = await api.get("/admin/audit", { limit: 25, nextToken });
      return { items: page.items, nextToken: page.nextToken };
    },
  });
}

/** GET /admin/profiles: every profile, where it is defined and what it allows. */
function profilesListing({ api }) {
  return pagedListing({
    title: "Desktop profiles",
    testid: "admin-profiles",
    caption: "Every desktop profile",
    columns: [
      "Profile",
      "Kind",
      "Instance types",
      "When unused",
      "Longest session",
      "Who",
      "Defined in",
    ],
    filters: null,
    noun: { one: "profile", many: "profiles" },
    renderRow: (profile) =>
      h(
        "tr",
        { "data-testid": "admin-profile-row", "data-profile-id": profile.id },
        h(
          "th",
          { scope: "row", "data-label": "Profile" },
          profile.name,
          h("span", { class: "cell-note mono" }, profile.id),
          h("span", { class: "cell-note" }, profile.whenStopped),
        ),
        cell("Kind", `${backendLabel(profile.backend)} · ${osLabel(profile.os)}`),
        cell("Instance types", mono((profile.instanceTypes ?? []).join(", "))),
        cell("When unused", idleLabel(profile.idle)),
        cell(
          "Longest session",
          profile.maxSessionHours ? `${profile.maxSessionHours} h` : "No limit",
        ),
        cell("Who", profile.groups?.length ? profile.groups.join(", ") : "Everyone"),
        cell(
          "Defined in",
          profile.source === "admin" ? "Administrators" : "The template (DesktopProfiles)",
        ),
      ),
    load: async () => {
      const page = await api.get("/admin/profiles");
      return { items: page.items, nextToken: page.nextToken };
    },
  });
}

export function adminView(main, ctx) {
  const { auth, setTitle } = ctx;
  setTitle("Fleet administration");
  if (!auth.isAdmin) {
    main.append(
      h(
        "section",
        { class: "card" },
        h("h1", { tabindex: "-1" }, "Administrators only"),
        h(
          "p",
          {},
          "This page is for fleet administrators. Ask one to add you to the admins group.",
        ),
        h("a", { class: "button", href: "#/" }, "Back to my desktops"),
      ),
    );
    return () => {};
  }
  main.append(
    h("div", { class: "page-header" }, h("h1", { tabindex: "-1" }, "Fleet administration")),
    sessionsListing(ctx),
    instancesListing(ctx),
    auditListing(ctx),
    profilesListing(ctx),
  );
  return () => {};
}
