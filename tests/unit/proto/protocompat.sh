#!/bin/sh
# Our runtime/v1/api.proto against Kubernetes' cri-api, kept outside the
# tree in ../shared: wire-compatible means protocompat.py finds 0
# differences (field numbers, types, labels, enum values, RPCs).
src=${1:?usage: protocompat.sh SOURCE_DIR}
shared="$src/../shared"
official="$shared/cri-api/api-v0.37.0-beta.0.proto"
tool="$shared/tools/protocompat.py"
if [ ! -r "$official" ] || [ ! -r "$tool" ]; then
        echo "SKIP: no $official or $tool (the shared dir is not there)"
        exit 77
fi
if ! command -v protoc >/dev/null; then
        echo "SKIP: no protoc"
        exit 77
fi
exec /usr/bin/python3 "$tool" "$official" "$src/proto/runtime/v1/api.proto"
