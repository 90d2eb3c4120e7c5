// Building and updating DOM nodes without innerHTML (and without style attributes: the CSP forbids
// inline styles, so looks come from classes only).

/**
 * h("button", {class: "button", "data-testid": "stop", onClick: fn}, "Stop") → <button>.
 * Children are nodes or strings (text, never parsed as HTML); null, undefined and false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2).toLowerCase(), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

const identities = new WeakMap(); // node → {key, signature} of the item it shows

/**
 * Makes container's children the nodes for items, in order, keeping the node of every item whose
 * signature did not change (so focus and selection survive a live update). render(item) builds a
 * node; keyOf and signatureOf identify an item and its content.
 */
export function reconcile(container, items, { keyOf, signatureOf, render }) {
  const existing = new Map();
  for (const node of container.children) {
    const identity = identities.get(node);
    if (identity) existing.set(identity.key, node);
  }
  const wanted = items.map((item) => {
    const key = keyOf(item);
    const signature = signatureOf(item);
    const old = existing.get(key);
    existing.delete(key);
    if (old && identities.get(old).signature === signature) return old;
    const node = render(item);
    identities.set(node, { key, signature });
    if (old) replaceKeepingFocus(old, node);
    return node;
  });
  for (const stale of existing.values()) stale.remove();
  wanted.forEach((node, index) => {
    const current = container.children[index] ?? null;
    if (current !== node) container.insertBefore(node, current);
  });
}

/** Swaps old for node; if focus was inside old, moves it to the same control in node (by testid). */
function replaceKeepingFocus(old, node) {
  const focused = old.contains(document.activeElement) ? document.activeElement : null;
  old.replaceWith(node);
  if (!focused) return;
  const testid = focused.getAttribute("data-testid");
  const twin = testid && node.querySelector(`[data-testid="${CSS.escape(testid)}"]`);
  (twin ?? node.querySelector("a, button"))?.focus();
}

/** A message region (role=alert for errors, role=status otherwise) that can be set and cleared. */
export function messageBox({ kind = "error", testid } = {}) {
  const box = h("div", {
    class: `message message--${kind}`,
    role: kind === "error" ? "alert" : "status",
    "data-testid": testid,
    hidden: true,
  });
  return {
    node: box,
    show(text, ...extra) {
      box.replaceChildren(h("p", {}, text), ...extra);
      box.hidden = false;
    },
    clear() {
      box.replaceChildren();
      box.hidden = true;
    },
  };
}

/** Sets a button busy (disabled, with a label saying what it is doing) until done() is called. */
export function busy(button, label) {
  const original = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = label;
  return function done() {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = original;
  };
}
