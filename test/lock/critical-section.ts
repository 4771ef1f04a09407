/**
 * One critical section, shared by every kind of lock holder in test/lock (in-process gRPC callers,
 * etcd3 npm locks, and etcdctl's `lock NAME -- node critical-section.js PORT KEY ID` as a child):
 * append "+ID," to KEY, read it back a few times, then append "-ID,". Each append is a txn
 * guarded by KEY's mod revision as just read, so a writer that slipped in between fails the
 * compare and the section throws ("overlap"). Held locks never overlap, so the final value is
 * "+a,-a,+b,-b,..." with each pair adjacent; checkSequence reads it.
 */
import { Etcd3 } from 'etcd3';

/** Appends `mark` to `key` only if nobody wrote it since we read it; throws on an overlap. */
async function appendGuarded(client: Etcd3, key: string, mark: string): Promise<void> {
  const current = await client.get(key).exec();
  const kv = current.kvs[0];
  const guard = kv === undefined
    ? client.if(key, 'Create', '==', 0)
    : client.if(key, 'Mod', '==', kv.mod_revision);
  const value = (kv === undefined ? '' : kv.value.toString()) + mark;
  const result = await guard.then(client.put(key).value(value)).commit();
  if (!result.succeeded) throw new Error(`overlap: ${key} changed between read and write of ${mark}`);
}

export async function criticalSection(client: Etcd3, key: string, id: string): Promise<void> {
  await appendGuarded(client, key, `+${id},`);
  // A few round trips inside the section widen the window an overlapping holder would hit.
  for (let i = 0; i < 3; i++) await client.get(key).string();
  await appendGuarded(client, key, `-${id},`);
}

/** The ids in the order they held the lock; throws unless every +id is followed by its own -id. */
export function checkSequence(value: string): string[] {
  const marks = value.split(',').filter((m) => m !== '');
  const order: string[] = [];
  for (let i = 0; i < marks.length; i += 2) {
    const enter = marks[i]!;
    const leave = marks[i + 1];
    if (!enter.startsWith('+') || leave !== `-${enter.slice(1)}`) throw new Error(`sections overlap at mark ${i}: ${value}`);
    order.push(enter.slice(1));
  }
  return order;
}

// As etcdctl's exec command: node critical-section.js PORT KEY ID (exit 1 on an overlap).
if (require.main === module) {
  const [port, key, id] = process.argv.slice(2);
  const client = new Etcd3({ hosts: `127.0.0.1:${port}` });
  criticalSection(client, key!, id!)
    .then(() => client.close())
    .catch((err: unknown) => {
      console.error(String(err));
      client.close();
      process.exitCode = 1;
    });
}
