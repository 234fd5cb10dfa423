#!/usr/bin/env bash
# make run-s3: versitygw on 127.0.0.1:7070 with its data under var/s3/, and
# wharf on it with var/dev-s3.yaml. Ctrl-C stops both. Everything it
# creates stays under var/ (git-ignored).
set -euo pipefail

WHARF=${1:?usage: run-s3.sh WHARF_BINARY CONFIG}
CONFIG=${2:?usage: run-s3.sh WHARF_BINARY CONFIG}
GO=${GO:-go}
VERSION=v1.8.0
ADDR=127.0.0.1:7070
ACCESS_KEY=wharf-dev
BUCKET=wharf-dev
DIR="$PWD/var/s3"

# The store's binary: $VERSITYGW, else PATH, else where go install puts it
# (installed there if absent, as .ci/run does).
gw=${VERSITYGW:-}
if [ -z "$gw" ]; then
	gw=$(command -v versitygw || true)
fi
if [ -z "$gw" ]; then
	gw="$($GO env GOPATH)/bin/versitygw"
	if [ ! -x "$gw" ]; then
		echo "installing versitygw $VERSION with go install (a few minutes, once)"
		$GO install "github.com/versity/versitygw/cmd/versitygw@$VERSION"
	fi
fi

mkdir -p "$DIR/iam" "$DIR/data"
chmod 700 "$DIR"
if [ ! -s "$DIR/secret" ]; then
	(umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/secret")
fi
secret=$(cat "$DIR/secret")

ROOT_ACCESS_KEY=$ACCESS_KEY ROOT_SECRET_KEY=$secret "$gw" --port "$ADDR" --iam-dir "$DIR/iam" posix "$DIR/data" \
	>"$DIR/versitygw.log" 2>&1 &
gwpid=$!
trap 'kill "$gwpid" 2>/dev/null; wait "$gwpid" 2>/dev/null || true' EXIT

# Wait (at most 30 s) for the store to answer, then create the bucket; an
# existing one answers 409, which is fine.
s3curl() {
	curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$secret" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}
for _ in $(seq 60); do
	code=$(s3curl "http://$ADDR/" || true)
	[ "$code" = 200 ] && break
	if ! kill -0 "$gwpid" 2>/dev/null; then
		echo "versitygw exited; its log:" >&2
		cat "$DIR/versitygw.log" >&2
		exit 1
	fi
	sleep 0.5
done
code=$(s3curl -X PUT "http://$ADDR/$BUCKET")
case $code in
200 | 409) ;;
*)
	echo "creating bucket $BUCKET: HTTP $code" >&2
	exit 1
	;;
esac

echo "versitygw is serving bucket $BUCKET on http://$ADDR (data in $DIR/data/$BUCKET)"
"$WHARF" serve --config "$CONFIG"
