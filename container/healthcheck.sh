#!/usr/bin/env bash
# The image's HEALTHCHECK: healthy while DCV accepts connections on its port and lists the
# desktop's session (both exist only once the entrypoint has set the desktop up).
#
# DCVFLEET_DCV_COMMAND (dcv), DCVFLEET_DCV_SESSION_NAME (desktop), DCVFLEET_DCV_PORT (8443).
set -euo pipefail

dcv=${DCVFLEET_DCV_COMMAND:-dcv}
session=${DCVFLEET_DCV_SESSION_NAME:-desktop}
port=${DCVFLEET_DCV_PORT:-8443}

# A local connect is answered at once (accepted or refused), so it needs no timeout of its own.
if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "DCV is not listening on port $port" >&2
  exit 1
fi
if ! timeout 10 "$dcv" describe-session "$session" >/dev/null 2>&1; then
  echo "DCV does not know session '$session'" >&2
  exit 1
fi
