// PROXY protocol v1 (text) and v2 (binary) header parsing, so the client's real address
// survives a TCP load balancer. smtp-server understands v1 only; this handles both and
// then hands the socket to smtp-server as if it had accepted it.
import net from 'node:net';

export interface ProxyInfo {
  // undefined for LOCAL, UNKNOWN and AF_UNSPEC/AF_UNIX (health checks from the balancer):
  // intake then serves the session but lets it neither AUTH nor send.
  remoteAddress?: string;
  remotePort?: number;
}

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const MAX_HEADER = 536; // v2: 16 + 520 address/TLV bytes is plenty; v1 lines are ≤ 107 bytes

export type ParseResult = { done: false } | { done: true; info: ProxyInfo; consumed: number };

/** Parses a header from the bytes received so far; throws on a malformed one. */
export function parseProxyHeader(buf: Buffer): ParseResult {
  if (buf.length >= 1 && buf[0] === 0x0d) {
    if (buf.length < 16) {
      if (!V2_SIGNATURE.subarray(0, buf.length).equals(buf.subarray(0, Math.min(buf.length, 12)))) throw new Error('bad PROXY v2 signature');
      return { done: false };
    }
    if (!buf.subarray(0, 12).equals(V2_SIGNATURE)) throw new Error('bad PROXY v2 signature');
    const verCmd = buf[12]!;
    if (verCmd >> 4 !== 2) throw new Error('unsupported PROXY version');
    const famProto = buf[13]!;
    const len = buf.readUInt16BE(14);
    if (16 + len > MAX_HEADER + 16) throw new Error('PROXY v2 header too long');
    if (buf.length < 16 + len) return { done: false };
    const body = buf.subarray(16, 16 + len);
    const consumed = 16 + len;
    const command = verCmd & 0x0f;
    if (command === 0) return { done: true, info: {}, consumed }; // LOCAL
    if (command !== 1) throw new Error('unsupported PROXY v2 command');
    const family = famProto >> 4;
    // A PROXY command whose address block is shorter than its family needs is malformed,
    // not "unknown": falling back to the balancer's address would lend it the client's place.
    if ((family === 1 && body.length < 12) || (family === 2 && body.length < 36)) throw new Error('PROXY v2 address block too short');
    if (family === 1) {
      return { done: true, consumed, info: { remoteAddress: [...body.subarray(0, 4)].join('.'), remotePort: body.readUInt16BE(8) } };
    }
    if (family === 2) {
      const groups: string[] = [];
      for (let i = 0; i < 16; i += 2) groups.push(body.readUInt16BE(i).toString(16));
      return { done: true, consumed, info: { remoteAddress: normalizeV6(groups.join(':')), remotePort: body.readUInt16BE(32) } };
    }
    return { done: true, info: {}, consumed };
  }
  const end = buf.indexOf('\r\n');
  if (end < 0) {
    if (buf.length > 107) throw new Error('PROXY v1 line too long');
    if (!'PROXY '.startsWith(buf.subarray(0, 6).toString('latin1'))) throw new Error('not a PROXY header');
    return { done: false };
  }
  const parts = buf.subarray(0, end).toString('latin1').split(' ');
  if (parts[0] !== 'PROXY') throw new Error('not a PROXY header');
  if (parts[1] === 'UNKNOWN') return { done: true, info: {}, consumed: end + 2 };
  if ((parts[1] !== 'TCP4' && parts[1] !== 'TCP6') || parts.length !== 6) throw new Error('malformed PROXY v1 header');
  const addr = parts[2] ?? '';
  if (net.isIP(addr) !== (parts[1] === 'TCP4' ? 4 : 6)) throw new Error('bad PROXY source address');
  const port = Number(parts[4]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('bad PROXY source port');
  return { done: true, info: { remoteAddress: addr, remotePort: port }, consumed: end + 2 };
}

function normalizeV6(addr: string): string {
  // Let the URL parser give the canonical compressed form.
  return new URL(`http://[${addr}]/`).hostname.slice(1, -1);
}

/** Reads the header off a fresh socket, then unshifts whatever followed it. */
export function readProxyHeader(socket: net.Socket, timeoutMs = 10_000): Promise<ProxyInfo> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => finish(new Error('timed out waiting for the PROXY header')), timeoutMs);
    const finish = (err?: Error, info?: ProxyInfo, rest?: Buffer) => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('end', onEnd);
      if (err) return reject(err);
      socket.pause();
      if (rest && rest.length) socket.unshift(rest);
      resolve(info ?? {});
    };
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      try {
        const r = parseProxyHeader(buf);
        if (r.done) finish(undefined, r.info, buf.subarray(r.consumed));
      } catch (err) {
        finish(err as Error);
      }
    };
    const onError = (err: Error) => finish(err);
    const onEnd = () => finish(new Error('connection closed before the PROXY header'));
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('end', onEnd);
  });
}
