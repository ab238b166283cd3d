#!/usr/bin/env bash
# Builds the Debian package `matchmaker` with cargo deb and checks it as an installer would
# see it, without installing it: unpacks it with dpkg-deb -x into a scratch directory, runs
# both binaries from there (--version equals the package version, `matchmakerd config` reads
# the packaged mode files through --config-dir and MM_CONFIG_DIR, an invalid configuration
# exits 2, the documented check command loads secrets.env, the documented console command
# needs no secret), and checks the conffiles, the systemd unit, the completions and the man
# pages.
#
# Usage: scripts/check-package.sh     (the .deb is left in target/debian/)
# Installs cargo-deb (cargo install) and dpkg-dev (apt-get, as root) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

fail() { echo "check-package: FAIL: $*" >&2; exit 1; }

if ! cargo deb --version >/dev/null 2>&1; then
  echo "check-package: installing cargo-deb" >&2
  cargo install cargo-deb --locked
fi
if ! command -v dpkg-shlibdeps >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    echo "check-package: installing dpkg-dev (dpkg-shlibdeps) with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null
  else
    fail "dpkg-shlibdeps is missing; install it with: apt-get install dpkg-dev"
  fi
fi

echo "check-package: release build" >&2
cargo build --release --locked -p matchmakerd -p mm-console -p mm-manpages
release="$root/target/release"

# What the package's assets expect beside the binaries (daemon/Cargo.toml).
rm -rf "$release/man" "$release/completions"
"$release/mm-manpages" "$release/man" >/dev/null
mkdir -p "$release/completions"
for program in matchmakerd mm-console; do
  "$release/$program" completions bash >"$release/completions/$program.bash"
  "$release/$program" completions zsh >"$release/completions/_$program"
  "$release/$program" completions fish >"$release/completions/$program.fish"
done

rm -rf target/debian
cargo deb -p matchmakerd --no-build --locked --output target/debian/ >/dev/null
deb=$(ls target/debian/matchmaker_*.deb)
[ "$(echo "$deb" | wc -l)" -eq 1 ] || fail "expected one .deb in target/debian, found: $deb"
echo "check-package: built $deb" >&2

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
dpkg-deb -x "$deb" "$scratch/root"
dpkg-deb -e "$deb" "$scratch/control"
pkg_version=$(dpkg-deb -f "$deb" Version)
version=${pkg_version%-*}   # without the Debian revision
bin="$scratch/root/usr/bin"
etc="$scratch/root/etc/matchmaker"

# Both binaries, and --version equals the package's version.
for program in matchmakerd mm-console; do
  [ -x "$bin/$program" ] || fail "$program is not in /usr/bin"
  shown=$("$bin/$program" --version)
  [ "$shown" = "$program $version" ] || fail "$program --version says '$shown', the package is $pkg_version"
done

# The mode files are in /etc/matchmaker, marked as conffiles, and honoured there.
for file in development.toml test.toml production.toml matchmakerd.toml; do
  [ -f "$etc/$file" ] || fail "/etc/matchmaker/$file is missing"
  grep -qx "/etc/matchmaker/$file" "$scratch/control/conffiles" || fail "/etc/matchmaker/$file is not a conffile"
done
config=$(env -u MM_CONFIG_DIR "$bin/matchmakerd" -m development --config-dir "$etc" config)
grep -q "^url = \"redis://127.0.0.1:6390/0\"  # file $etc/development.toml$" <<<"$config" \
  || fail "matchmakerd config did not read development.toml from --config-dir: $config"
# The service's command line, with MM_CONFIG_DIR instead of the flag and a secret from the
# environment, as secrets.env gives it.
config=$(MM_CONFIG_DIR="$etc" MM_AUTH__JWT_SECRET=a-secret-for-the-package-check-0123456789 \
  "$bin/matchmakerd" --mode production --config "$etc/matchmakerd.toml" config)
grep -q "^mode = \"jwt\"  # file $etc/production.toml$" <<<"$config" \
  || fail "matchmakerd config did not read production.toml from MM_CONFIG_DIR: $config"
grep -q '^jwt_secret = "\[redacted\]"  # environment variable MM_AUTH__JWT_SECRET$' <<<"$config" \
  || fail "the JWT secret is not shown redacted: $config"
! grep -q "a-secret-for-the-package-check" <<<"$config" || fail "matchmakerd config printed the secret"
# Production without a secret is invalid: exit 2, naming the key.
set +e
errors=$(env -u MM_AUTH__JWT_SECRET MM_CONFIG_DIR="$etc" "$bin/matchmakerd" --mode production config 2>&1 >/dev/null)
status=$?
set -e
[ "$status" -eq 2 ] || fail "an invalid configuration exited $status, not 2"
grep -q "auth.jwt_secret" <<<"$errors" || fail "the configuration error does not name auth.jwt_secret: $errors"

# The documented "check your setup" command (the unit's comment and matchmakerd.toml carry the
# same line), run as written against the unpacked tree: it must load secrets.env itself.
check_line() { sed -n "s/^#  *\(sudo sh -c 'set -a; \. \/etc\/matchmaker\/secrets\.env; .*\)$/\1/p" "$1"; }
unit="$scratch/root/lib/systemd/system/matchmakerd.service"
documented=$(check_line "$unit")
[ -n "$documented" ] || fail "the unit's comment has no check command loading secrets.env"
[ "$documented" = "$(check_line "$etc/matchmakerd.toml")" ] \
  || fail "the unit and /etc/matchmaker/matchmakerd.toml document different check commands"
printf 'MM_AUTH__JWT_SECRET=a-secret-from-secrets-env-0123456789abcdef\n' >"$etc/secrets.env"
runnable=${documented#sudo }
runnable=${runnable//\/etc\/matchmaker/$etc}
runnable=${runnable//exec matchmakerd /exec $bin/matchmakerd }
set +e
config=$(env -u MM_AUTH__JWT_SECRET -u MM_CONFIG_DIR sh -c "$runnable" 2>&1)
status=$?
set -e
[ "$status" -eq 0 ] || fail "the documented check command exited $status: $documented: $config"
grep -q '^jwt_secret = "\[redacted\]"  # environment variable MM_AUTH__JWT_SECRET$' <<<"$config" \
  || fail "the documented check command did not load secrets.env: $config"
! grep -q "a-secret-from-secrets-env" <<<"$config" || fail "the check command printed the secret"
rm "$etc/secrets.env"

# The console as README "Installing" runs it on a packaged host: no JWT secret, the host
# file; with a Redis nobody answers on, --list fails on Redis (1), not on validation (2).
documented=$(grep -o '`mm-console -m production --config-dir /etc/matchmaker -c /etc/matchmaker/matchmakerd.toml`' \
  "$scratch/root/usr/share/doc/matchmaker/README.md" | head -n 1 | tr -d '`')
[ -n "$documented" ] || fail "README \"Installing\" has no packaged console command"
runnable=${documented//\/etc\/matchmaker/$etc}
runnable=${runnable/#mm-console /$bin/mm-console }
set +e
errors=$(env -u MM_AUTH__JWT_SECRET -u MM_CONFIG_DIR MM_REDIS__URL=redis://127.0.0.1:1/0 \
  HOME="$scratch" XDG_STATE_HOME="$scratch/state" $runnable --list lobby 2>&1 >/dev/null)
status=$?
set -e
[ "$status" -eq 1 ] || fail "the packaged console command exited $status, not 1 (Redis down): $errors"
grep -q "redis://127.0.0.1:1/0" <<<"$errors" || fail "the console's Redis error does not name the URL: $errors"

# The systemd unit runs the packaged binary on the packaged config directory.
[ -f "$unit" ] || fail "the systemd unit is missing"
grep -q '^ExecStart=/usr/bin/matchmakerd .*--config-dir /etc/matchmaker' "$unit" \
  || fail "the unit does not run /usr/bin/matchmakerd with --config-dir /etc/matchmaker"
! grep -q "example.invalid" "$unit" || fail "the unit still carries a placeholder URL"
grep -q "^adduser --system\|adduser --system" "$scratch/control/postinst" || fail "postinst creates no user"
[ -f "$scratch/root/usr/share/doc/matchmaker/copyright" ] || fail "no copyright file"
grep -q "Apache License" "$scratch/root/usr/share/doc/matchmaker/copyright" || fail "the copyright file is not the Apache-2.0 text"

# Completions, for each program and shell.
share="$scratch/root/usr/share"
for program in matchmakerd mm-console; do
  for file in "bash-completion/completions/$program" "zsh/vendor-completions/_$program" \
    "fish/vendor_completions.d/$program.fish"; do
    [ -s "$share/$file" ] || fail "completion /usr/share/$file is missing or empty"
    grep -q "completions" "$share/$file" || fail "/usr/share/$file does not complete the completions subcommand"
  done
  bash -n "$share/bash-completion/completions/$program" || fail "the bash completion of $program does not parse"
done

# Man pages: present, and they render (man -l when man-db is installed, else groff).
for page in matchmakerd matchmakerd-config matchmakerd-completions mm-console mm-console-completions; do
  file=$(ls "$share/man/man1/$page.1"* 2>/dev/null | head -n 1)
  [ -n "$file" ] || fail "man page $page.1 is missing"
  if command -v man >/dev/null 2>&1; then
    rendered=$(MANWIDTH=80 man -l "$file" 2>"$scratch/man.err") || fail "man -l $page.1 failed: $(cat "$scratch/man.err")"
  elif command -v groff >/dev/null 2>&1; then
    rendered=$(zcat -f "$file" | groff -man -Tutf8 -ww 2>"$scratch/man.err") || fail "groff $page.1 failed"
  else
    rendered=$(zcat -f "$file")
    grep -q '^\.TH ' <<<"$rendered" || fail "$page.1 has no .TH header"
  fi
  [ ! -s "$scratch/man.err" ] || fail "$page.1 renders with warnings: $(cat "$scratch/man.err")"
  grep -q "NAME" <<<"$rendered" || fail "$page.1 has no NAME section"
done

echo "check-package: OK ($deb: both binaries at $version, mode files honoured from /etc/matchmaker, the documented check and console commands, unit, completions, man pages)"
