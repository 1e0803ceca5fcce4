# Sourced by fetch_mbrola.sh, fetch_recorded_voices.sh and fetch_open_jtalk.sh: apt's own
# download of Debian packages with a private sources list, package lists and cache, so the
# system's apt sources, lists and installed packages stay as they are and no root is needed
# on Debian.
#
#   apt_private_download APT_DIR DEBS_DIR "COMPONENTS" PACKAGE ...
# APT_DIR holds the private state; the .debs land in DEBS_DIR. DEBIAN_MIRROR overrides
# the mirror.
#   apt_private_unpack DEBS_DIR DEST
# unpacks every .deb of DEBS_DIR into DEST (`dpkg -x`), lists their versions in
# DEST/packages.txt and removes DEBS_DIR.

apt_private_download() {
  local apt_dir=$1 debs_dir=$2 components=$3
  shift 3
  . /etc/os-release
  if [ "${ID:-}" != debian ] || [ -z "${VERSION_CODENAME:-}" ]; then
    echo "$(basename "$0"): needs Debian (found ${PRETTY_NAME:-unknown}); the packages come" \
         "from Debian's archive ($components)" >&2
    return 1
  fi
  local mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" \
           "$apt_dir/sources.list.d" "$debs_dir"
  echo "deb [signed-by=$keyring] $mirror $VERSION_CODENAME $components" > "$apt_dir/sources.list"
  local opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list"
              -o "Dir::Etc::sourceparts=$apt_dir/sources.list.d"
              -o "Dir::State::Lists=$apt_dir/lists"
              -o "Dir::Cache=$apt_dir/cache"
              -o "APT::Sandbox::User=$(id -un)")
  apt-get -q "${opts[@]}" update
  (cd "$debs_dir" && apt-get -q "${opts[@]}" download "$@")
}

apt_private_unpack() {
  local debs_dir=$1 dest=$2 deb
  : > "$dest/packages.txt"
  for deb in "$debs_dir"/*.deb; do
    dpkg -x "$deb" "$dest"
    dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb" >> "$dest/packages.txt"
  done
  rm -rf "$debs_dir"
}
