// The waiting screen: the brand, the four provisioning steps (pending, in progress with its elapsed
// time, done with its time, or failed), each change announced politely, and "Try again" on failure.

import { busy, h, messageBox } from "../dom.js";
import {
  backendLabel,
  desktopName,
  formatClock,
  formatDuration,
  isResume,
  osLabel,
} from "../format.js";

const STEPS = [
  { name: "credentials", label: "Creating your credentials" },
  { name: "capacity", label: "Finding a GPU" },
  { name: "booted", label: "Starting your desktop" },
  { name: "ready", label: "DCV is ready" },
];

const STATE_WORDS = { pending: "waiting", active: "in progress", done: "done", failed: "failed" };

/** How the desktop starts (GET /sessions/{id}'s estimate.path), in the user's words. */
const PATH_WORDS = {
  pool: "A desktop was ready and waiting for you.",
  "pool-stopped": "A waiting desktop is being started for you.",
  launch: "A new GPU machine is starting for you.",
  resume: "Your desktop is starting again, with your files.",
  batch: "Your desktop is being placed on a GPU machine.",
};

/**
 * The estimate's words: how it starts, and, from the profile's recent desktops that started the
 * same way, how long that usually takes and how much is left now ("" when nothing is known yet).
 */
export function estimateWords(estimate, startedAt, now = Date.now()) {
  const path = PATH_WORDS[estimate?.path];
  if (!path) return "";
  if (!Number.isFinite(estimate.seconds)) return path;
  const usual =
    `${path} This usually takes about ${formatDuration(estimate.seconds * 1000)}` +
    ` (9 in 10 within ${formatDuration(estimate.upToSeconds * 1000)}, from the last` +
    ` ${estimate.samples} like it).`;
  if (Number.isNaN(startedAt)) return usual;
  const left = startedAt + estimate.seconds * 1000 - now;
  if (left >= 1000) return `${usual} About ${formatDuration(left)} left.`;
  return now < startedAt + estimate.upToSeconds * 1000
    ? `${usual} Any moment now.`
    : `${usual} It is taking longer than usual.`;
}

/** Each step's state: done if it has a time; the first missing one is active (or failed). */
function stepStates(session) {
  const progress = session.progress ?? {};
  const firstMissing = STEPS.findIndex((step) => !progress[step.name]);
  return STEPS.map((step, index) => {
    if (progress[step.name] || session.status === "READY") return "done";
    if (index !== firstMissing) return "pending";
    if (session.status === "FAILED") return "failed";
    return session.status === "PROVISIONING" ? "active" : "pending";
  });
}

const ms = (iso) => (iso ? new Date(iso).getTime() : Number.NaN);

/**
 * brand: {name, logo}; onRetry(): starts the same desktop again (rejects with what went wrong).
 * Returns {node, update(session), stop()}.
 */
export function waitingScreen(brand, onRetry) {
  const items = STEPS.map((step) => {
    const time = h("span", { class: "step-time" });
    const state = h("span", { class: "visually-hidden" });
    const node = h(
      "li",
      { class: "step", "data-testid": `step-${step.name}`, "data-state": "pending" },
      h("span", { class: "step-icon", "aria-hidden": "true" }),
      h("span", { class: "step-label" }, step.label, state),
      time,
    );
    return { ...step, node, time, state };
  });
  const title = h("h1", { id: "waiting-title", tabindex: "-1" }, "Getting your desktop ready");
  const subtitle = h("p", { class: "waiting-subtitle" });
  const elapsed = h("p", { class: "waiting-elapsed" });
  const estimate = h("p", { class: "waiting-estimate", "data-testid": "waiting-estimate" });
  const live = h("p", { class: "visually-hidden", "aria-live": "polite" });
  const reason = h("p", {});
  const retry = h(
    "button",
    { type: "button", class: "button button--primary", "data-testid": "retry" },
    "Try again",
  );
  const retryError = messageBox();
  const actions = h("div", { class: "actions waiting-actions" });
  retry.addEventListener("click", async () => {
    retryError.clear();
    const done = busy(retry, "Starting…");
    try {
      await onRetry();
    } catch (failure) {
      retryError.show(failure.message);
    } finally {
      done();
    }
  });
  const failure = h(
    "div",
    { class: "message message--error waiting-failure", role: "alert", hidden: true },
    h("p", { class: "message-title" }, "Your desktop could not be started."),
    reason,
    h(
      "div",
      { class: "actions" },
      retry,
      h("a", { class: "button", href: "#/" }, "Back to my desktops"),
    ),
  );
  const node = h(
    "section",
    { class: "card waiting", "data-testid": "waiting-screen", "aria-labelledby": "waiting-title" },
    h(
      "div",
      { class: "waiting-brand" },
      h("img", { class: "waiting-logo", src: brand.logo, alt: "" }),
      h("span", { class: "waiting-brand-name" }, brand.name),
    ),
    title,
    subtitle,
    h(
      "ol",
      { class: "steps" },
      items.map((item) => item.node),
    ),
    elapsed,
    estimate,
    actions,
    failure,
    retryError.node,
    live,
  );

  let session = null;
  let startedAt = Number.NaN; // when this provisioning began, if known
  let previous = null;
  const ticker = setInterval(() => session && tick(), 1000);

  /** When step i began: the previous step's end (the first step's start is known only if seen). */
  function stepStart(index) {
    return index === 0 ? startedAt : ms(session.progress?.[STEPS[index - 1].name]);
  }

  function tick() {
    const states = stepStates(session);
    const now = Date.now();
    items.forEach((item, index) => {
      const started = stepStart(index);
      if (states[index] === "active") {
        item.time.textContent = Number.isNaN(started) ? "" : formatDuration(now - started);
      }
    });
    elapsed.textContent =
      session.status === "PROVISIONING" && !Number.isNaN(startedAt)
        ? `Elapsed: ${formatDuration(now - startedAt)}`
        : "";
    estimate.textContent =
      session.status === "PROVISIONING"
        ? estimateWords(session.estimate, provisioningStart(session, startedAt), now)
        : "";
  }

  function update(next) {
    if (next.status === "PROVISIONING" && !Object.keys(next.progress ?? {}).length) {
      startedAt = ms(next.updatedAt); // nothing done yet: the last change was the request itself
    } else if (session?.status !== next.status && next.status === "PROVISIONING") {
      startedAt = Number.NaN; // a new provisioning (resume) seen midway
    }
    session = next;
    const states = stepStates(next);
    const changes = [];
    items.forEach((item, index) => {
      const state = states[index];
      item.node.dataset.state = state;
      item.state.textContent = `: ${STATE_WORDS[state]}`;
      const finished = next.progress?.[item.name];
      if (state === "done" && finished) {
        const took = ms(finished) - stepStart(index);
        item.time.replaceChildren(
          h("time", { datetime: finished }, formatClock(finished)),
          Number.isNaN(took) ? "" : ` · ${formatDuration(took)}`,
        );
      } else if (state !== "active") {
        item.time.textContent = state === "failed" ? "Failed" : "";
      }
      if (previous && previous[index] !== state) {
        changes.push(`${item.label}: ${STATE_WORDS[state]}.`);
      }
    });
    if (changes.length) live.textContent = changes.join(" ");
    previous = states;

    const failed = next.status === "FAILED";
    title.textContent = failed ? "We could not start your desktop" : "Getting your desktop ready";
    const kind = next.profileName ?? `${osLabel(next.os)} · ${backendLabel(next.backend)}`;
    subtitle.textContent =
      `${desktopName(next)} · ${kind} · ${next.instanceType}` +
      (failed ? "" : ". This page updates by itself.");
    failure.hidden = !failed;
    reason.textContent = next.statusReason ?? "Something went wrong while starting it.";
    tick();
  }

  return {
    node,
    update,
    stop: () => clearInterval(ticker),
    startedAt: () => startedAt,
    /** The controls offered while it starts (Cancel); none once it has failed. */
    setActions: (controls) => actions.replaceChildren(...controls),
  };
}

/** When the provisioning that made the desktop READY began: seen by the page, else from the API's
 * times (the request for a new desktop, or the resume). */
export function provisioningStart(session, observed = Number.NaN) {
  if (!Number.isNaN(observed)) return observed;
  return isResume(session) ? ms(session.progress.credentials) : ms(session.createdAt);
}

/**
 * The finished timeline for a READY desktop: each step with when it finished and how long it
 * took, and the whole in words ("Ready in 1 min 35 s.").
 */
export function readyTimeline(session, observedStart) {
  const progress = session.progress ?? {};
  const start = provisioningStart(session, observedStart);
  let previous = start;
  const items = STEPS.map((step) => {
    const finished = progress[step.name];
    const took = ms(finished) - previous;
    previous = ms(finished);
    return h(
      "li",
      { class: "step", "data-testid": `step-${step.name}`, "data-state": "done" },
      h("span", { class: "step-icon", "aria-hidden": "true" }),
      h(
        "span",
        { class: "step-label" },
        step.label,
        h("span", { class: "visually-hidden" }, ": done"),
      ),
      h(
        "span",
        { class: "step-time" },
        finished ? h("time", { datetime: finished }, formatClock(finished)) : "",
        Number.isNaN(took) ? "" : ` · ${formatDuration(took)}`,
      ),
    );
  });
  const total = ms(progress.ready) - start;
  return h(
    "div",
    { class: "ready-timeline", "data-testid": "ready-timeline" },
    h("ol", { class: "steps steps--done", "aria-label": "How your desktop was started" }, items),
    Number.isNaN(total)
      ? null
      : h(
          "p",
          { class: "hint", "data-testid": "ready-took" },
          `Ready in ${formatDuration(total)}.`,
        ),
  );
}
