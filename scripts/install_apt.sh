#!/usr/bin/env bash
# Install the Debian packages listed in $1 that are missing (idempotent; needs root or sudo).
set -euo pipefail
list=$(grep -v '^\s*#' "$1" | awk 'NF{print $1}')
missing=()
for pkg in $list; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
