import { AlarmAction, AlarmType, type AlarmMember, type AlarmRequest, type AlarmResponse } from '../proto/etcd-types.js';
import { Bucket, type Backend } from '../storage/backend.js';

/**
 * The cluster's active alarms (etcd's alarm store, etcdserver/api/v3alarm): which member raised
 * which alarm. Changed only by applied AlarmRequest entries, so every member holds the same set
 * at the same index and refuses the same writes (applyAlarm's effects, member.ts):
 *
 *   NOSPACE  raised by a member whose backend passed --quota-backend-bytes (quota.ts): puts,
 *            txns with puts and lease grants fail with "etcdserver: mvcc: database space
 *            exceeded"; reads, deletes, compaction and defrag still work.
 *   CORRUPT  raised by the corrupt check (corrupt-check.ts) when HashKV differs from a peer's at
 *            the same revision: every write and compaction fails with "etcdserver: corrupt
 *            cluster"; reads still work (etcd 3.4's applierV3Corrupt, whose Range the server
 *            bypasses).
 *
 * Stored in the backend's alarm bucket, staged with the entry's batch (so with its applied index):
 *   key   member id (8 bytes BE) | alarm type (1 byte)     value  empty
 */
export class Alarms {
  /** Key: member id hex + ':' + type. */
  private readonly active = new Map<string, AlarmMember>();

  private constructor(private readonly backend: Backend) {}

  static async load(backend: Backend): Promise<Alarms> {
    const alarms = new Alarms(backend);
    await backend.scan(Bucket.alarm, (key) => {
      const m: AlarmMember = { memberID: key.readBigUInt64BE(0), alarm: key[8] as AlarmType };
      alarms.active.set(mapKey(m), m);
    });
    return alarms;
  }

  /** Whether any member's alarm of this type is active. */
  has(type: AlarmType): boolean {
    for (const m of this.active.values()) if (m.alarm === type) return true;
    return false;
  }

  /** Every active alarm, ordered by member then type (etcd lists them so). */
  list(): AlarmMember[] {
    return [...this.active.values()].sort((a, b) => (a.memberID < b.memberID ? -1 : a.memberID > b.memberID ? 1 : a.alarm - b.alarm));
  }

  /**
   * Applies one AlarmRequest (etcd's applierV3backend.Alarm): GET lists every alarm, or those of
   * one type when `alarm` is set; ACTIVATE and DEACTIVATE answer with the alarm they changed
   * (none if it already was / was not active). NONE alarms are ignored, as etcd.
   */
  apply(request: AlarmRequest): AlarmResponse {
    const type = request.alarm ?? AlarmType.NONE;
    const member: AlarmMember = { memberID: request.memberID ?? 0n, alarm: type };
    switch (request.action ?? AlarmAction.GET) {
      case AlarmAction.GET:
        return { alarms: type === AlarmType.NONE ? this.list() : this.list().filter((m) => m.alarm === type) };
      case AlarmAction.ACTIVATE: {
        if (type === AlarmType.NONE || this.active.has(mapKey(member))) return { alarms: [] };
        this.active.set(mapKey(member), member);
        this.backend.put(Bucket.alarm, storeKey(member), EMPTY);
        return { alarms: [member] };
      }
      case AlarmAction.DEACTIVATE: {
        if (!this.active.delete(mapKey(member))) return { alarms: [] };
        this.backend.del(Bucket.alarm, storeKey(member));
        return { alarms: [member] };
      }
      default:
        return { alarms: [] };
    }
  }
}

const EMPTY = Buffer.alloc(0);

function mapKey(m: AlarmMember): string {
  return `${m.memberID.toString(16)}:${m.alarm}`;
}

function storeKey(m: AlarmMember): Buffer {
  const key = Buffer.alloc(9);
  key.writeBigUInt64BE(BigInt.asUintN(64, m.memberID), 0);
  key[8] = m.alarm;
  return key;
}

/** etcd's AlarmMember.String() (gogoproto's compact text), as Status lists alarms in `errors`. */
export function alarmText(m: AlarmMember): string {
  const name = m.alarm === AlarmType.NOSPACE ? 'NOSPACE' : m.alarm === AlarmType.CORRUPT ? 'CORRUPT' : 'NONE';
  return `memberID:${BigInt.asUintN(64, m.memberID)} alarm:${name} `;
}
