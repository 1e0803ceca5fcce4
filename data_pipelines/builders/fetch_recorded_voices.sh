#!/usr/bin/env bash
# `make recorded-voices`: Debian packages of recorded human speech (telephone prompts, game
# voice packs, spoken words), apt-downloaded (apt_private.sh: private sources list, lists
# and cache; the system's apt state stays as it is) and unpacked one package per folder:
#
#   fetch_recorded_voices.sh DEST PACKAGE ...
# DEST/<package>/ holds what `dpkg -x` gives (audio, usr/share/doc/<package>/copyright),
# DEST/packages.txt the package versions, DEST/.apt the private apt state. The packages
# the recorded_voices builder reads: its ALLOWED_PACKAGES (`make recorded-voices` passes them).
set -euo pipefail

dest=${1:?usage: fetch_recorded_voices.sh DEST PACKAGE ...}
shift
if [ $# -eq 0 ]; then
  echo "fetch_recorded_voices.sh: no PACKAGE given (the builder's list:" \
       "data_pipelines.builders.recorded_voices.ALLOWED_PACKAGES; make recorded-voices)" >&2
  exit 2
fi
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
. "$(dirname "$0")/apt_private.sh"
rm -rf "$dest/.debs"
apt_private_download "$dest/.apt" "$dest/.debs" main "$@"
: > "$dest/packages.txt.partial"
for deb in "$dest"/.debs/*.deb; do
  package=$(dpkg-deb -W --showformat='${Package}' "$deb")
  rm -rf "$dest/$package"
  dpkg -x "$deb" "$dest/$package"
  dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb" >> "$dest/packages.txt.partial"
done
mv "$dest/packages.txt.partial" "$dest/packages.txt"
rm -rf "$dest/.debs"
echo "$# packages of recorded voices in $dest (versions: $dest/packages.txt; licences:" \
     "$dest/<package>/usr/share/doc/<package>/copyright)"
