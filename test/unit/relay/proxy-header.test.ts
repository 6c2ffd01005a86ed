// PROXY protocol v1 and v2 header parsing (the listener in front of smtp-server).
import { describe, expect, it } from 'vitest';
import { parseProxyHeader } from '../../../relay/smtp/proxy-protocol.ts';

describe('PROXY protocol', () => {
  it('parses v1 TCP4/TCP6/UNKNOWN and waits for a complete line', () => {
    const line = 'PROXY TCP4 203.0.113.9 10.0.0.1 51234 587\r\n';
    expect(parseProxyHeader(Buffer.from(`${line}EHLO`))).toEqual({ done: true, consumed: line.length, info: { remoteAddress: '203.0.113.9', remotePort: 51234 } });
    expect(parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::1 ::1 4000 587\r\n'))).toMatchObject({ done: true, info: { remoteAddress: '2001:db8::1' } });
    expect(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'))).toEqual({ done: true, consumed: 15, info: {} });
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 1.2'))).toEqual({ done: false });
    expect(() => parseProxyHeader(Buffer.from('EHLO me\r\n'))).toThrow(/not a PROXY header/);
    expect(() => parseProxyHeader(Buffer.from('PROXY TCP4 999.1.1.1 10.0.0.1 1 2\r\n'))).toThrow(/bad PROXY source address/);
  });
  it('parses v2 PROXY and LOCAL for IPv4 and IPv6', () => {
    const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
    const v4 = Buffer.concat([sig, Buffer.from([0x21, 0x11, 0x00, 12, 198, 51, 100, 7, 10, 0, 0, 1, 0xc0, 0x00, 0x02, 0x4b]), Buffer.from('EHLO')]);
    expect(parseProxyHeader(v4)).toEqual({ done: true, consumed: 28, info: { remoteAddress: '198.51.100.7', remotePort: 49152 } });
    expect(parseProxyHeader(v4.subarray(0, 20))).toEqual({ done: false });
    const v6body = Buffer.alloc(36);
    Buffer.from('20010db8000000000000000000000042', 'hex').copy(v6body, 0);
    v6body.writeUInt16BE(1234, 32);
    expect(parseProxyHeader(Buffer.concat([sig, Buffer.from([0x21, 0x21, 0x00, 36]), v6body]))).toMatchObject({ info: { remoteAddress: '2001:db8::42', remotePort: 1234 } });
    expect(parseProxyHeader(Buffer.concat([sig, Buffer.from([0x20, 0x00, 0x00, 0x00])]))).toEqual({ done: true, consumed: 16, info: {} });
  });
});
