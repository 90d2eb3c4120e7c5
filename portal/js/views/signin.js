// Sign-in (user name and password, by SRP), for a first sign-in choosing a new password, and
// the code from an authenticator app when the account has one (multi-factor sign-in).

import { SESSION_EXPIRED } from "../auth.js";
import { busy, h, messageBox } from "../dom.js";

/** What went wrong, for a person (Cognito's own messages are for developers). */
function signInError(error) {
  switch (error.type) {
    case "NotAuthorizedException":
      if (/attempts exceeded/i.test(error.message)) {
        return "Too many failed attempts. Wait a few minutes, then try again.";
      }
      if (/disabled/i.test(error.message)) {
        return "This account is disabled. Contact your administrator.";
      }
      return "Incorrect user name or password.";
    case "UserNotFoundException":
      return "Incorrect user name or password.";
    case "PasswordResetRequiredException":
      return "Your password has to be reset. Contact your administrator.";
    case "UserNotConfirmedException":
      return "This account is not confirmed yet. Contact your administrator.";
    case "TooManyRequestsException":
    case "LimitExceededException":
      return "Too many attempts. Wait a moment, then try again.";
    case "CodeMismatchException":
      return "That code is wrong or has expired. Enter the code your app shows now.";
    case "InvalidPasswordException":
    case "NetworkError":
    case "UnsupportedChallenge":
      return error.message;
    default:
      return error.message || "Sign-in failed. Try again.";
  }
}

function field(id, label, attributes) {
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    h("input", { id, class: "input", required: true, ...attributes }),
  );
}

export function signInView(main, { auth, brand, setTitle }, { expired }) {
  const error = messageBox({ testid: "signin-error" });
  const card = h("section", { class: "card signin", "aria-labelledby": "signin-title" });

  function header(title) {
    return [
      h(
        "div",
        { class: "signin-brand" },
        h("img", { class: "signin-logo", src: brand.logo, alt: "" }),
        h("p", { class: "signin-name" }, brand.name),
        brand.tagline ? h("p", { class: "signin-tagline" }, brand.tagline) : null,
      ),
      h("h1", { id: "signin-title", tabindex: "-1" }, title),
    ];
  }

  function passwordForm() {
    const form = h(
      "form",
      { class: "form", "data-testid": "signin-form" },
      field("signin-username", "User name", {
        name: "username",
        autocomplete: "username",
        autocapitalize: "none",
        spellcheck: "false",
        "data-testid": "signin-username",
      }),
      field("signin-password", "Password", {
        name: "password",
        type: "password",
        autocomplete: "current-password",
        "data-testid": "signin-password",
      }),
      h(
        "button",
        {
          type: "submit",
          class: "button button--primary button--block",
          "data-testid": "signin-submit",
        },
        "Sign in",
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.clear();
      const username = form.elements.username.value.trim();
      const password = form.elements.password;
      const done = busy(form.querySelector("[type=submit]"), "Signing in…");
      try {
        next(await auth.signIn(username, password.value), username);
      } catch (failure) {
        done();
        error.show(signInError(failure));
        password.value = "";
        password.focus();
      }
    });
    return form;
  }

  function newPasswordStep(username) {
    const form = h(
      "form",
      { class: "form", "data-testid": "new-password-form" },
      h("p", {}, "This is your first sign-in: choose a new password."),
      // For password managers, which save the new password under this user name.
      h("input", {
        type: "text",
        name: "username",
        autocomplete: "username",
        value: username,
        readonly: true,
        hidden: true,
      }),
      field("new-password", "New password", {
        name: "password",
        type: "password",
        autocomplete: "new-password",
        "data-testid": "new-password",
      }),
      field("new-password-confirm", "Confirm new password", {
        name: "confirm",
        type: "password",
        autocomplete: "new-password",
        "data-testid": "new-password-confirm",
      }),
      h(
        "button",
        {
          type: "submit",
          class: "button button--primary button--block",
          "data-testid": "new-password-submit",
        },
        "Set password and sign in",
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.clear();
      const { password, confirm } = form.elements;
      if (password.value !== confirm.value) {
        error.show("The two passwords are not the same.");
        confirm.focus();
        return;
      }
      const done = busy(form.querySelector("[type=submit]"), "Setting password…");
      try {
        next(await auth.setNewPassword(password.value), username);
      } catch (failure) {
        done();
        if (failure.type === "NotAuthorizedException") {
          // The challenge lasts a few minutes: start again from the temporary password.
          signInStep();
          error.show("The sign-in expired before the new password was set. Sign in again.");
          return;
        }
        error.show(signInError(failure));
        password.focus();
      }
    });
    card.replaceChildren(...header("Choose a new password"), error.node, form);
    setTitle("Choose a new password");
    form.elements.password.focus();
  }

  /** The step after an answer: done, a new password, or a code. */
  function next(outcome, username) {
    if (outcome === "new-password") newPasswordStep(username);
    if (outcome === "mfa-code") codeStep();
  }

  function codeStep() {
    const form = h(
      "form",
      { class: "form", "data-testid": "mfa-form" },
      h("p", {}, "Enter the 6-digit code your authenticator app shows for this account."),
      field("mfa-code", "Code", {
        name: "code",
        inputmode: "numeric",
        autocomplete: "one-time-code",
        pattern: "[0-9]{6}",
        maxlength: "6",
        "data-testid": "mfa-code",
      }),
      h(
        "button",
        {
          type: "submit",
          class: "button button--primary button--block",
          "data-testid": "mfa-submit",
        },
        "Sign in",
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.clear();
      const { code } = form.elements;
      const done = busy(form.querySelector("[type=submit]"), "Checking the code…");
      try {
        next(await auth.answerCode(code.value.trim()), "");
      } catch (failure) {
        done();
        if (failure.type === "NotAuthorizedException") {
          // A wrong code ends Cognito's challenge, as does waiting too long: sign in again.
          signInStep();
          error.show("The sign-in expired or the code was refused. Sign in again.");
          return;
        }
        error.show(signInError(failure));
        code.value = "";
        code.focus();
      }
    });
    card.replaceChildren(...header("Enter your code"), error.node, form);
    setTitle("Enter your code");
    form.elements.code.focus();
  }

  function signInStep() {
    card.replaceChildren(...header("Sign in"));
    if (expired) {
      card.append(
        h(
          "p",
          { class: "message message--info", role: "status", "data-testid": "session-expired" },
          SESSION_EXPIRED,
        ),
      );
    }
    card.append(error.node, passwordForm());
    setTitle("Sign in");
  }

  signInStep();
  main.append(h("div", { class: "signin-page" }, card));
}
