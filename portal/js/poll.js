// Live updates: run a task now and again after each run, never two at once, paused while the page
// is hidden (document.hidden) and resumed at once when it is shown again.

/**
 * task() resolves the delay before its next run in ms, or null to stop polling.
 * Returns {refresh(): run now (after the run in progress, if any), stop()}.
 */
export function poll(task) {
  let timer = null;
  let running = false;
  let again = false;
  let stopped = false;
  let delay = 0;

  async function run() {
    clearTimeout(timer);
    if (stopped || document.hidden) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      delay = await task();
    } finally {
      running = false;
    }
    if (delay === null) stopped = true;
    if (again) {
      again = false;
      run();
    } else if (!stopped && !document.hidden) {
      timer = setTimeout(run, delay);
    }
  }

  function onVisibilityChange() {
    if (document.hidden) clearTimeout(timer);
    else run();
  }

  document.addEventListener("visibilitychange", onVisibilityChange);
  run();
  return {
    refresh: run,
    stop() {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener("visibilitychange", onVisibilityChange);
    },
  };
}
