// The signed-in user: Cognito SRP sign-in, the new-password challenge, tokens in sessionStorage,
// refresh before the ID token expires, sign-out.
//
// Events: "change" with detail.reason "signin" | "signout" | "expired".

import { CognitoError, cognitoClient } from "./cognito.js";
import { cognitoTimestamp, largeAHex, passwordClaim, randomSmallAHex } from "./srp.js";

const STORAGE_KEY = "dcvfleet.tokens";
const REFRESH_BEFORE_EXPIRY_MS = 5 * 60 * 1000;
const FRESH_ENOUGH_MS = 60 * 1000; // a token this close to expiry is refreshed before it is sent
const RETRY_REFRESH_MS = 30 * 1000;

export const SESSION_EXPIRED = "Your session has expired. Please sign in again.";

/** The claims of a JWT (not verified: the API does that; the portal only reads them). */
function decodeJwt(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}

/** cognito:groups is a JSON array in the token; some proxies flatten it to a string. */
function groupsOf(claims) {
  const groups = claims["cognito:groups"];
  if (Array.isArray(groups)) return groups;
  if (typeof groups !== "string") return [];
  if (groups.trim().startsWith("[")) {
    try {
      return JSON.parse(groups);
    } catch {
      return [];
    }
  }
  return groups.split(/[\s,]+/).filter(Boolean);
}

function readStoredTokens() {
  try {
    const tokens = JSON.parse(sessionStorage.getItem(STORAGE_KEY));
    return tokens?.idToken && tokens?.refreshToken ? tokens : null;
  } catch {
    return null;
  }
}

export class Auth extends EventTarget {
  #config;
  #cognito;
  #tokens;
  #claims = {};
  #timer = null;
  #refreshing = null;
  #challenge = null; // the pending NEW_PASSWORD_REQUIRED challenge

  constructor(config) {
    super();
    this.#config = config;
    this.#cognito = cognitoClient(config.cognitoEndpoint);
    this.#setTokens(readStoredTokens());
  }

  get signedIn() {
    return this.#tokens !== null;
  }

  get userName() {
    return this.#claims["cognito:username"] ?? this.#claims.email ?? "";
  }

  get isAdmin() {
    return groupsOf(this.#claims).includes("admins");
  }

  /**
   * Signs in with SRP: resolves "signed-in", "new-password" when a new password is required, or
   * "mfa-code" when a code from the person's authenticator app is (SOFTWARE_TOKEN_MFA).
   */
  async signIn(username, password) {
    const smallAHex = randomSmallAHex();
    const started = await this.#cognito.initiateAuth({
      AuthFlow: "USER_SRP_AUTH",
      ClientId: this.#config.userPoolClientId,
      AuthParameters: { USERNAME: username, SRP_A: largeAHex(smallAHex) },
    });
    if (started.ChallengeName !== "PASSWORD_VERIFIER") return this.#finish(started, username);
    const challenge = started.ChallengeParameters;
    const timestamp = cognitoTimestamp(new Date());
    const { signatureB64 } = await passwordClaim({
      userPoolId: this.#config.userPoolId,
      userIdForSrp: challenge.USER_ID_FOR_SRP,
      password,
      smallAHex,
      saltHex: challenge.SALT,
      srpBHex: challenge.SRP_B,
      secretBlockB64: challenge.SECRET_BLOCK,
      timestamp,
    });
    // Cognito's internal user name: the challenge's USERNAME (as pycognito sends it), which is
    // USER_ID_FOR_SRP on Cognito itself; the local emulator only knows the former.
    const internalName = challenge.USERNAME ?? challenge.USER_ID_FOR_SRP;
    const answer = await this.#cognito.respondToAuthChallenge({
      ClientId: this.#config.userPoolClientId,
      ChallengeName: "PASSWORD_VERIFIER",
      ...(started.Session ? { Session: started.Session } : {}),
      ChallengeResponses: {
        USERNAME: internalName,
        PASSWORD_CLAIM_SECRET_BLOCK: challenge.SECRET_BLOCK,
        PASSWORD_CLAIM_SIGNATURE: signatureB64,
        TIMESTAMP: timestamp,
      },
    });
    return this.#finish(answer, internalName);
  }

  /** Answers SOFTWARE_TOKEN_MFA with the authenticator app's code; resolves like signIn. */
  async answerCode(code) {
    if (!this.#challenge) throw new CognitoError("NotAuthorizedException", SESSION_EXPIRED);
    const answer = await this.#cognito.respondToAuthChallenge({
      ClientId: this.#config.userPoolClientId,
      ChallengeName: "SOFTWARE_TOKEN_MFA",
      Session: this.#challenge.session,
      ChallengeResponses: { USERNAME: this.#challenge.username, SOFTWARE_TOKEN_MFA_CODE: code },
    });
    return this.#finish(answer, this.#challenge.username);
  }

  /** Answers NEW_PASSWORD_REQUIRED; resolves like signIn. */
  async setNewPassword(newPassword) {
    if (!this.#challenge) throw new CognitoError("NotAuthorizedException", SESSION_EXPIRED);
    const answer = await this.#cognito.respondToAuthChallenge({
      ClientId: this.#config.userPoolClientId,
      ChallengeName: "NEW_PASSWORD_REQUIRED",
      Session: this.#challenge.session,
      ChallengeResponses: { USERNAME: this.#challenge.username, NEW_PASSWORD: newPassword },
    });
    return this.#finish(answer, this.#challenge.username);
  }

  #finish(answer, username) {
    if (answer.AuthenticationResult) {
      this.#challenge = null;
      this.#store(answer.AuthenticationResult, null);
      this.#emit("signin");
      return "signed-in";
    }
    const steps = { NEW_PASSWORD_REQUIRED: "new-password", SOFTWARE_TOKEN_MFA: "mfa-code" };
    if (steps[answer.ChallengeName]) {
      const parameters = answer.ChallengeParameters ?? {};
      this.#challenge = {
        session: answer.Session,
        username: parameters.USERNAME ?? parameters.USER_ID_FOR_SRP ?? username,
      };
      return steps[answer.ChallengeName];
    }
    this.#challenge = null;
    if (answer.ChallengeName === "MFA_SETUP") {
      // Setting an app up needs its secret key shown (and scanned); the CLI does it.
      throw new CognitoError(
        "UnsupportedChallenge",
        "This fleet requires a code from an authenticator app at sign-in, and yours is not set " +
          "up yet. Set it up once with the command-line tool (dcvfleet login), then sign in here.",
      );
    }
    throw new CognitoError(
      "UnsupportedChallenge",
      `This account needs a sign-in step the portal does not support (${answer.ChallengeName}). ` +
        "Contact your administrator.",
    );
  }

  /** The ID token for an API call, refreshed first if it is about to expire. */
  async idToken() {
    if (!this.#tokens) throw new CognitoError("NotAuthorizedException", SESSION_EXPIRED);
    if (this.#msUntilExpiry() < FRESH_ENOUGH_MS) await this.refresh();
    return this.#tokens.idToken;
  }

  /** New tokens with REFRESH_TOKEN_AUTH; if Cognito refuses, the session is over ("expired"). */
  refresh() {
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = null;
    });
    return this.#refreshing;
  }

  async #refresh() {
    const tokens = this.#tokens;
    if (!tokens) throw new CognitoError("NotAuthorizedException", SESSION_EXPIRED);
    try {
      const answer = await this.#cognito.initiateAuth({
        AuthFlow: "REFRESH_TOKEN_AUTH",
        ClientId: this.#config.userPoolClientId,
        AuthParameters: { REFRESH_TOKEN: tokens.refreshToken },
      });
      if (this.#tokens === tokens) this.#store(answer.AuthenticationResult, tokens.refreshToken);
    } catch (error) {
      if (error.type !== "NetworkError" && this.#tokens === tokens) this.expire();
      throw error;
    }
  }

  /** Ends the session because it can no longer be refreshed. */
  expire() {
    if (!this.#tokens) return;
    this.#setTokens(null);
    this.#emit("expired");
  }

  /** Forgets the tokens at once and revokes them at Cognito (best effort). */
  signOut() {
    const accessToken = this.#tokens?.accessToken;
    this.#setTokens(null);
    this.#emit("signout");
    if (accessToken) this.#cognito.globalSignOut(accessToken).catch(() => {});
  }

  #store(result, previousRefreshToken) {
    this.#setTokens({
      idToken: result.IdToken,
      accessToken: result.AccessToken,
      refreshToken: result.RefreshToken ?? previousRefreshToken,
    });
  }

  #setTokens(tokens) {
    this.#tokens = tokens;
    this.#claims = tokens ? decodeJwt(tokens.idToken) : {};
    clearTimeout(this.#timer);
    if (tokens) {
      sessionStorage.setItem(STORAGE_KEY, JSON.stringify(tokens));
      this.#scheduleRefresh(this.#msUntilExpiry() - REFRESH_BEFORE_EXPIRY_MS);
    } else {
      sessionStorage.removeItem(STORAGE_KEY);
    }
  }

  #scheduleRefresh(delayMs) {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(
      () => {
        this.refresh().catch((error) => {
          // Offline for now: try again while the token still lasts (Cognito refusals expire the session).
          if (error.type === "NetworkError" && this.#tokens) {
            this.#scheduleRefresh(RETRY_REFRESH_MS);
          }
        });
      },
      Math.max(0, delayMs),
    );
  }

  #msUntilExpiry() {
    return typeof this.#claims.exp === "number" ? this.#claims.exp * 1000 - Date.now() : 0;
  }

  #emit(reason) {
    this.dispatchEvent(new CustomEvent("change", { detail: { reason } }));
  }
}
