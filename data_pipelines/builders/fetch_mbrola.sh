#!/usr/bin/env bash
# `make voices`: Debian's MBROLA synthesiser and diphone voices, unpacked into a project-local
# directory with apt's own download (apt_private.sh: a private sources list with contrib +
# non-free, private lists and cache; the system's apt state stays as it is).
#
#   fetch_mbrola.sh DEST [DATABASE ...]
# DATABASE defaults to the MBROLA voices espeak-ng speaks English with (voices/mb/mb-*
# whose language is en); each is Debian package mbrola-DATABASE. DEST gets usr/bin/mbrola,
# usr/share/mbrola/<db>/<db>, the packages' copyright files, and packages.txt (versions).
set -euo pipefail

dest=${1:?usage: fetch_mbrola.sh DEST [DATABASE ...]}
shift
databases=("$@")
if [ ${#databases[@]} -eq 0 ]; then
  databases=(us1 us2 us3 en1 af1 de1 de2 de3 de4 de5 de6 fr1 fr4 gr2 hu1 nl2 pl1 ro1 sw1 sw2)
fi
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
. "$(dirname "$0")/apt_private.sh"
apt_private_download "$dest/apt" "$dest/debs" "contrib non-free" \
  mbrola "${databases[@]/#/mbrola-}"
apt_private_unpack "$dest/debs" "$dest"
echo "MBROLA and ${#databases[@]} voices in $dest (versions: $dest/packages.txt)"
