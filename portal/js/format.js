// How values read to a person: statuses, backends, operating systems, times and durations.

const STATUS = {
  PROVISIONING: "Provisioning",
  READY: "Ready",
  STOPPING: "Stopping",
  STOPPED: "Stopped",
  TERMINATING: "Terminating",
  TERMINATED: "Terminated",
  FAILED: "Failed",
};
export const STATUSES = Object.keys(STATUS);
/** The statuses that count against the active-desktop limit (as the API counts them). */
export const ACTIVE = new Set(["PROVISIONING", "READY", "STOPPING", "TERMINATING"]);

const BACKEND = { ec2: "EC2 instance", batch: "Batch container" };
const OS = { linux: "Linux", windows: "Windows" };
const INSTANCE_STATE = {
  pending: "Pending",
  running: "Running",
  stopping: "Stopping",
  stopped: "Stopped",
  "shutting-down": "Shutting down",
  terminated: "Terminated",
};

export const statusLabel = (status) => STATUS[status] ?? status;
export const backendLabel = (backend) => BACKEND[backend] ?? backend;
export const osLabel = (os) => OS[os] ?? os;
export const instanceStateLabel = (state) => INSTANCE_STATE[state] ?? state;

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const clock = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

export function formatDateTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "—" : dateTime.format(date);
}

export function formatClock(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : clock.format(date);
}

/** 4 s, 1 min 5 s, 2 h 3 min. */
export function formatDuration(ms) {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** The first block of a UUID: enough to tell one's desktops apart. */
export const shortId = (id) => String(id).split("-")[0];

/** A desktop's name; one from before desktops had names gets a plain description. */
export const desktopName = (session) => session.name || `${osLabel(session.os)} desktop`;

const IDLE_ACTION = { stop: "stopped", hibernate: "hibernated", terminate: "ended" };

/** "Stopped after 60 minutes unused", from a profile's idle policy. */
export function idleLabel(idle) {
  if (!idle?.timeoutSeconds) return "Never stopped for being unused";
  const minutes = Math.round(idle.timeoutSeconds / 60);
  const action = IDLE_ACTION[idle.action] ?? idle.action;
  const after = minutes < 1 ? `${idle.timeoutSeconds} s` : `${minutes} min`;
  return `${action[0].toUpperCase()}${action.slice(1)} after ${after} unused`;
}

const AUDIT_ACTION = {
  stop: "Stopped a desktop",
  terminate: "Deleted a desktop",
  "activate-release": "Activated a release",
  "put-profile": "Saved a profile",
  "delete-profile": "Deleted a profile",
  "build-host-image": "Started a host image build",
  "roll-back-host-image": "Rolled a host image back",
};
export const auditActionLabel = (action) => AUDIT_ACTION[action] ?? action;

/** A resume writes its credentials step at once (they were kept while stopped): a first step
 * done this long after the desktop was made belongs to a resume. */
const RESUMED_AFTER_MS = 10 * 60 * 1000;

/** The desktop's current provisioning is a resume (it existed, stopped, before). */
export function isResume(session) {
  const created = new Date(session.createdAt).getTime();
  const first = new Date(session.progress?.credentials ?? Number.NaN).getTime();
  return first - created > RESUMED_AFTER_MS;
}
