// Where the relay or operator relies on more of a dependency than its documented API, the
// reliance is written down here, so an upgrade that changes it fails this file (naming the
// module of ours to revisit) instead of failing in production or in a slow tier.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { dkimSign } from 'mailauth';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { DkimBodyHasher, loadDkimKeys, signMessage } from '../../relay/dkim/index.ts';
import { makeKeyDir } from '../dkim/keys-fixture.ts';

const require = createRequire(import.meta.url);
const sourceOf = (specifier: string) => fs.readFileSync(fileURLToPath(import.meta.resolve(specifier)), 'utf8');
const pkg = (name: string) => JSON.parse(fs.readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as { version: string; exports?: unknown };

describe('relay/delivery/pools.ts: the message shim handed to nodemailer/lib/smtp-pool', () => {
  it('covers every member of a MailMessage that the pool reads', () => {
    const dir = fileURLToPath(new URL('.', import.meta.resolve('nodemailer/lib/smtp-pool')));
    const reads = new Set<string>();
    for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.js'))) {
      for (const m of fs.readFileSync(`${dir}/${f}`, 'utf8').matchAll(/\bmail\.(message|data)\.(\w+)/g)) reads.add(`${m[1]}.${m[2]}`);
    }
    // data is an empty object in the shim: every data.* read must be an optional setting.
    const shimmed = ['message.getEnvelope', 'message.messageId', 'message.getHeader', 'message.createReadStream', 'data.signal', 'data.dsn', 'data.requireTLSExtensionEnabled'];
    expect([...reads].filter((r) => !shimmed.includes(r)), `nodemailer ${pkg('nodemailer').version} smtp-pool reads more of a message: extend sendRaw() in relay/delivery/pools.ts`).toEqual([]);
    expect(reads.has('message.createReadStream')).toBe(true);
  });
});

describe('relay/dkim/mailauth-internals.ts: mailauth lib/ files', () => {
  it('are reachable: no exports map hides them', () => {
    expect(pkg('mailauth').exports, `mailauth ${pkg('mailauth').version} added an exports map: relay/dkim/mailauth-internals.ts may no longer load`).toBeUndefined();
    for (const f of ['mailauth/lib/tools.js', 'mailauth/lib/dkim/header/relaxed.js', 'mailauth/lib/dkim/syntax.js']) {
      expect(() => require.resolve(f), f).not.toThrow();
    }
    const tools = require('mailauth/lib/tools.js') as Record<string, unknown>;
    const relaxed = require('mailauth/lib/dkim/header/relaxed.js') as Record<string, unknown>;
    const syntax = require('mailauth/lib/dkim/syntax.js') as Record<string, unknown>;
    expect([typeof tools.parseHeaders, typeof tools.formatSignatureHeaderLine, typeof relaxed.relaxedHeaders]).toEqual(['function', 'function', 'function']);
    expect(syntax.DOMAIN_NAME).toBeInstanceOf(RegExp);
  });

  it('sign exactly as mailauth\'s public dkimSign does with the same key, time and header list', async () => {
    const keyDir = makeKeyDir();
    try {
      const [ed] = loadDkimKeys({ keys: [{ selector: 's1', algorithm: 'ed25519-sha256', privateKeyFile: keyDir.ed25519('ed.pem') }] });
      const message = Buffer.from('From: a@example.com\r\nTo: b@example.org\r\nSubject:  Hi \r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\r\nHello  \r\n\r\n');
      const hasher = new DkimBodyHasher();
      hasher.feed(message);
      const { headers, bodyHash } = hasher.end();
      const time = new Date('2026-11-27T10:00:00Z');
      const ours = await signMessage({ domain: 'example.com', keys: [ed!], headerBlock: headers, bodyHash, time, signedHeaders: ['from', 'to', 'subject', 'date'], overSign: false });
      const theirs = await dkimSign(message, {
        signingDomain: 'example.com', selector: 's1', privateKey: fs.readFileSync(ed!.file), signTime: time, headerList: 'Date:Subject:To:From',
        signatureData: [{ signingDomain: 'example.com', selector: 's1', privateKey: fs.readFileSync(ed!.file), algorithm: 'ed25519-sha256' }],
      });
      expect(theirs.errors).toEqual([]);
      const unfold = (s: string) => s.replace(/\r\n[ \t]+/g, ' ').replace(/\s+/g, ' ').trim();
      expect(unfold(ours), `mailauth ${pkg('mailauth').version} signs differently: review relay/dkim/mailauth-internals.ts and signer.ts`).toBe(unfold(theirs.signatures));
    } finally {
      keyDir.cleanup();
    }
  });
});

describe('relay/smtp/replies.ts: the patched smtp-server SMTPConnection', () => {
  it('still has the methods the patch wraps, and init() is the one replies.ts re-implements', () => {
    const proto = SMTPConnection.prototype as unknown as Record<string, unknown>;
    for (const m of ['send', '_getEnhancedStatusCode', '_setListeners', 'connectionReady']) expect(typeof proto[m], m).toBe('function');
    const src = sourceOf('smtp-server/lib/smtp-connection.js');
    const init = /\n {4}init\(\) \{\n[\s\S]*?\n {4}\}\n/.exec(src)?.[0].replace(/\s+/g, ' ').trim();
    // replies.ts copies this body, replacing only the fixed 100 ms early-talker delay.
    expect(init, `smtp-server ${pkg('smtp-server').version} changed SMTPConnection.init(): update the copy in relay/smtp/replies.ts`).toBe(
      'init() { // Setup event handlers for the socket this._setListeners(() => { // Check that connection limit is not exceeded '
      + "if (this._server.options.maxClients && this._server.connections.size > this._server.options.maxClients) { return this.send(421, this.name + ' Too many connected clients, try again in a moment', false); } "
      + '// Keep a small delay for detecting early talkers let readyTimer = setTimeout(() => this.connectionReady(), 100); '
      + "// Unref timer so connection init delay doesn't prevent process exit readyTimer.unref(); }); }");
    // _getEnhancedStatusCode(code, context) is what the enhanced-code override replaces
    expect(/\n {4}_getEnhancedStatusCode\(code, context\) \{/.test(src)).toBe(true);
  });

  it('still upgrades a socket to TLS with _upgrade (relay/smtp/intake.ts proxyFront, implicit TLS behind PROXY)', () => {
    expect(typeof (SMTPServer.prototype as unknown as Record<string, unknown>)._upgrade, `smtp-server ${pkg('smtp-server').version}: relay/smtp/intake.ts calls _upgrade`).toBe('function');
    expect(/\n {4}_upgrade\(socket, callback\) \{/.test(sourceOf('smtp-server')), 'smtp-server _upgrade(socket, callback)').toBe(true);
  });
});

describe('operator/runtime/list-watch.ts: client-node Watch.requestTimeoutMs', () => {
  it('is the field the watch inactivity timer reads', () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({ clusters: [{ name: 'c', server: 'https://127.0.0.1:1' }], users: [{ name: 'u' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
    const watch = new Watch(kc) as unknown as Record<string, unknown>;
    const version = pkg('@kubernetes/client-node').version;
    expect(typeof watch.requestTimeoutMs, `@kubernetes/client-node ${version}: operator/runtime/list-watch.ts sets Watch.requestTimeoutMs`).toBe('number');
    expect(sourceOf('@kubernetes/client-node/dist/watch.js'), `@kubernetes/client-node ${version} no longer times a watch out by requestTimeoutMs: the stall guard in operator/runtime/list-watch.ts is void`)
      .toMatch(/setTimeout\([\s\S]{0,200}\}, this\.requestTimeoutMs\)/);
  });
});
