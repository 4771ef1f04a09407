/**
 * etcd's key range conventions, the one home for them (the gateway's `?prefix=true`, keyraftctl's
 * --prefix): a range is [key, range_end); range_end "\0" means "to the end of the keyspace".
 */

/**
 * The end of the range holding every key that starts with `key` (clientv3.GetPrefixRangeEnd): the
 * key with its last byte below 0xff incremented and what follows dropped; "\0" (to the end of the
 * keyspace) when every byte is 0xff or the key is empty. A new buffer each call.
 * Example: "plain/" -> "plain0"; "a\xff" -> "b"; "\xff\xff" -> "\0".
 */
export function prefixEnd(key: Buffer): Buffer {
  for (let i = key.length - 1; i >= 0; i--) {
    if (key[i]! < 0xff) {
      const end = Buffer.from(key.subarray(0, i + 1));
      end[i] = end[i]! + 1;
      return end;
    }
  }
  return Buffer.from([0]);
}
