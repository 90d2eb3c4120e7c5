// #/admin — the fleet, for members of the "admins" group: every desktop (filter by status and user,
// stop or terminate any of them), the GPU instances (filter by state) and the desktops on each,
// the warm pool and what it aims at, the host images (build now, roll back), the audit trail of
// administrators' actions and the desktop profiles, page by page.

import { runAction } from "../actions.js";
import { busy, h, messageBox } from "../dom.js";
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
function pagedListing({
  title,
  testid,
  caption,
  columns,
  filters,
  load,
  renderRow,
  noun,
  before = null,
  handle = {},
}) {
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
  handle.reload = () => fetchPage(false); // for the caller, after a change

  const id = `${testid}-title`;
  return h(
    "section",
    { class: "section", "aria-labelledby": id },
    h("h2", { id }, title),
    before,
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

const POOL_STATES = {
  READY: "Ready: the next request takes it",
  STOPPED: "Waiting stopped: a request starts it",
  STOPPING: "Being stopped to wait",
  WARMING: "Starting",
};

const POOL_WAITS = {
  running: "running",
  stopped: "waiting stopped",
  hibernated: "waiting hibernated",
};

/** What one profile's pool aims at now, in plain words. */
function poolAim(profile, aim) {
  const hosts = `${aim.size} ${aim.size === 1 ? "host" : "hosts"}`;
  return `${profile} keeps ${hosts} ${POOL_WAITS[aim.state] ?? aim.state} now (${aim.reason}).`;
}

/** A list-price amount in dollars; a price the table does not have is unknown, never $0. */
const usd = (amount) =>
  amount === null || amount === undefined ? "price unknown" : `$${amount.toFixed(2)}`;

/** What the pools' hosts have cost so far together, and at which prices. */
function poolCostNote(cost) {
  if (!cost) return "";
  return `Cost so far, together: ${usd(cost.totalUsd)} (each host at its type's list price in ${cost.region}, taken ${cost.pricesTakenAt}).`;
}

/** GET /admin/pool: every profile's warm pool, what each one's last refill aimed at, and what
 * its hosts have cost so far. */
function poolListing({ api }) {
  const target = h("div", { class: "hint", "data-testid": "admin-pool-targets" });
  const total = h("p", { class: "hint", "data-testid": "admin-pool-cost" });
  return pagedListing({
    title: "Warm pools",
    testid: "admin-pool",
    caption: "Hosts launched ahead of any request, each in its profile's pool, waiting for one",
    columns: ["Instance", "Profile", "State", "Since", "Cost so far"],
    filters: null,
    before: h("div", {}, target, total),
    noun: { one: "pool host", many: "pool hosts" },
    renderRow: (host) =>
      h(
        "tr",
        { "data-testid": "admin-pool-row", "data-state": host.state },
        h("th", { scope: "row", "data-label": "Instance" }, mono(host.instanceId)),
        cell("Profile", mono(host.profile)),
        cell("State", POOL_STATES[host.state] ?? host.state),
        cell("Since", h("time", { datetime: host.since }, formatDateTime(host.since))),
        cell("Cost so far", usd(host.costUsd)),
      ),
    load: async () => {
      const page = await api.get("/admin/pool");
      const aims = Object.entries(page.targets ?? {}).sort(([a], [b]) => a.localeCompare(b));
      target.replaceChildren(
        ...(aims.length
          ? aims.map(([profile, aim]) =>
              h(
                "p",
                { "data-testid": "admin-pool-target", "data-profile": profile },
                poolAim(profile, aim),
              ),
            )
          : [h("p", { "data-testid": "admin-pool-target" }, "No pool has been refilled yet.")]),
      );
      total.textContent = poolCostNote(page.cost);
      return { items: page.items, nextToken: null };
    },
  });
}

const imageLabel = (version) =>
  version
    ? [mono(version.imageId), h("span", { class: "cell-note" }, imageNote(version))]
    : "—";

function imageNote(version) {
  if (version.gone) return "deregistered";
  if (version.withdrawn) return "withdrawn by a rollback";
  return version.baked ? "baked host image" : "base image: DCV installed at first boot";
}

/** GET /admin/host-images: the image new EC2 desktops start from per OS; build now, roll back. */
function hostImagesListing({ api, announce }) {
  const handle = {};

  function actions(item, error) {
    const build = h(
      "button",
      { type: "button", class: "button", "data-testid": "host-image-build" },
      "Build now",
    );
    const rollBack = h(
      "button",
      { type: "button", class: "button", "data-testid": "host-image-rollback" },
      "Roll back",
    );
    const os = osLabel(item.os);
    build.addEventListener("click", async () => {
      error.clear();
      try {
        const started = await runAction(build, {
          busyLabel: "Starting…",
          call: () => api.post(`/admin/host-images/${item.os}/build`),
        });
        if (started) {
          announce(`${os} host image build started: desktops use it once it passes its tests.`);
        }
      } catch (failure) {
        if (failure.status !== 0) error.show(failure.message);
      }
    });
    rollBack.addEventListener("click", async () => {
      error.clear();
      try {
        const done = await runAction(rollBack, {
          confirm: {
            title: `Roll the ${os} host image back?`,
            message:
              "New desktops start from the previous image; this one is withdrawn. Running desktops keep theirs.",
            confirmLabel: "Roll back",
          },
          busyLabel: "Rolling back…",
          call: () => api.post(`/admin/host-images/${item.os}/rollback`),
        });
        if (!done) return;
        announce(`${os} host image rolled back to ${done.imageId}.`);
        handle.reload();
      } catch (failure) {
        if (failure.status !== 0) error.show(failure.message);
      }
    });
    return [build, rollBack];
  }

  return pagedListing({
    title: "Host images",
    testid: "admin-host-images",
    caption: "The images new EC2 desktops start from",
    columns: ["System", "Current image", "Since", "Earlier images", "Actions"],
    filters: null,
    handle,
    noun: { one: "host image", many: "host images" },
    renderRow: (item, error) =>
      h(
        "tr",
        { "data-testid": "admin-host-image-row", "data-os": item.os },
        h("th", { scope: "row", "data-label": "System" }, osLabel(item.os)),
        cell("Current image", imageLabel(item.current)),
        cell(
          "Since",
          item.current
            ? h("time", { datetime: item.current.since }, formatDateTime(item.current.since))
            : "—",
        ),
        cell("Earlier images", String(item.history.length)),
        cell("Actions", h("div", { class: "actions" }, actions(item, error))),
      ),
    load: async () => {
      const page = await api.get("/admin/host-images");
      return { items: page.items, nextToken: null };
    },
  });
}

const IDLE_ACTIONS = { stop: "Stop it", hibernate: "Hibernate it", terminate: "End it" };
const list = (text) =>
  text
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);

/**
 * Add or edit a profile (PUT /admin/profiles/{id}: the profile without its id and the derived
 * fields). edit(profile) fills it in; onSaved() after the API took it.
 */
function profileForm(api, onSaved) {
  const error = messageBox();
  const field = (name, label, control, note) =>
    h(
      "div",
      { class: "field" },
      h("label", { for: `profile-${name}` }, label),
      control,
      note ? h("span", { class: "cell-note" }, note) : null,
    );
  const input = (name, props = {}) =>
    h("input", {
      id: `profile-${name}`,
      class: "input",
      autocomplete: "off",
      "data-testid": `profile-form-${name}`,
      ...props,
    });
  const choice = (name, values) =>
    h(
      "select",
      { id: `profile-${name}`, class: "input", "data-testid": `profile-form-${name}` },
      Object.entries(values).map(([value, label]) => h("option", { value }, label)),
    );
  const controls = {
    id: input("id", { required: true, pattern: "[a-z0-9][a-z0-9\\-]{0,39}", maxlength: "40" }),
    name: input("name", { required: true, maxlength: "60" }),
    description: input("description", { required: true, maxlength: "200" }),
    backend: choice("backend", { ec2: backendLabel("ec2"), batch: backendLabel("batch") }),
    os: choice("os", { linux: osLabel("linux"), windows: osLabel("windows") }),
    instanceTypes: input("instanceTypes", { required: true }),
    idleMinutes: input("idleMinutes", { type: "number", min: "1", required: true }),
    idleAction: choice("idleAction", IDLE_ACTIONS),
    maxSessionHours: input("maxSessionHours", { type: "number", min: "1" }),
    groups: input("groups"),
  };
  const save = h(
    "button",
    { type: "submit", class: "button button--primary", "data-testid": "profile-form-save" },
    "Save profile",
  );
  const form = h(
    "form",
    {
      class: "filters profile-form",
      "aria-label": "Add or edit a profile",
      "data-testid": "profile-form",
    },
    field("id", "ID", controls.id, "a-z, 0-9 and -"),
    field("name", "Name", controls.name),
    field("description", "Description", controls.description),
    field("backend", "Backend", controls.backend),
    field("os", "Operating system", controls.os),
    field(
      "instanceTypes",
      "Instance types",
      controls.instanceTypes,
      "comma-separated; the first is the default",
    ),
    field("idleMinutes", "Unused for (minutes)", controls.idleMinutes),
    field("idleAction", "Then", controls.idleAction),
    field(
      "maxSessionHours",
      "Longest session (hours)",
      controls.maxSessionHours,
      "empty: no limit",
    ),
    field("groups", "Groups", controls.groups, "comma-separated; empty: everyone"),
    h("div", { class: "field field--action" }, save),
  );
  const details = h(
    "details",
    { class: "profile-editor" },
    h("summary", { "data-testid": "profile-form-open" }, "Add or edit a profile"),
    form,
    error.node,
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.clear();
    const hours = controls.maxSessionHours.value;
    const body = {
      name: controls.name.value.trim(),
      description: controls.description.value.trim(),
      backend: controls.backend.value,
      os: controls.os.value,
      instanceTypes: list(controls.instanceTypes.value),
      idle: {
        timeoutSeconds: Math.round(Number(controls.idleMinutes.value) * 60),
        action: controls.idleAction.value,
      },
      maxSessionHours: hours ? Number(hours) : null,
      groups: list(controls.groups.value),
    };
    const done = busy(save, "Saving…");
    try {
      await api.put(`/admin/profiles/${encodeURIComponent(controls.id.value.trim())}`, body);
      details.open = false;
      onSaved(body.name);
    } catch (failure) {
      if (failure.status !== 0) error.show(failure.message); // an operator's words: precise
    } finally {
      done();
    }
  });

  return {
    node: details,
    edit(profile) {
      controls.id.value = profile.id;
      controls.name.value = profile.name;
      controls.description.value = profile.description;
      controls.backend.value = profile.backend;
      controls.os.value = profile.os;
      controls.instanceTypes.value = (profile.instanceTypes ?? []).join(", ");
      controls.idleMinutes.value = String(Math.round((profile.idle?.timeoutSeconds ?? 3600) / 60));
      controls.idleAction.value = profile.idle?.action ?? "stop";
      controls.maxSessionHours.value = profile.maxSessionHours ?? "";
      controls.groups.value = (profile.groups ?? []).join(", ");
      details.open = true;
      controls.name.focus();
    },
  };
}

/** GET /admin/profiles: every profile, where it is defined and what it allows; add, edit, and
 * delete the ones administrators defined. */
function profilesListing({ api, announce }) {
  const handle = {};
  const editor = profileForm(api, (name) => {
    announce(`Profile ${name} saved.`);
    handle.reload();
  });

  function actions(profile, error) {
    const edit = h(
      "button",
      {
        type: "button",
        class: "button",
        "data-testid": "admin-profile-edit",
        "aria-label": `Edit ${profile.name}`,
        onClick: () => editor.edit(profile),
      },
      "Edit",
    );
    if (profile.source !== "admin") return [edit];
    const remove = h(
      "button",
      {
        type: "button",
        class: "button button--danger",
        "data-testid": "admin-profile-delete",
        "aria-label": `Delete ${profile.name}`,
      },
      "Delete",
    );
    remove.addEventListener("click", async () => {
      error.clear();
      try {
        const deleted = await runAction(remove, {
          confirm: {
            title: `Delete the profile "${profile.name}"?`,
            message:
              "Nobody can start a desktop from it any more; desktops already made from it keep running.",
            confirmLabel: "Delete profile",
          },
          busyLabel: "Deleting…",
          call: async () => {
            await api.delete(`/admin/profiles/${encodeURIComponent(profile.id)}`);
            return true;
          },
        });
        if (!deleted) return;
        announce(`Profile ${profile.name} deleted.`);
        handle.reload();
      } catch (failure) {
        if (failure.status !== 0) error.show(failure.message);
      }
    });
    return [edit, remove];
  }

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
      "Actions",
    ],
    filters: null,
    before: editor.node,
    handle,
    noun: { one: "profile", many: "profiles" },
    renderRow: (profile, error) =>
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
        cell("Actions", h("div", { class: "actions" }, actions(profile, error))),
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
    poolListing(ctx),
    hostImagesListing(ctx),
    auditListing(ctx),
    profilesListing(ctx),
  );
  return () => {};
}
