#!/bin/sh
# Master-key rotation on a compose cluster, the README's runbook in order
# ("Master-key rotation runbook"; "Compose: rotate the CA and the master
# key"). Run from the directory of compose.yaml:
#
#   docker/rotate-key.sh PROJECT [BACKUPS]
#
# PROJECT is the compose project name; BACKUPS a host directory (default
# ./backups) where step 4 writes a backup under the new key, before the
# old key is dropped: every earlier backup needs the old key, so the old
# key goes only once a backup exists that does not.
#
# Key files move in one-shot `init` containers (the only service that
# mounts the master volume writable); meta-servers and gateways read them
# on SIGHUP. Each step is idempotent: if the script is interrupted, run it
# again (`hamster rotate-key` follows a rotation already open; promote-key
# and drop-old-key refuse until the cluster's rotation has closed).
set -eu

P=${1:?usage: docker/rotate-key.sh PROJECT [BACKUPS]}
B=${2:-./backups}
mkdir -p "$B"
B=$(cd "$B" && pwd)
dc() { docker-compose -p "$P" "$@"; }
A="--admin-cert /pki/admin.crt --admin-key /pki/admin.key --trust /pki/trust.pem --meta meta-1:7400,meta-2:7400,meta-3:7400"
# A one-shot container with the master volume (rw) and the admin identity.
oneshot() { dc run --rm --no-deps init /hamster "$@"; }
# Every key holder rereads its key files.
hup() { dc kill -s HUP meta-1 meta-2 meta-3 gateway; }

echo "1. provision the next key on every holder"
oneshot compose next-key --master /master
hup
# shellcheck disable=SC2086 # $A is a list of arguments
oneshot compose wait-keys --master /master --holding next $A

echo "2. rotate (rewrap every data key and S3 secret)"
# shellcheck disable=SC2086
oneshot rotate-key $A

echo "3. promote the new key; the old one is kept as master.old.key"
# shellcheck disable=SC2086
oneshot compose promote-key --master /master $A
hup
# shellcheck disable=SC2086
oneshot compose wait-keys --master /master --holding current $A

F=meta-$(date +%Y%m%d-%H%M%S).hbk
echo "4. back up the meta tier under the new key: $B/$F"
# shellcheck disable=SC2086
dc run --rm --no-deps -v "$B:/backups" bootstrap /hamster backup --out "/backups/$F" $A

echo "5. drop the old key"
# shellcheck disable=SC2086
oneshot compose drop-old-key --master /master $A
echo "done: the backup $B/$F needs only the current key (keep the master key with it)"
