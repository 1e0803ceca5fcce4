#!/usr/bin/env bash
# `make voices`: Debian's MBROLA synthesiser and diphone voices, unpacked into a project-local
# directory with apt's own download. A private sources list (contrib + non-free), private
# package lists and cache: the system's apt sources, lists and installed packages stay as
# they are, and no root is needed on Debian.
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
. /etc/os-release
if [ "${ID:-}" != debian ] || [ -z "${VERSION_CODENAME:-}" ]; then
  echo "fetch_mbrola.sh: needs Debian (found ${PRETTY_NAME:-unknown}); MBROLA comes from" \
       "Debian's contrib/non-free archive" >&2
  exit 1
fi
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
apt_dir="$dest/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/sources.list.d" \
         "$dest/debs"
echo "deb [signed-by=$keyring] $mirror $VERSION_CODENAME contrib non-free" > "$apt_dir/sources.list"
opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list"
      -o "Dir::Etc::sourceparts=$apt_dir/sources.list.d"
      -o "Dir::State::Lists=$apt_dir/lists"
      -o "Dir::Cache=$apt_dir/cache"
      -o "APT::Sandbox::User=$(id -un)")
apt-get -q "${opts[@]}" update
packages=(mbrola "${databases[@]/#/mbrola-}")
(cd "$dest/debs" && apt-get -q "${opts[@]}" download "${packages[@]}")
: > "$dest/packages.txt"
for deb in "$dest"/debs/*.deb; do
  dpkg -x "$deb" "$dest"
  dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb" >> "$dest/packages.txt"
done
rm -rf "$dest/debs"
echo "MBROLA and ${#databases[@]} voices in $dest (versions: $dest/packages.txt)"
