// Amazon Cognito user pools' JSON API, called directly from the browser (unsigned calls).

export class CognitoError extends Error {
  /** type: Cognito's exception name (NotAuthorizedException, ...) or "NetworkError". */
  constructor(type, message) {
    super(message);
    this.name = "CognitoError";
    this.type = type;
  }
}

export function cognitoClient(endpoint) {
  async function call(action, body) {
    let response;
    try {
      response = await fetch(endpoint, {
        method: "POST",
        headers: {
          "Content-Type": "application/x-amz-json-1.1",
          "X-Amz-Target": `AWSCognitoIdentityProviderService.${action}`,
        },
        body: JSON.stringify(body),
      });
    } catch {
      throw new CognitoError(
        "NetworkError",
        "Cannot reach the sign-in service. Check your connection and try again.",
      );
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      // "__type" is "NotAuthorizedException" or, from some endpoints, "<namespace>#NotAuthorizedException".
      const type = String(data.__type ?? response.headers.get("x-amzn-ErrorType") ?? "UnknownError")
        .split("#")
        .pop()
        .split(":")[0];
      throw new CognitoError(
        type,
        data.message ?? data.Message ?? `Sign-in failed (HTTP ${response.status}).`,
      );
    }
    return data;
  }

  return {
    initiateAuth: (body) => call("InitiateAuth", body),
    respondToAuthChallenge: (body) => call("RespondToAuthChallenge", body),
    globalSignOut: (accessToken) => call("GlobalSignOut", { AccessToken: accessToken }),
  };
}
