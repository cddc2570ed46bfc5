#!/usr/bin/env bash
# Usage: make_certs.sh OUTDIR
#
# Makes a throwaway CA (ca.pem, ca.key) and a server certificate signed by it
# (server.pem, server.key) for localhost / 127.0.0.1, valid 30 days, P-256.
#
# Why a CA and a leaf instead of one self-signed certificate: rustls (webpki)
# refuses a CA certificate presented as the server's end-entity certificate,
# so the client trusts ca.pem and the server presents server.pem.
#
# Every run makes new keys. Files are built in a private temporary directory
# and moved into OUTDIR only when all of them are done, so a failed run leaves
# no half-made set behind.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
mkdir -p "$1"
out="$(cd "$1" && pwd)"
work="$(mktemp -d "$out/.make_certs.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"

days=30
new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

new_key ca.key
# -config /dev/null everywhere: the machine's openssl.cnf must not add
# extensions of its own (a duplicate is an error); all are spelled out here.
openssl req -new -x509 -config /dev/null -key ca.key -subj "/CN=nhacviec test CA" \
    -days "$days" -sha256 \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out ca.pem

new_key server.key
openssl req -new -config /dev/null -key server.key -subj "/CN=localhost" -out server.csr
cat >server.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
# A random serial: every run makes a new CA key under the same name, and
# clients that cache certificates by issuer+serial balk at a reused pair.
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
    -extfile server.ext -out server.pem 2>/dev/null

# Prove the chain before handing it out, with a TLS client's strict checks.
openssl verify -x509_strict -purpose sslserver -CAfile ca.pem server.pem >/dev/null

chmod 600 ca.key server.key
for f in ca.pem ca.key server.pem server.key; do
    mv -f "$f" "$out/$f"
done
