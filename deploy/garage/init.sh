#!/bin/sh
# One-shot setup of the compose Garage through its admin API (v2): assign the
# single node a layout, import the claimcheck key, create the bucket with the
# key allowed. Idempotent: safe on every `docker-compose up`.
#
# Env: GARAGE_ADMIN (http://garage:3903), GARAGE_ADMIN_TOKEN, BUCKET,
#      AWS_ACCESS_KEY_ID (GK + 24 hex), AWS_SECRET_ACCESS_KEY (64 hex).
set -eu

api() { # api METHOD PATH [JSON]: print the body, fail on a non-2xx status
    if [ $# -ge 3 ]; then
        curl -fsS -X "$1" -H "Authorization: Bearer $GARAGE_ADMIN_TOKEN" \
            -H 'Content-Type: application/json' --data "$3" "$GARAGE_ADMIN$2"
    else
        curl -fsS -X "$1" -H "Authorization: Bearer $GARAGE_ADMIN_TOKEN" "$GARAGE_ADMIN$2"
    fi
}
field() { # field NAME: first string (or number) value of "NAME" in stdin's JSON
    tr -d '\n\r\t ' | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p" | head -n 1
}

echo "waiting for the Garage admin API at $GARAGE_ADMIN"
i=0
until status=$(api GET /v2/GetClusterStatus 2>/dev/null); do
    i=$((i + 1))
    [ "$i" -lt 60 ] || { echo "Garage admin API did not answer" >&2; exit 1; }
    sleep 1
done

if [ "$(printf '%s' "$status" | field layoutVersion)" = 0 ]; then
    node=$(api GET '/v2/GetNodeInfo?node=self' | field nodeId)
    [ -n "$node" ] || { echo "could not read the node id" >&2; exit 1; }
    echo "assigning node $node a 1 GB role and applying layout version 1"
    api POST /v2/UpdateClusterLayout \
        "{\"roles\":[{\"id\":\"$node\",\"zone\":\"dc1\",\"capacity\":1000000000,\"tags\":[]}]}" >/dev/null
    api POST /v2/ApplyClusterLayout '{"version":1}' >/dev/null
else
    echo "layout already applied"
fi

if api GET "/v2/GetKeyInfo?id=$AWS_ACCESS_KEY_ID" >/dev/null 2>&1; then
    echo "key $AWS_ACCESS_KEY_ID exists"
else
    echo "importing key $AWS_ACCESS_KEY_ID"
    api POST /v2/ImportKey \
        "{\"accessKeyId\":\"$AWS_ACCESS_KEY_ID\",\"secretAccessKey\":\"$AWS_SECRET_ACCESS_KEY\",\"name\":\"claimcheck\"}" >/dev/null
fi

if info=$(api GET "/v2/GetBucketInfo?globalAlias=$BUCKET" 2>/dev/null); then
    echo "bucket $BUCKET exists"
else
    echo "creating bucket $BUCKET"
    info=$(api POST /v2/CreateBucket "{\"globalAlias\":\"$BUCKET\"}")
fi
id=$(printf '%s' "$info" | field id)
[ -n "$id" ] || { echo "could not read the bucket id" >&2; exit 1; }
api POST /v2/AllowBucketKey \
    "{\"bucketId\":\"$id\",\"accessKeyId\":\"$AWS_ACCESS_KEY_ID\",\"permissions\":{\"read\":true,\"write\":true,\"owner\":true}}" >/dev/null
echo "bucket $BUCKET ($id) ready for key $AWS_ACCESS_KEY_ID"
