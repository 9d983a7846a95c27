#!/bin/sh
# Installs mgmc-agent on a gateway (docs/deploy.md): the program in /opt/mgmc-agent, the service user, the config and
# state directories, the systemd unit and the udev rule. Run it as root from a source tree whose dist/ is built
# (`npm ci && npm run build`; dist/ is plain JavaScript, so it may be built on another machine and copied).
#
#   sudo deploy/install.sh          # the MGMC (mgmc-agent.service)
#   sudo deploy/install.sh --dso    # also the DSO node (mgmc-dso.service)
#
# Safe to run again, for an upgrade too: it replaces the program (keeping the previous one in /opt/mgmc-agent.previous
# for a rollback) and the unit files, and never touches an existing site.yaml, dso.yaml, secrets.env, udev rule,
# keystore or database. It does not start, stop or restart anything.
set -eu

APP=/opt/mgmc-agent
NODE=/usr/bin/node
SRC=$(cd "$(dirname "$0")/.." && pwd)
WITH_DSO=no

for arg in "$@"; do
  case "$arg" in
    --dso) WITH_DSO=yes ;;
    -h | --help)
      sed -n '2,12p' "$0"
      exit 0
      ;;
    *)
      echo "install.sh: unknown option $arg (use --dso or --help)" >&2
      exit 2
      ;;
  esac
done

fail() {
  echo "install.sh: $*" >&2
  exit 1
}
say() {
  echo "install.sh: $*"
}

[ "$(id -u)" -eq 0 ] || fail 'run it as root (sudo deploy/install.sh)'
[ -f "$SRC/dist/agent/cli.js" ] || fail "$SRC/dist/agent/cli.js is missing: run \`npm ci && npm run build\` in $SRC first"
[ -x "$NODE" ] || fail "$NODE not found: install Node.js 22 LTS (docs/deploy.md, step 2); the units run $NODE"
"$NODE" -e '
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (major < 20 || (major === 20 && minor < 19)) {
    console.error(`install.sh: Node ${process.versions.node} is too old: mgmc-agent needs 20.19 or later (22 LTS recommended)`);
    process.exit(1);
  }
' || exit 1
command -v npm >/dev/null 2>&1 || fail 'npm not found: it comes with Node.js (docs/deploy.md, step 2)'
for tool in python3 make g++; do
  # better-sqlite3 compiles its native part when no prebuilt binary can be downloaded for this board.
  command -v "$tool" >/dev/null 2>&1 || fail "$tool not found: apt-get install -y python3 make g++"
done

# One system user per role; the MGMC's also joins dialout so that a technician's `sudo -u mgmc mgmc devices scan`
# reaches the serial lines like the service does (SupplementaryGroups=dialout).
add_user() {
  if ! getent passwd "$1" >/dev/null; then
    useradd --system --user-group --home-dir "$2" --no-create-home --shell /usr/sbin/nologin "$1"
    say "created user $1"
  fi
}
add_user mgmc /var/lib/mgmc-agent
usermod -a -G dialout mgmc

# The program: built beside the running one, then swapped in, so a failed npm ci leaves the installed copy alone.
say "installing the program into $APP"
rm -rf "$APP.new"
mkdir -p "$APP.new/hardware"
cp -R "$SRC/dist" "$SRC/examples" "$SRC/docs" "$SRC/deploy" "$SRC/package.json" "$SRC/package-lock.json" "$APP.new/"
cp -R "$SRC/hardware/profiles" "$APP.new/hardware/"
(cd "$APP.new" && npm ci --omit=dev --no-audit --no-fund)
chown -R root:root "$APP.new"
chmod -R go-w "$APP.new"
if [ -d "$APP" ]; then
  rm -rf "$APP.previous"
  mv "$APP" "$APP.previous"
fi
mv "$APP.new" "$APP"

cat >/usr/local/bin/mgmc <<EOF
#!/bin/sh
exec $NODE $APP/dist/agent/cli.js "\$@"
EOF
chmod 0755 /usr/local/bin/mgmc

# $1 config dir, $2 state dir, $3 user, $4 example config, $5 config file name
setup_role() {
  install -d -o root -g root -m 0755 "$1"
  install -d -o "$3" -g "$3" -m 0750 "$2"
  if [ ! -e "$1/$5" ]; then
    install -o root -g root -m 0644 "$4" "$1/$5"
    say "wrote $1/$5 from the example: edit it, then check it (docs/deploy.md)"
  fi
  if [ ! -e "$1/secrets.env" ]; then
    (
      umask 077
      printf '%s\n' '# Read by systemd (EnvironmentFile=) as root before the agent starts; keep it root:root mode 0600.' \
        '# MGMC_KEY_PASSPHRASE=<the keystore passphrase>' >"$1/secrets.env"
    )
    say "wrote $1/secrets.env: put the keystore passphrase in it"
  fi
}
setup_role /etc/mgmc-agent /var/lib/mgmc-agent mgmc "$SRC/examples/site.yaml" site.yaml
install -o root -g root -m 0644 "$SRC/deploy/mgmc-agent.service" /etc/systemd/system/mgmc-agent.service

if [ "$WITH_DSO" = yes ]; then
  add_user mgmc-dso /var/lib/mgmc-dso
  setup_role /etc/mgmc-dso /var/lib/mgmc-dso mgmc-dso "$SRC/examples/dso.yaml" dso.yaml
  install -o root -g root -m 0644 "$SRC/deploy/mgmc-dso.service" /etc/systemd/system/mgmc-dso.service
fi

RULES=/etc/udev/rules.d/99-mgmc-serial.rules
if [ ! -e "$RULES" ]; then
  install -o root -g root -m 0644 "$SRC/deploy/99-mgmc-serial.rules" "$RULES"
  say "wrote $RULES: fill in your adapters' ids (docs/deploy.md, step 7)"
elif ! cmp -s "$SRC/deploy/99-mgmc-serial.rules" "$RULES"; then
  say "kept your edited $RULES"
fi

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  udevadm control --reload || true
fi

say "done. Next: docs/deploy.md from step 6 (keystore, site.yaml, config check, then systemctl enable --now mgmc-agent)"
if systemctl is-active --quiet mgmc-agent 2>/dev/null; then
  say 'mgmc-agent is running the previous version until: systemctl restart mgmc-agent'
fi
