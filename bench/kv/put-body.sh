#!/bin/bash
# Writes the body h2load sends for gRPC Put benchmarks, if the file is not there yet: one
# gRPC-framed etcdserverpb.PutRequest (uncompressed flag, 4-byte length, then key "bench/one"
# and a 256-byte value), the same every call, so every put is a new revision of one key.
# usage: bench/kv/put-body.sh [FILE (/tmp/put.bin)]
FILE=${1:-/tmp/put.bin}
[ -s "$FILE" ] && exit 0
python3 - "$FILE" <<'PY'
import sys
key, value = b'bench/one', b'v' * 256
def varint(n):
    out = b''
    while True:
        b, n = n & 0x7f, n >> 7
        if n == 0: return out + bytes([b])
        out += bytes([b | 0x80])
msg = b'\x0a' + varint(len(key)) + key + b'\x12' + varint(len(value)) + value
open(sys.argv[1], 'wb').write(b'\x00' + len(msg).to_bytes(4, 'big') + msg)
PY
