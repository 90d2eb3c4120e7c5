#!/usr/bin/env bash
# Install or upgrade the DCV Fleet agent on a Linux desktop host (run as root):
#
#   install.sh <agent-archive.tar.gz> <event-bus-name> <region> [<settings-parameter>]
#
# Unpacks the archive's dcvfleet_agent/ package to /opt/dcvfleet/agent (swapped in whole),
# merges eventBusName and region (and settingsParameter, the name of the SSM parameter holding
# the fleet's idle policy, when given) into /etc/dcvfleet/agent.json (mode 0600; other keys are
# kept), installs the systemd unit that sits next to this script, enables it and (re)starts
# it. Running it again is how upgrades are done. Host bootstrap runs this script from the
# unpacked archive itself (linux/install.sh), next to linux/dcvfleet-agent.service.
#
# DCVFLEET_PYTHON  interpreter the unit runs (default /usr/bin/python3; 3.9 or newer)
# DCVFLEET_INSTALL_ROOT  prefix for every path written (default /; used by tests)
set -euo pipefail

usage() {
  echo "usage: $0 <agent-archive.tar.gz> <event-bus-name> <region> [<settings-parameter>]" >&2
  exit 64
}
die() {
  echo "install.sh: $*" >&2
  exit 1
}

[ "$#" -eq 3 ] || [ "$#" -eq 4 ] || usage
archive=$1
bus=$2
region=$3
settings=${4:-}
root=${DCVFLEET_INSTALL_ROOT:-/}
root=${root%/}
python=${DCVFLEET_PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
unit_name=dcvfleet-agent.service
agent_dir=$root/opt/dcvfleet/agent
config_dir=$root/etc/dcvfleet
unit_dir=$root/etc/systemd/system

[ -f "$archive" ] || die "archive not found: $archive"
[ -f "$here/$unit_name" ] || die "$unit_name not found next to this script"
[ -n "$bus" ] || die "event bus name is empty"
[[ $region =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || die "not an AWS region: $region"
if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
  die "must run as root"
fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null ||
  die "$python must be Python 3.9 or newer (set DCVFLEET_PYTHON)"

staging=""
tmp_config=""
cleanup() { rm -rf "$staging" "$tmp_config"; }
trap cleanup EXIT

# 1. Agent code: unpack the package beside the old copy, then swap directories.
mkdir -p "$(dirname "$agent_dir")"
staging=$(mktemp -d "$agent_dir.new.XXXXXX")
tar -xzf "$archive" -C "$staging" --no-same-owner --no-same-permissions dcvfleet_agent ||
  die "cannot unpack dcvfleet_agent/ from $archive"
[ -f "$staging/dcvfleet_agent/__init__.py" ] || die "archive does not contain dcvfleet_agent/"
chmod -R u=rwX,go=rX "$staging"
rm -rf "$agent_dir.old"
if [ -d "$agent_dir" ]; then
  mv "$agent_dir" "$agent_dir.old"
fi
mv "$staging" "$agent_dir"
staging=""
rm -rf "$agent_dir.old"

# 2. Configuration: keep existing keys, set the ones this script owns.
mkdir -p "$config_dir"
chmod 0700 "$config_dir"
tmp_config=$(mktemp "$config_dir/.agent.json.XXXXXX")
"$python" - "$config_dir/agent.json" "$tmp_config" "$bus" "$region" "$settings" <<'PY'
import json, os, sys

path, tmp, bus, region, settings = sys.argv[1:6]
data = {}
if os.path.exists(path):
    with open(path, encoding="utf-8-sig") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        sys.exit(f"{path} does not hold a JSON object")
data.update(eventBusName=bus, region=region)
if settings:
    data["settingsParameter"] = settings
with open(tmp, "w", encoding="utf-8") as handle:
    json.dump(data, handle, indent=2, sort_keys=True)
    handle.write("\n")
PY
chmod 0600 "$tmp_config"
mv -f "$tmp_config" "$config_dir/agent.json"
tmp_config=""

# 3. systemd unit, pointed at the chosen interpreter.
mkdir -p "$unit_dir"
sed "s|^ExecStart=/usr/bin/python3 |ExecStart=$python |" "$here/$unit_name" >"$unit_dir/$unit_name.tmp"
chmod 0644 "$unit_dir/$unit_name.tmp"
mv -f "$unit_dir/$unit_name.tmp" "$unit_dir/$unit_name"
systemctl daemon-reload
systemctl enable "$unit_name"
systemctl restart "$unit_name"
echo "dcvfleet-agent installed in $agent_dir and (re)started"
