import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  RecordType, decodeEntry, decodeHardState, encodeBatchHeaderRecord, encodeEntryRecord, encodeHardStateRecord,
  entryRecordBytes, hardStateRecordBytes, readRecord, sealRecord,
} from '../../src/storage/wal-record.js';
import { LogAssembler } from '../../src/storage/wal-reader.js';
import { listSegments, parseSegmentFileName, segmentFileName } from '../../src/storage/wal-segment.js';

// The record format and the pure replay pieces, below the worker.

test('entry and hard state records round-trip, 64-bit fields included', () => {
  const big = Number.MAX_SAFE_INTEGER;
  const data = Buffer.from('hello, wal');
  const buf = Buffer.alloc(entryRecordBytes(data.length) + hardStateRecordBytes);
  const afterEntry = encodeEntryRecord(buf, 0, { index: 2 ** 40 + 3, term: big, type: 1, data });
  assert.is(afterEntry % 8, 0, 'records are 8-byte aligned');
  encodeHardStateRecord(buf, afterEntry, { term: 2 ** 33, vote: 0xfedcba9876543210n, commit: big });
  assert.is(sealRecord(buf, 0), afterEntry);
  sealRecord(buf, afterEntry);

  const first = readRecord(buf, 0, buf.length);
  assert.is(first.kind, 'record');
  if (first.kind !== 'record') return;
  assert.is(first.type, RecordType.entry);
  const entry = decodeEntry(buf, first.payloadOffset, first.payloadBytes)!;
  assert.equal({ index: entry.index, term: entry.term, type: entry.type }, { index: 2 ** 40 + 3, term: big, type: 1 });
  assert.is(Buffer.from(entry.data).toString(), 'hello, wal');
  const second = readRecord(buf, first.next, buf.length);
  assert.is(second.kind, 'record');
  if (second.kind !== 'record') return;
  assert.equal(decodeHardState(buf, second.payloadOffset), { term: 2 ** 33, vote: 0xfedcba9876543210n, commit: big });
});

test('readRecord tells zeros, cut records, impossible headers and crc mismatches apart', () => {
  const buf = Buffer.alloc(128);
  assert.is(readRecord(buf, 0, buf.length).kind, 'zero');
  const end = encodeBatchHeaderRecord(buf, 0, 5, 32, 0);
  assert.is(readRecord(buf, 0, buf.length).kind, 'record');
  assert.is(readRecord(buf, 0, end - 8).kind, 'short');
  const flipped = Buffer.from(buf);
  flipped[14]! ^= 1;
  assert.is(readRecord(flipped, 0, buf.length).kind, 'crc');
  const unknownType = Buffer.from(buf);
  unknownType[4] = 9;
  assert.is(readRecord(unknownType, 0, buf.length).kind, 'impossible');
  const reserved = Buffer.from(buf);
  reserved[6] = 1;
  assert.is(readRecord(reserved, 0, buf.length).kind, 'impossible');
  const wrongLength = Buffer.from(buf);
  wrongLength.writeUInt32LE(17, 0); // a batch header payload is always 16 bytes
  assert.is(readRecord(wrongLength, 0, buf.length).kind, 'impossible');
  const tornHeader = Buffer.from(buf);
  tornHeader.fill(0, 4); // only the length survived
  assert.is(readRecord(tornHeader, 0, buf.length).kind, 'crc');
});

test('LogAssembler against a naive log over seeded random appends and overwrites', () => {
  let seed = 42;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let run = 0; run < 50; run++) {
    const log = new LogAssembler();
    let naive: { index: number; term: number }[] = [];
    let term = 1;
    for (let step = 0; step < 200; step++) {
      const last = naive.length > 0 ? naive[naive.length - 1]!.index : 0;
      const index = last > 0 && random(5) === 0 ? 1 + random(last) : last + 1;
      if (index <= last) term++;
      naive = naive.filter((e) => e.index < index);
      naive.push({ index, term });
      assert.is(log.addEntry({ index, term, type: 0, data: new Uint8Array(0) }), undefined);
    }
    assert.equal(log.entries.map((e) => ({ index: e.index, term: e.term })), naive);
  }
  const log = new LogAssembler();
  log.addEntry({ index: 1, term: 2, type: 0, data: new Uint8Array(0) });
  assert.match(log.addEntry({ index: 3, term: 2, type: 0, data: new Uint8Array(0) })!, /gap/);
  assert.match(log.addEntry({ index: 2, term: 1, type: 0, data: new Uint8Array(0) })!, /below term/);
});

test('segment names sort in write order and parse back', () => {
  const name = segmentFileName(3, 0xa410);
  assert.is(name, '0000000000000003-000000000000a410.wal');
  assert.equal(parseSegmentFileName(name), { seq: 3, firstIndex: 0xa410, fileName: name });
  assert.is(parseSegmentFileName('spare.tmp'), undefined);
  const names = [segmentFileName(10, 900), segmentFileName(2, 50), 'notes.txt', segmentFileName(9, 800)];
  assert.equal(listSegments(names).map((s) => s.seq), [2, 9, 10]);
});

test.run();
