// Confirmation in the page's native <dialog>: modal, focus inside (on Cancel), Escape cancels,
// focus returns to the control that opened it.

/** Resolves true if the person confirmed. dismissLabel names the way out (default "Cancel"). */
export function confirmAction({ title, message, confirmLabel, dismissLabel = "Cancel" }) {
  const dialog = document.querySelector("[data-testid=confirm-dialog]");
  const opener = document.activeElement;
  dialog.querySelector("#confirm-title").textContent = title;
  dialog.querySelector("#confirm-message").textContent = message;
  dialog.querySelector("[data-testid=confirm-ok]").textContent = confirmLabel;
  dialog.querySelector("[data-testid=confirm-cancel]").textContent = dismissLabel;
  dialog.returnValue = "";
  dialog.showModal();
  dialog.querySelector("[data-testid=confirm-cancel]").focus();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
        resolve(dialog.returnValue === "ok");
      },
      { once: true },
    );
  });
}
