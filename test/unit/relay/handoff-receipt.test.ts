// The hand-off receipt (relay/handoff/record.ts): the receiver proves the fleet token to the
// sender, bound to one queue id and one nonce; records from senders that predate it still
// decode, and a malformed nonce is refused like any bad record.
import { describe, expect, it } from 'vitest';
import { decodeRecord, encodeRecord, hasReceipt, receiptFor, RecordError } from '../../../relay/handoff/record.ts';

const meta = { id: 'MJ3K2ABCDEF0123', from: 'app@example.test', recipients: ['a@dest.test'], receivedAt: 1_764_000_000_000, size: 10 };
const state = { attempts: 1, nextAttemptAt: 1_764_000_060_000, done: {} };
const NONCE = '0123456789abcdef0123456789abcdef';
const line = (b: Buffer) => b.toString('latin1').replace(/\r\n$/, '');

describe('hand-off receipts', () => {
  it('a receipt holds only for its token, queue id and nonce', () => {
    const receipt = receiptFor('fleet-token', meta.id, NONCE);
    expect(hasReceipt(`2.0.0 Ok: handed off as ${meta.id} receipt=${receipt}`, 'fleet-token', meta.id, NONCE)).toBe(true);
    expect(hasReceipt(`2.0.0 Ok: handed off as ${meta.id} receipt=${receipt}`, 'another-token', meta.id, NONCE)).toBe(false);
    expect(hasReceipt(`2.0.0 Ok: handed off as X receipt=${receipt}`, 'fleet-token', 'MJ3K2ABCDEF0124', NONCE)).toBe(false);
    expect(hasReceipt(`2.0.0 Ok receipt=${receipt}`, 'fleet-token', meta.id, NONCE.replace('0', '1'))).toBe(false);
    expect(hasReceipt('2.0.0 Ok: handed off as X', 'fleet-token', meta.id, NONCE)).toBe(false);
    expect(hasReceipt(`2.0.0 Ok receipt=${'0'.repeat(64)}`, 'fleet-token', meta.id, NONCE)).toBe(false);
    expect(hasReceipt(`2.0.0 Ok receipt=${receipt.toUpperCase()}`, 'fleet-token', meta.id, NONCE)).toBe(false);
  });

  it('records travel with or without a receipt request; a malformed nonce is refused', () => {
    expect(decodeRecord(line(encodeRecord({ meta, state, receipt: { nonce: NONCE } }))).receipt).toEqual({ nonce: NONCE });
    expect(decodeRecord(line(encodeRecord({ meta, state }))).receipt).toBeUndefined();
    for (const nonce of ['', 'zz', NONCE.toUpperCase(), `${NONCE}00`]) {
      expect(() => decodeRecord(line(encodeRecord({ meta, state, receipt: { nonce } }))), nonce).toThrow(RecordError);
    }
  });
});
