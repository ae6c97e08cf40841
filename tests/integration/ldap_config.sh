#!/bin/bash
# The directory: section against a real slapd: a wrong bind password is a
# clear error at start-up and in `sbxctl policy check --online`; so are a
# password file others may read, names defined both in the file and in the
# directory, and names neither defines.  An unreachable directory at
# start-up does not stop the broker; a second URI is tried when the first
# is down; anonymous binds work; ldaps:// and StartTLS check the server's
# certificate against tls_ca_file.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ldap_lib.sh"
sbx_init
ldap_require

CA_DIR="$T/tls"
TLS_PORT=

# A CA and a certificate for 127.0.0.1; a second, unrelated CA.
make_certs() {
	command -v openssl >/dev/null 2>&1 || return 1
	mkdir -p "$CA_DIR"
	(
		cd "$CA_DIR" &&
			openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
				-subj /CN=sbx-test-ca -keyout ca.key -out ca.pem &&
			openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
				-subj /CN=other-ca -keyout other.key -out other.pem &&
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
				-subj /CN=127.0.0.1 -keyout server.key -out server.csr &&
			printf 'subjectAltName=IP:127.0.0.1\n' >san.ext &&
			openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
				-days 2 -extfile san.ext -out server.pem
	) >"$T/openssl.log" 2>&1
}

LDAPI_URI="ldapi://$(printf '%s' "$T/ldapi" | sed 's|/|%2F|g')"
if make_certs; then
	slapd_setup "TLSCACertificateFile $CA_DIR/ca.pem
TLSCertificateFile $CA_DIR/server.pem
TLSCertificateKeyFile $CA_DIR/server.key"
	TLS_PORT=$(free_port)
	slapd_start "$LDAP_URI/ ldaps://127.0.0.1:$TLS_PORT/ $LDAPI_URI"
else
	diag "no openssl: the TLS cases will be skipped" "$(cat "$T/openssl.log" 2>/dev/null)"
	slapd_setup && slapd_start "$LDAP_URI/ $LDAPI_URI"
fi
tap_result "slapd starts" || {
	tap_done
	exit
}

# online FILE: sbxctl policy check --online FILE
online() { run "$SBXCTL" policy check --online "$1"; }

# 1. The right password.
ldap_policy "$T/good.yaml" "timeout: 2s"
online "$T/good.yaml"
assert_rc "policy check --online: the right password binds and reads the directory" 0
assert_contains "... and says the file is ok" "$OUT" "good.yaml: ok"

# 2. A wrong one.
(umask 077 && echo not-the-password >"$T/bad.pw")
sed "s|^  bind_password_file: .*|  bind_password_file: $T/bad.pw|" "$T/good.yaml" >"$T/bad.yaml"
run "$SBXCTL" policy check "$T/bad.yaml"
assert_rc "policy check (offline) cannot know the password is wrong" 0
online "$T/bad.yaml"
assert_rc "policy check --online: a wrong password is an error" 2
assert_contains "... that says what was refused and where to look" "$ERR" \
	"bind as $LDAP_SBX_DN refused: Invalid credentials (check bind_dn and the password in $T/bad.pw)"
STATE="$T/state-bad"
broker_start "$T/bad.yaml"
assert_eq "the broker does not start with a wrong bind password" 1 "${BROKER_RC:-running}"
assert_contains "its error says why" "$(cat "$LOG")" \
	"bind as $LDAP_SBX_DN refused: Invalid credentials (check bind_dn and the password in $T/bad.pw)"
assert_contains "... and that it is not starting" "$(cat "$LOG")" \
	"not starting: the directory refused sbx"
broker_stop

chmod 644 "$T/bad.pw"
echo "$LDAP_PASSWORD" >"$T/bad.pw"
online "$T/bad.yaml"
assert_contains "a password file others may read is refused" "$ERR" \
	"bind_password_file $T/bad.pw may be read by others (mode 644): chmod 600 $T/bad.pw"

# 3. Names: in both, and in neither.
{
	sed '/^directory:/,$d' "$T/good.yaml"
	cat <<EOF
users:
  grace: { email: grace@file.example }
  root-admin: { manager: nobody-at-all }
EOF
	sed -n '/^directory:/,$p' "$T/good.yaml"
} | sed 's/groups: \[security-leads\]/groups: [security-leads, ops]/' >"$T/names.yaml"
run "$SBXCTL" policy check "$T/names.yaml"
assert_rc "offline, names the directory might define are accepted" 0
online "$T/names.yaml"
assert_rc "online, they are checked" 2
assert_contains "a user in both the file and the directory" "$ERR" \
	"user 'grace' is defined both in the policy file and in the directory: remove one of them"
assert_contains "a group neither defines" "$ERR" \
	"role 'sandbox-admin' names group 'ops', which neither the policy file nor the directory defines"
assert_contains "a manager neither defines" "$ERR" \
	"user 'root-admin' has manager 'nobody-at-all', whom neither the policy file nor the directory defines"

# At run time the file wins, and the broker says so.
sed 's/groups: \[security-leads, ops\]/groups: [security-leads]/' "$T/names.yaml" >"$T/both.yaml"
STATE="$T/state-both"
broker_start "$T/both.yaml"
tap_result "the broker starts with grace in both"
wait_record 5 '.event == "directory.conflict"'
rec=$(journal_select '.event == "directory.conflict"' | head -n 1)
assert_eq "directory.conflict: the file's grace is kept" "user grace policy file" \
	"$(jq -r '"\(.kind) \(.name) \(.kept)"' <<<"${rec:-null}")"
assert_contains "the log says so" "$(cat "$LOG")" \
	"user 'grace' is defined both in $T/both.yaml and in the directory"
ctl --as grace --json pending
assert_rc "grace (the file's) is still a security lead from the directory's group" 0
broker_stop

# 4. Unreachable at start-up: the broker starts; directory users wait.
DEAD="ldap://127.0.0.1:$(free_port)"
sed "s|^  uri: .*|  uri: $DEAD|" "$T/good.yaml" >"$T/dead.yaml"
STATE="$T/state-dead"
broker_start "$T/dead.yaml"
tap_result "an unreachable directory does not stop the broker"
assert_eq "directory.unavailable at start-up, naming the server" "$DEAD" \
	"$(journal_select '.event == "directory.unavailable"' | head -n 1 | jq -r .uri)"
ctl check alice
assert_contains "alice is refused: the directory is unreachable" "$OUT$ERR" \
	"alice is not known to sbx on sbx-01, and the directory is unreachable"
broker_stop

# 5. A second server when the first is down; an anonymous bind.
sed -e "s|^  uri: .*|  uri: [$DEAD, $LDAP_URI]|" -e '/^  bind_dn:/d' -e '/^  bind_password_file:/d' \
	"$T/good.yaml" >"$T/two.yaml"
STATE="$T/state-two"
broker_start "$T/two.yaml"
tap_result "broker starts with [dead, live] servers and an anonymous bind"
rec=$(journal_select '.event == "directory.loaded"' | head -n 1)
assert_eq "the second server served 7 users" "$LDAP_URI 7" \
	"$(jq -r '"\(.uri) \(.users)"' <<<"${rec:-null}")"
ctl check alice
assert_rc "alice may log in" 0
broker_stop

# ldapi://: a Unix socket, here with an anonymous bind.
sed -e "s|^  uri: .*|  uri: $LDAPI_URI|" -e '/^  bind_dn:/d' -e '/^  bind_password_file:/d' \
	"$T/good.yaml" >"$T/ldapi.yaml"
online "$T/ldapi.yaml"
assert_rc "ldapi:// (the server's Unix socket) works too" 0

# 6. More people than one page (500) and than the server's default size
#    limit for anonymous clients (500).
for i in $(seq -w 1 600); do
	printf 'dn: uid=p%s,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\n' "$i"
	printf 'uid: p%s\ncn: P\nsn: P\nmanager: uid=bob,ou=people,dc=example,dc=org\n\n' "$i"
done >"$T/many.ldif"
printf 'dn: cn=crowd,ou=groups,dc=example,dc=org\nobjectClass: posixGroup\ncn: crowd\n' >>"$T/many.ldif"
printf 'gidNumber: 5100\n' >>"$T/many.ldif"
for i in $(seq -w 1 600); do printf 'memberUid: p%s\n' "$i"; done >>"$T/many.ldif"
run ldapadd -x -H "$LDAP_URI" -D "$LDAP_ADMIN_DN" -w "$LDAP_ADMIN_PW" -f "$T/many.ldif"
assert_rc "ldapadd: 600 more people and a group of them" 0
STATE="$T/state-many"
broker_start "$T/good.yaml"
tap_result "the broker reads 607 people in pages"
rec=$(journal_select '.event == "directory.loaded"' | head -n 1)
assert_eq "directory.loaded: 607 users, 4 groups" "607 4" \
	"$(jq -r '"\(.users) \(.groups)"' <<<"${rec:-null}")"
ctl --as bob --json pending
assert_rc "bob, manager of 603 people, asks for his approvals" 0
broker_stop
online "$T/two.yaml"
assert_contains "anonymous, the server's size limit stops the read, and the error says so" \
	"$ERR" "the server lets anonymous clients read fewer entries than there are"

# 7. TLS.
if [ -z "$TLS_PORT" ]; then
	tap_skip "ldaps:// and StartTLS" "openssl could not make test certificates"
else
	tls_policy() { # FILE URI START_TLS CA
		sed -e "s|^  uri: .*|  uri: $2|" -e "s|^  start_tls: .*|  start_tls: $3\n  tls_ca_file: $4|" \
			"$T/good.yaml" >"$1"
	}
	tls_policy "$T/ldaps.yaml" "ldaps://127.0.0.1:$TLS_PORT" false "$CA_DIR/ca.pem"
	online "$T/ldaps.yaml"
	assert_rc "ldaps:// with the right tls_ca_file" 0
	tls_policy "$T/starttls.yaml" "$LDAP_URI" true "$CA_DIR/ca.pem"
	online "$T/starttls.yaml"
	assert_rc "ldap:// with StartTLS and the right tls_ca_file" 0
	tls_policy "$T/wrongca.yaml" "ldaps://127.0.0.1:$TLS_PORT" false "$CA_DIR/other.pem"
	online "$T/wrongca.yaml"
	assert_rc "ldaps:// with another CA is refused" 2
	assert_contains "... naming the server" "$ERR" "ldaps://127.0.0.1:$TLS_PORT: "
	tls_policy "$T/wrongstarttls.yaml" "$LDAP_URI" true "$CA_DIR/other.pem"
	online "$T/wrongstarttls.yaml"
	assert_contains "StartTLS with another CA fails, and says StartTLS" "$ERR" "StartTLS failed"
	STATE="$T/state-tls"
	broker_start "$T/ldaps.yaml"
	tap_result "the broker reads the directory over ldaps://"
	ctl check alice
	assert_rc "alice may log in" 0
	broker_stop
fi

slapd_stop
tap_done
