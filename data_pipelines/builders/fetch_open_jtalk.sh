#!/usr/bin/env bash
# `make hts-voices`: Debian's Open JTalk (hts_engine API, MeCab dictionary) and its HTS voice,
# unpacked into a project-local directory with apt's own download (apt_private.sh: a
# private sources list with main + contrib, private lists and cache; the system's apt state
# stays as it is). The voice (hts-voice-nitech-jp-atr503-m001, CC-BY-3.0) is in contrib.
#
#   fetch_open_jtalk.sh DEST
# DEST gets usr/bin/open_jtalk, its library, the dictionary, the voice, the packages'
# copyright files and packages.txt (versions).
set -euo pipefail

dest=${1:?usage: fetch_open_jtalk.sh DEST}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
. "$(dirname "$0")/apt_private.sh"
apt_private_download "$dest/apt" "$dest/debs" "main contrib" \
  open-jtalk open-jtalk-mecab-naist-jdic hts-voice-nitech-jp-atr503-m001 libhtsengine1
apt_private_unpack "$dest/debs" "$dest"
echo "Open JTalk and its HTS voice in $dest (versions: $dest/packages.txt)"
