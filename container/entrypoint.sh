#!/usr/bin/env bash
# The DCV Fleet desktop container's entrypoint: one AWS Batch job, one GPU desktop.
#
# Runs under tini (the image's ENTRYPOINT), as root, and in this order:
#   1. checks its environment;
#   2. checks the application (APP_COMMAND) and writes the DCV session's init script, then
#   3. reads the session secret and creates the desktop's OS user, setting its password
#      (both in dcvfleet_container_setup.py: the password only ever reaches chpasswd's stdin);
#   4. starts the D-Bus system bus, an Xorg on the NVIDIA GPU (the 3D X server of dcv-gl),
#      dcvserver (as the unprivileged `dcv` user), and creates the DCV virtual session
#      (default `desktop`, --gl on) owned by the user, whose init script starts the application
#      as it is (DCV-GL carries its OpenGL to the GPU); then waits, for at most
#      DCVFLEET_DCV_TIMEOUT_SECONDS, until `dcv list-sessions -j` lists it;
#   5. execs the DCV Fleet agent (python3 -m dcvfleet_agent), which reports Host Ready and
#      then watches the desktop for idleness. Being exec'd, the agent is the process tini
#      forwards SIGTERM to when Batch stops the job: it flushes its events and exits 0.
#   A SIGTERM or SIGINT before step 5 stops what was started and exits 143 or 130.
#
# Exit codes (the control plane maps the job's exit code to a message for the user; they are
# also in container/README.md):
#   64  configuration: a required variable is missing or invalid, or the image is incomplete
#   65  the session secret could not be read or is malformed
#   66  the OS user could not be created or its password set
#   67  the DCV server or the virtual session did not start
#   68  the application could not be launched (APP_COMMAND's program missing/not executable)
#   any other: the agent's own exit code (1: the host did not become ready; 0: stopped)
# Each failure prints one JSON line on stderr:
#   {"time":…,"level":"ERROR","logger":"dcvfleet_container","message":…,"reason":…,"exitCode":…}
#
# Required: DCVFLEET_SESSION_ID, DCVFLEET_SECRET_ARN, DCVFLEET_EVENT_BUS_NAME, and the region in
#   AWS_REGION or AWS_DEFAULT_REGION (or DCVFLEET_REGION).
# Optional: DCVFLEET_SETTINGS_PARAMETER (the fleet's idle policy, SSM), APP_COMMAND (the
#   application's command line, shell-quoted; the image sets it), DCVFLEET_DCV_SESSION_NAME
#   (desktop), DCVFLEET_DCV_TIMEOUT_SECONDS (120), DCVFLEET_SECRET_TIMEOUT_SECONDS (120: how long
#   to wait for read access to the secret), DCVFLEET_COMMAND_TIMEOUT_SECONDS (10: one dcv call),
#   DCVFLEET_GPU_X_SERVER (true; false runs without the 3D X server, OpenGL in software),
#   DCVFLEET_DCVSERVER_USER (dcv), DCVFLEET_POLL_SECONDS (0.5: how often DCV is asked),
#   DCVFLEET_ENDPOINT_URL (an AWS endpoint, for tests).
#   Every other DCVFLEET_* variable the agent knows (agent/dcvfleet_agent/config.py) reaches it.
# Programs and paths, for tests (production defaults in brackets): DCVFLEET_ROOT (prefix of
#   every path written or waited for []), DCVFLEET_PYTHON [python3], DCVFLEET_AGENT_PYTHON
#   [DCVFLEET_PYTHON], DCVFLEET_SETUP_HELPER [next to this script], DCVFLEET_AGENT_DIR
#   [/opt/dcvfleet/agent], DCVFLEET_APP_DIR [/opt/app], DCVFLEET_DCV_COMMAND [dcv], DCVFLEET_DCVSERVER_COMMAND
#   [dcvserver], DCVFLEET_XORG_COMMAND [Xorg], DCVFLEET_XORG_MODULE_PATH, DCVFLEET_XORG_VT [7],
#   DCVFLEET_NVIDIA_SMI_COMMAND [nvidia-smi], DCVFLEET_DBUS_DAEMON_COMMAND [dbus-daemon],
#   DCVFLEET_RUNUSER_COMMAND [runuser], DCVFLEET_OPENSSL_COMMAND [openssl], and the helper's
#   DCVFLEET_ID_COMMAND, DCVFLEET_USERADD_COMMAND, DCVFLEET_CHPASSWD_COMMAND.
set -euo pipefail

readonly EXIT_CONFIG=64 EXIT_SECRET=65 EXIT_USER=66 EXIT_DCV=67 EXIT_APP=68
readonly X_DISPLAY=0 # dcv-gl's 3D X server is display :0

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=${DCVFLEET_ROOT:-}
root=${root%/}
python=${DCVFLEET_PYTHON:-python3}
agent_python=${DCVFLEET_AGENT_PYTHON:-$python}
helper=${DCVFLEET_SETUP_HELPER:-$here/dcvfleet_container_setup.py}
agent_dir=${DCVFLEET_AGENT_DIR:-$root/opt/dcvfleet/agent}
app_dir=${DCVFLEET_APP_DIR:-$root/opt/app}
dcv=${DCVFLEET_DCV_COMMAND:-dcv}
dcvserver=${DCVFLEET_DCVSERVER_COMMAND:-dcvserver}
xorg=${DCVFLEET_XORG_COMMAND:-Xorg}
xorg_module_path=${DCVFLEET_XORG_MODULE_PATH:-/usr/lib/x86_64-linux-gnu/nvidia/xorg,/usr/lib/xorg/modules,/usr/lib64/xorg/modules}
xorg_vt=${DCVFLEET_XORG_VT:-7}
nvidia_smi=${DCVFLEET_NVIDIA_SMI_COMMAND:-nvidia-smi}
dbus_daemon=${DCVFLEET_DBUS_DAEMON_COMMAND:-dbus-daemon}
runuser=${DCVFLEET_RUNUSER_COMMAND:-runuser}
openssl=${DCVFLEET_OPENSSL_COMMAND:-openssl}
dcvserver_user=${DCVFLEET_DCVSERVER_USER-dcv}
run_dir=$root/run/dcvfleet
init_script=$run_dir/session-init.sh
x_socket_dir=$root/tmp/.X11-unix
dcv_conf_dir=$root/etc/dcv
dbus_dir=$root/run/dbus

started_pids=()
child=""

# --- reporting ------------------------------------------------------------------------------

# A JSON string literal of $1 (control characters other than \n \r \t are dropped).
json_str() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  s=${s//[[:cntrl:]]/}
  printf '"%s"' "$s"
}

# log LEVEL MESSAGE [KEY VALUE]... : one JSON line on stderr, the agent's format.
log() {
  local level=$1 message=$2 line now
  shift 2
  now=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
  line="{\"time\":$(json_str "$now"),\"level\":$(json_str "$level")"
  line+=",\"logger\":\"dcvfleet_container\",\"message\":$(json_str "$message")"
  if [ -n "${DCVFLEET_SESSION_ID:-}" ]; then
    line+=",\"sessionId\":$(json_str "$DCVFLEET_SESSION_ID")"
  fi
  while [ "$#" -ge 2 ]; do
    line+=",$(json_str "$1"):$(json_str "$2")"
    shift 2
  done
  printf '%s}\n' "$line" >&2
}

stop_started() {
  local pid
  if [ -n "$child" ]; then
    kill "$child" 2>/dev/null || true
  fi
  for pid in "${started_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
}

# fail CODE MESSAGE REASON: report the failure, stop what was started, exit CODE.
fail() {
  local code=$1 message=$2 reason=$3 now line
  now=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
  line="{\"time\":$(json_str "$now"),\"level\":\"ERROR\",\"logger\":\"dcvfleet_container\""
  line+=",\"message\":$(json_str "$message"),\"reason\":$(json_str "$reason"),\"exitCode\":$code"
  if [ -n "${DCVFLEET_SESSION_ID:-}" ]; then
    line+=",\"sessionId\":$(json_str "$DCVFLEET_SESSION_ID")"
  fi
  printf '%s}\n' "$line" >&2
  stop_started
  exit "$code"
}

on_signal() {
  log INFO "stopped before the desktop was ready" signal "$1"
  stop_started
  exit "$2"
}
trap 'on_signal SIGTERM 143' TERM
trap 'on_signal SIGINT 130' INT

# The last lines of a file, on one line (for a failure's reason).
tail_of() {
  if [ -s "$1" ]; then
    tail -n "${2:-5}" "$1" | tr '\n' ' ' | tr -s ' ' | cut -c1-600
  fi
}

# run_waited CMD...: run CMD in the background and wait for it, so that a signal is handled at
# once rather than after a long command (the secret's wait, a slow dcv call); returns its status.
run_waited() {
  local status=0
  "$@" &
  child=$!
  wait "$child" || status=$?
  child=""
  return "$status"
}

# --- 1. configuration -----------------------------------------------------------------------

problems=()
need() {
  if [ -z "${!1:-}" ]; then
    problems+=("$1 is not set")
  fi
}
is_true_false() { [ "$1" = true ] || [ "$1" = false ]; }
is_positive() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]] && [[ ! $1 =~ ^0+(\.0+)?$ ]]; }

need DCVFLEET_SESSION_ID
need DCVFLEET_SECRET_ARN
need DCVFLEET_EVENT_BUS_NAME
region=${DCVFLEET_REGION:-${AWS_REGION:-${AWS_DEFAULT_REGION:-}}}
session_id=${DCVFLEET_SESSION_ID:-}
secret_arn=${DCVFLEET_SECRET_ARN:-}
session_name=${DCVFLEET_DCV_SESSION_NAME:-desktop}
dcv_timeout=${DCVFLEET_DCV_TIMEOUT_SECONDS:-120}
secret_timeout=${DCVFLEET_SECRET_TIMEOUT_SECONDS:-120}
command_timeout=${DCVFLEET_COMMAND_TIMEOUT_SECONDS:-10}
gpu_x_server=${DCVFLEET_GPU_X_SERVER:-true}
poll_seconds=${DCVFLEET_POLL_SECONDS:-0.5}
uuid_re='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'

if [ -z "$region" ]; then
  problems+=("the region is not set (AWS_REGION or AWS_DEFAULT_REGION)")
elif [[ ! $region =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]]; then
  problems+=("'$region' is not an AWS region")
fi
if [ -n "$session_id" ] && [[ ! $session_id =~ $uuid_re ]]; then
  problems+=("DCVFLEET_SESSION_ID '$session_id' is not a session id (a lowercase UUID)")
fi
if [ -n "$secret_arn" ] && [[ ! $secret_arn =~ ^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$ ]]; then
  problems+=("DCVFLEET_SECRET_ARN '$secret_arn' is not a Secrets Manager secret ARN")
fi
if [[ ! $session_name =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]]; then
  problems+=("DCVFLEET_DCV_SESSION_NAME '$session_name' is not a DCV session id")
fi
if [[ ! $dcv_timeout =~ ^[1-9][0-9]*$ ]]; then
  problems+=("DCVFLEET_DCV_TIMEOUT_SECONDS must be a whole number of seconds > 0, got '$dcv_timeout'")
fi
is_positive "$secret_timeout" ||
  problems+=("DCVFLEET_SECRET_TIMEOUT_SECONDS must be a number > 0, got '$secret_timeout'")
is_positive "$command_timeout" ||
  problems+=("DCVFLEET_COMMAND_TIMEOUT_SECONDS must be a number > 0, got '$command_timeout'")
is_positive "$poll_seconds" ||
  problems+=("DCVFLEET_POLL_SECONDS must be a number > 0, got '$poll_seconds'")
is_true_false "$gpu_x_server" ||
  problems+=("DCVFLEET_GPU_X_SERVER must be true or false, got '$gpu_x_server'")
if [ -n "${DCVFLEET_ENDPOINT_URL:-}" ] && [[ ! $DCVFLEET_ENDPOINT_URL =~ ^https?:// ]]; then
  problems+=("DCVFLEET_ENDPOINT_URL must be an http(s) URL")
fi
# The image itself: what this script hands work to.
[ -f "$agent_dir/dcvfleet_agent/__init__.py" ] ||
  problems+=("the agent is not installed in $agent_dir (dcvfleet_agent/)")
[ -f "$helper" ] || problems+=("the setup helper $helper is missing")
command -v "$python" >/dev/null 2>&1 || problems+=("the Python interpreter $python is missing")
if [ "${#problems[@]}" -gt 0 ]; then
  reason=$(printf '%s; ' "${problems[@]}")
  fail "$EXIT_CONFIG" "invalid configuration" "${reason%; }"
fi

export DCVFLEET_REGION=$region
export DCVFLEET_SECRET_TIMEOUT_SECONDS=$secret_timeout
export PYTHONPATH="$agent_dir${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
log INFO "desktop container starting" dcvSessionName "$session_name" region "$region"

# --- 2. the application, 3. the desktop's OS user -------------------------------------------
# One helper process: it checks APP_COMMAND's program and writes the session's init script,
# then reads the session secret, creates the user and sets its password (on chpasswd's stdin:
# the password never reaches this script), and prints the user's name. It reports its own
# failures (64, 65, 66, 68).

mkdir -p "$run_dir"
chmod 0755 "$run_dir"
export APP_COMMAND=${APP_COMMAND-/opt/app/start}
status=0
run_waited "$python" "$helper" --init-script "$init_script" --app-dir "$app_dir" \
  >"$run_dir/user" || status=$?
case $status in
  0) ;;
  "$EXIT_CONFIG" | "$EXIT_SECRET" | "$EXIT_USER" | "$EXIT_APP")
    stop_started
    exit "$status"
    ;;
  *) fail "$EXIT_USER" "the OS user could not be created or its password set" "the setup helper exited with $status" ;;
esac
user=$(head -n 1 "$run_dir/user")
rm -f "$run_dir/user"
if [[ ! $user =~ ^[A-Za-z_][A-Za-z0-9_.-]{0,31}$ ]]; then
  fail "$EXIT_USER" "the OS user could not be created or its password set" "the setup helper printed no user name"
fi

# --- 4. DCV ---------------------------------------------------------------------------------

# Microseconds since the epoch, without a fork (bash 5).
now_us() { printf '%s' "${EPOCHREALTIME/[.,]/}"; }
deadline=$(($(now_us) + dcv_timeout * 1000000))
past_deadline() { [ "$(now_us)" -ge "$deadline" ]; }
dcv_failed() { fail "$EXIT_DCV" "the DCV server or the virtual session did not start" "$1"; }
# dcv_call ARGS...: one bounded dcv call; its stdout and stderr in $dcv_out, status returned.
dcv_out=""
dcv_call() {
  local status=0
  dcv_out=$(timeout --kill-after=2 "$command_timeout" "$dcv" "$@" 2>&1) || status=$?
  return "$status"
}
one_line() { tr '\n' ' ' <<<"$1" | tr -s ' ' | cut -c1-400; }

# A fresh TLS key for this desktop, unless one was provided: the image ships none, so no two
# desktops share a private key.
if [ ! -s "$dcv_conf_dir/dcv.key" ] || [ ! -s "$dcv_conf_dir/dcv.pem" ]; then
  mkdir -p "$dcv_conf_dir"
  (umask 077 && timeout 60 "$openssl" req -x509 -newkey rsa:3072 -sha256 -days 397 -nodes \
    -subj "/CN=dcvfleet-desktop" -keyout "$dcv_conf_dir/dcv.key" \
    -out "$dcv_conf_dir/dcv.pem" >"$run_dir/openssl.out" 2>&1) ||
    dcv_failed "cannot make the TLS certificate: $(tail_of "$run_dir/openssl.out")"
  if [ -n "$dcvserver_user" ]; then
    chown "$dcvserver_user:" "$dcv_conf_dir/dcv.key" "$dcv_conf_dir/dcv.pem" ||
      dcv_failed "cannot give the TLS key to $dcvserver_user"
  fi
fi

# The D-Bus system bus: the dcv CLI finds dcvserver on it (containers have no systemd).
if [ ! -e "$dbus_dir/system_bus_socket" ]; then
  mkdir -p "$dbus_dir"
  rm -f "$dbus_dir/pid"
  timeout 30 "$dbus_daemon" --system --fork --nopidfile >"$run_dir/dbus.out" 2>&1 ||
    dcv_failed "cannot start the D-Bus system bus: $(tail_of "$run_dir/dbus.out")"
fi

# The 3D X server: an Xorg on the NVIDIA GPU that dcv-gl renders OpenGL on. The NVIDIA
# container runtime injects the driver's Xorg module (NVIDIA_DRIVER_CAPABILITIES includes
# "display"); the GPU is found by its PCI bus id, as nvidia-smi reports it.
if [ "$gpu_x_server" = true ]; then
  gpus=$(timeout 30 "$nvidia_smi" --query-gpu=pci.bus_id --format=csv,noheader 2>"$run_dir/nvidia-smi.out") ||
    dcv_failed "no NVIDIA GPU is visible (nvidia-smi failed: $(tail_of "$run_dir/nvidia-smi.out")); does the job ask for a GPU?"
  bus_id=${gpus%%$'\n'*} # the first GPU the job was given
  bus_id=${bus_id//[[:space:]]/}
  # nvidia-smi: hex DOMAIN:BUS:DEVICE.FUNCTION (00000000:00:1E.0); Xorg: decimal PCI:BUS@DOMAIN:DEVICE:FUNCTION
  if [[ ! $bus_id =~ ^([0-9A-Fa-f]+):([0-9A-Fa-f]+):([0-9A-Fa-f]+)\.([0-7])$ ]]; then
    dcv_failed "nvidia-smi reported no usable PCI bus id ('$bus_id')"
  fi
  domain=$((16#${BASH_REMATCH[1]}))
  xorg_bus="PCI:$((16#${BASH_REMATCH[2]}))"
  if [ "$domain" -ne 0 ]; then
    xorg_bus+="@$domain"
  fi
  xorg_bus+=":$((16#${BASH_REMATCH[3]})):${BASH_REMATCH[4]}"
  cat >"$run_dir/xorg.conf" <<EOF
# The 3D X server of the DCV Fleet desktop container (written at start): headless, on the GPU.
Section "ServerFlags"
    Option "AutoAddDevices" "false"
    Option "AutoAddGPU" "false"
EndSection
Section "Device"
    Identifier "gpu"
    Driver "nvidia"
    BusID "$xorg_bus"
    Option "AllowEmptyInitialConfiguration" "true"
    Option "UseDisplayDevice" "None"
EndSection
Section "Screen"
    Identifier "screen"
    Device "gpu"
    DefaultDepth 24
    Option "AllowEmptyInitialConfiguration" "true"
    SubSection "Display"
        Depth 24
        Virtual 1920 1080
    EndSubSection
EndSection
EOF
  # The console: Xorg with the NVIDIA driver opens a virtual console (/dev/ttyN) at start,
  # even with no display attached, and a container has none of the host's. The job definition
  # maps exactly one, /dev/tty$xorg_vt (LinuxParameters.Devices, read and write, no mknod), and
  # -sharevts makes Xorg only read that console's state and close it: no VT switch, no keyboard
  # or graphics mode change on the host's console, and several desktops on one instance share
  # it. -novtswitch: none at exit either. Without the device Xorg would fail with "Cannot open
  # virtual console"; say what is missing instead.
  if [ ! -e "$root/dev/tty$xorg_vt" ]; then
    dcv_failed "the X server needs the virtual console /dev/tty$xorg_vt, which the job definition maps (LinuxParameters.Devices); it is not in the container"
  fi
  mkdir -p "$x_socket_dir"
  chmod 1777 "$x_socket_dir"
  rm -f "$root/tmp/.X$X_DISPLAY-lock" "$x_socket_dir/X$X_DISPLAY"
  # Only local clients through the container's own socket directory: no TCP, and no abstract
  # socket, which host networking would share with the host. -ac then lets the desktop user's
  # application (dcv-gl) use the GPU; nothing outside the container can reach this server.
  "$xorg" ":$X_DISPLAY" "vt$xorg_vt" -config "$run_dir/xorg.conf" -modulepath "$xorg_module_path" \
    -logfile "$run_dir/xorg.log" -noreset -novtswitch -sharevts -nolisten tcp -nolisten local -ac \
    </dev/null >"$run_dir/xorg.out" 2>&1 &
  xorg_pid=$!
  started_pids+=("$xorg_pid")
  until [ -e "$x_socket_dir/X$X_DISPLAY" ]; do
    if ! kill -0 "$xorg_pid" 2>/dev/null; then
      status=0
      wait "$xorg_pid" || status=$?
      dcv_failed "the X server on the GPU ($xorg_bus) exited with $status: $(tail_of "$run_dir/xorg.out")"
    fi
    if past_deadline; then
      dcv_failed "the X server on the GPU ($xorg_bus) did not start within ${dcv_timeout}s: $(tail_of "$run_dir/xorg.out")"
    fi
    sleep "$poll_seconds"
  done
  log INFO "3D X server started" display ":$X_DISPLAY" busId "$xorg_bus"
fi

# dcvserver, as the `dcv` user the packaged service uses (--service: it registers on the bus).
server=("$dcvserver" -d --service)
if [ -n "$dcvserver_user" ]; then
  server=("$runuser" -u "$dcvserver_user" -- "${server[@]}")
fi
"${server[@]}" </dev/null >"$run_dir/dcvserver.out" 2>&1 &
dcvserver_pid=$!
started_pids+=("$dcvserver_pid")
server_gone() {
  local status=0
  if kill -0 "$dcvserver_pid" 2>/dev/null; then
    return 1
  fi
  wait "$dcvserver_pid" || status=$?
  dcv_failed "dcvserver exited with $status: $(tail_of "$run_dir/dcvserver.out")"
}

# Wait until the server answers, then create the session, then until it is listed.
last_error="the DCV server did not answer"
until dcv_call list-sessions -j; do
  last_error=$(one_line "$dcv_out")
  server_gone || true
  if past_deadline; then
    dcv_failed "the DCV server did not answer within ${dcv_timeout}s (last error: ${last_error:-none})"
  fi
  sleep "$poll_seconds"
done
log INFO "DCV server answering"

gl=off
if [ "$gpu_x_server" = true ]; then
  gl=on
fi
session_re="\"id\"[[:space:]]*:[[:space:]]*\"$session_name\""
created=false
listed=false
until [ "$listed" = true ]; do
  if [ "$created" = false ]; then
    if dcv_call create-session --type virtual --owner "$user" --user "$user" \
      --init "$init_script" --gl "$gl" "$session_name"; then
      created=true
      log INFO "DCV session created" dcvSessionId "$session_name" owner "$user" gl "$gl"
    else
      last_error="create-session: $(one_line "$dcv_out")"
    fi
  fi
  if [ "$created" = true ]; then
    if dcv_call list-sessions -j; then
      if [[ $dcv_out =~ $session_re ]]; then
        listed=true
        continue
      fi
      last_error="list-sessions does not list '$session_name'"
    else
      last_error="list-sessions: $(one_line "$dcv_out")"
    fi
  fi
  server_gone || true
  if past_deadline; then
    dcv_failed "DCV session '$session_name' was not listed within ${dcv_timeout}s (last error: $last_error)"
  fi
  sleep "$poll_seconds"
done
log INFO "DCV session listed" dcvSessionId "$session_name"

# --- 5. the agent ---------------------------------------------------------------------------

export DCVFLEET_PLATFORM=container
export DCVFLEET_MANAGE_USER=false # done above: the agent reads no secret and runs no useradd
export DCVFLEET_USER_NAME=$user
export DCVFLEET_DCV_SESSION_NAME=$session_name
export DCVFLEET_DCV_COMMAND=$dcv
export DCVFLEET_NVIDIA_SMI_COMMAND=$nvidia_smi
export DCVFLEET_SESSION_ID DCVFLEET_EVENT_BUS_NAME
if [ -n "${DCVFLEET_SETTINGS_PARAMETER:-}" ]; then
  export DCVFLEET_SETTINGS_PARAMETER
else
  unset DCVFLEET_SETTINGS_PARAMETER
fi
trap - TERM INT
log INFO "starting the agent"
cd /
exec "$agent_python" -m dcvfleet_agent
