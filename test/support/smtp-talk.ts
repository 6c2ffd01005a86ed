// A raw SMTP conversation for tests that need to see exact replies (codes, enhanced
// codes, EHLO keywords) or send what no well-behaved client would.
import net from 'node:net';
import tls from 'node:tls';

export interface Reply { code: number; lines: string[]; text: string }

export class SmtpTalk {
  private socket: net.Socket;
  private buf = '';
  private waiting: Array<(r: Reply | undefined) => void> = [];
  private replies: Reply[] = [];
  closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.attach();
  }

  static async connect(port: number, host = '127.0.0.1', opts: { tls?: boolean; localAddress?: string; preamble?: Buffer } = {}): Promise<{ talk: SmtpTalk; greeting: Reply }> {
    const socket = opts.tls
      ? tls.connect({ port, host, rejectUnauthorized: false, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) })
      : net.connect({ port, host, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    const talk = new SmtpTalk(socket);
    if (opts.preamble) socket.write(opts.preamble);
    return { talk, greeting: await talk.read() };
  }

  private attach(): void {
    this.socket.setEncoding('utf8');
    this.socket.on('data', (d: string) => { this.buf += d; this.parse(); });
    const onGone = () => {
      this.closed = true;
      // Nobody will answer a closed socket: fail the waiting readers now.
      for (const w of this.waiting.splice(0)) w(undefined);
    };
    this.socket.on('close', onGone);
    this.socket.on('error', onGone);
  }

  private parse(): void {
    for (;;) {
      const lines: string[] = [];
      let rest = this.buf;
      let done = false;
      for (;;) {
        const i = rest.indexOf('\r\n');
        if (i < 0) break;
        const line = rest.slice(0, i);
        rest = rest.slice(i + 2);
        lines.push(line);
        if (line[3] !== '-') { done = true; break; }
      }
      if (!done) return;
      this.buf = rest;
      const reply: Reply = { code: Number(lines[0]!.slice(0, 3)), lines: lines.map((l) => l.slice(4)), text: lines.join('\n') };
      const w = this.waiting.shift();
      if (w) w(reply); else this.replies.push(reply);
    }
  }

  read(timeoutMs = 10_000): Promise<Reply> {
    const r = this.replies.shift();
    if (r) return Promise.resolve(r);
    if (this.closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no SMTP reply within ${timeoutMs} ms`)), timeoutMs);
      this.waiting.push((reply) => {
        clearTimeout(t);
        if (reply) resolve(reply); else reject(new Error('connection closed before a reply'));
      });
    });
  }

  write(raw: string): void {
    this.socket.write(raw);
  }

  async cmd(line: string): Promise<Reply> {
    this.write(`${line}\r\n`);
    return this.read();
  }

  async starttls(): Promise<Reply> {
    const r = await this.cmd('STARTTLS');
    if (r.code !== 220) return r;
    this.socket.removeAllListeners('data');
    const secure = tls.connect({ socket: this.socket, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => { secure.once('secureConnect', () => resolve()); secure.once('error', reject); });
    this.socket = secure;
    this.attach();
    return r;
  }

  close(): void {
    this.socket.destroy();
  }
}

export function authPlain(user: string, pass: string): string {
  return Buffer.from(`\0${user}\0${pass}`).toString('base64');
}
