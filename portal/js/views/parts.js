// Small pieces the views share.

import { h } from "../dom.js";
import { statusLabel } from "../format.js";

/** A status badge: colour and dot from the status, its name in words. */
export function statusBadge(status) {
  return h("span", { class: `badge badge--${String(status).toLowerCase()}` }, statusLabel(status));
}

/** <dl> from [term, value] pairs; pairs whose value is null or undefined are left out. */
export function definitionList(pairs, className = "details") {
  return h(
    "dl",
    { class: className },
    pairs
      .filter(([, value]) => value !== null && value !== undefined)
      .map(([term, value]) =>
        h("div", { class: "details-item" }, h("dt", {}, term), h("dd", {}, value)),
      ),
  );
}

/** A table cell; data-label names it when rows become cards on a narrow screen. */
export function cell(label, ...content) {
  return h("td", { "data-label": label }, h("div", { class: "cell" }, ...content));
}
