#!/bin/sh
# Fills in config/dovecot/dovecot.conf's placeholders for a container (listen on every
# address, standard ports), writes the master user's passwd file from the secret the
# gateway shares, and runs Dovecot in the foreground.
set -eu
BASE=/srv/dovecot
MASTER_USER="${DOVECOT_MASTER_USER:-recrypt}"
SECRET_FILE="${DOVECOT_MASTER_PASSWORD_FILE:-/run/secrets/dovecot_master}"
mkdir -p "$BASE/run" "$BASE/state" "$BASE/mail"
chown vmail:vmail "$BASE/mail"
chmod 0755 "$BASE"
printf '%s:{PLAIN}%s\n' "$MASTER_USER" "$(head -n 1 "$SECRET_FILE")" > "$BASE/master.passwd"
chown root:dovecot "$BASE/master.passwd"
chmod 0640 "$BASE/master.passwd"
sed -e "s#\$BASE#$BASE#g" -e 's#\$LISTEN#*#g' -e 's#\$IMAP_PORT#143#g' -e 's#\$LMTP_PORT#24#g' \
    -e "s#password=an-unguessable-random-value#password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')#" \
    /etc/dovecot/recrypt.conf.in > /etc/dovecot/recrypt.conf
echo 'log_path = /dev/stderr' >> /etc/dovecot/recrypt.conf
exec dovecot -F -c /etc/dovecot/recrypt.conf
