// The test API server listens on the machine's loopback only; a container (or a node) in a
// network namespace of the test's own cannot reach it. A bridge through the filesystem, with
// no interface, route or iptables rule added: the test process serves a unix socket that it
// pipes to the API server, and a small Node process inside the namespace listens on TCP and
// pipes each connection to that socket. TLS stays end to end (the serving certificate names
// 127.0.0.1 and 10.0.0.1, the addresses a pod is given for the API).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { eventually } from '../support/eventually.ts';

// Runs inside the namespace: argv = socket, then host:port pairs to listen on.
const INNER = `
const net = require('node:net');
const [sock, ...listens] = process.argv.slice(1);
for (const l of listens) {
  const i = l.lastIndexOf(':');
  net.createServer((c) => {
    const u = net.connect(sock);
    c.pipe(u).pipe(c);
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
  }).listen(Number(l.slice(i + 1)), l.slice(0, i), () => console.log('listening ' + l));
}
`;

/** Pipes two sockets into each other; either ending or failing ends both. */
function splice(c: net.Socket, u: net.Socket, conns: Set<net.Socket>): void {
  conns.add(c).add(u);
  c.pipe(u).pipe(c);
  const end = () => { c.destroy(); u.destroy(); conns.delete(c); conns.delete(u); };
  c.on('error', end).on('close', end);
  u.on('error', end).on('close', end);
}

export interface ApiBridge {
  /** host:port pairs listened on inside the namespace. */
  listens: string[];
  close(): Promise<void>;
}

/**
 * Bridges `listens` (host:port inside the network namespace at nsPath) to the API server at
 * `server` (https://127.0.0.1:PORT on the machine). `dir` holds the socket.
 */
export async function bridgeApi(opts: { nsPath: string; server: string; listens: string[]; dir: string }): Promise<ApiBridge> {
  const target = new URL(opts.server);
  const sock = path.join(opts.dir, `api-${process.pid}.sock`);
  fs.rmSync(sock, { force: true });
  const conns = new Set<net.Socket>();
  const outer = net.createServer((c) => splice(c, net.connect(Number(target.port), target.hostname), conns));
  await new Promise<void>((res, rej) => { outer.once('error', rej); outer.listen(sock, () => res()); });
  const inner: ChildProcess = spawn('nsenter', [`--net=${opts.nsPath}`, '--', 'setpriv', '--pdeathsig', 'KILL', '--', process.execPath, '-e', INNER, sock, ...opts.listens],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  inner.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  inner.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const close = async () => {
    await killAndWait(inner);
    for (const c of conns) c.destroy();
    await new Promise<void>((r) => outer.close(() => r()));
    fs.rmSync(sock, { force: true });
  };
  try {
    await eventually('the API bridge to listen in the namespace', async () => {
      if (inner.exitCode !== null) throw new Error(`API bridge exited ${inner.exitCode}: ${out}`);
      return opts.listens.every((l) => out.includes(`listening ${l}`));
    }, 20_000);
  } catch (e) {
    await close();
    throw e;
  }
  return { listens: opts.listens, close };
}

// Runs inside the namespace: serves the socket, dialing host:port in the namespace.
const INNER_OUT = `
const net = require('node:net');
const [sock, target] = process.argv.slice(1);
const i = target.lastIndexOf(':');
net.createServer((c) => {
  const u = net.connect(Number(target.slice(i + 1)), target.slice(0, i));
  c.pipe(u).pipe(c);
  c.on('error', () => u.destroy());
  u.on('error', () => c.destroy());
}).listen(sock, () => console.log('listening ' + sock));
`;

/**
 * The other direction: `listen` (host:port on the machine's loopback) reaches `target`
 * (host:port inside the network namespace at nsPath). For the API server dialing a kubelet.
 */
export async function bridgeOut(opts: { nsPath: string; listen: string; target: string; dir: string }): Promise<ApiBridge> {
  const sock = path.join(opts.dir, `out-${process.pid}-${opts.listen.replace(/[^0-9a-z]/gi, '_')}.sock`);
  fs.rmSync(sock, { force: true });
  const inner: ChildProcess = spawn('nsenter', [`--net=${opts.nsPath}`, '--', 'setpriv', '--pdeathsig', 'KILL', '--', process.execPath, '-e', INNER_OUT, sock, opts.target],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  inner.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  inner.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const conns = new Set<net.Socket>();
  const i = opts.listen.lastIndexOf(':');
  const outer = net.createServer((c) => splice(c, net.connect(sock), conns));
  const close = async () => {
    await killAndWait(inner);
    for (const c of conns) c.destroy();
    if (outer.listening) await new Promise<void>((r) => outer.close(() => r()));
    fs.rmSync(sock, { force: true });
  };
  try {
    await eventually('the bridge into the namespace to listen', async () => {
      if (inner.exitCode !== null) throw new Error(`bridge exited ${inner.exitCode}: ${out}`);
      return out.includes(`listening ${sock}`);
    }, 20_000);
    await new Promise<void>((res, rej) => { outer.once('error', rej); outer.listen(Number(opts.listen.slice(i + 1)), opts.listen.slice(0, i), () => res()); });
  } catch (e) {
    await close();
    throw e;
  }
  return { listens: [opts.listen], close };
}

/** SIGKILLs a bridge's inner process (if still running) and waits for its exit. */
async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}
