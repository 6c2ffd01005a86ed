// The config contract: errors name the field path; defaults are filled; the CLI's
// `config check` and `config schema` work on real files.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig, parseConfigText, ConfigError } from '../../relay/config/load.ts';
import { parseDuration } from '../../relay/util/duration.ts';
import { repoRoot, tempDir } from '../support/relay-harness.ts';

const minimal = {
  listeners: [{ name: 'plain', port: 2525, mode: 'plain' }],
  trustedNetworks: [{ cidrs: ['10.0.0.0/8'], domains: ['example.com'] }],
  domains: [{ domain: 'example.com' }],
};

function issues(raw: unknown): string[] {
  try {
    parseConfig(raw);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  return [];
}

describe('relay config', () => {
  it('fills defaults: 5 day lifetime, MX delivery, 25 MB limit', () => {
    const cfg = parseConfig(minimal);
    expect(cfg.queue.maxLifetime).toBe(5 * 86_400_000);
    expect(cfg.delivery.mode).toBe('mx');
    expect(cfg.limits.maxMessageSize).toBe(25 * 1024 * 1024);
    expect(cfg.listeners[0]!.host).toBe('0.0.0.0');
  });

  it('validates the TLS policy fields: MTA-STS on by default, per-destination tls named in errors', () => {
    const cfg = parseConfig(minimal);
    expect(cfg.delivery.mtaSts).toEqual({ enabled: true, port: 443, fetchTimeoutMs: 10_000, recheckIntervalMs: 60_000, errorRetryMs: 300_000 });
    expect(issues({ ...minimal, delivery: { destinations: { 'gmail.com': { tls: 'requir' } }, mtaSts: { port: 0, enforce: true }, mx: { caFile: '' } } })).toEqual(expect.arrayContaining([
      expect.stringMatching(/^delivery\.destinations\.gmail\.com\.tls: /),
      expect.stringMatching(/^delivery\.mtaSts\.port: /),
      expect.stringMatching(/^delivery\.mtaSts\.enforce: unknown field/),
      expect.stringMatching(/^delivery\.mx\.caFile: /),
    ]));
    const smarthost = (tls: string, extra: object) => ({
      ...minimal, delivery: { mode: 'smarthost', smarthosts: [{ name: 'relay', host: 'smtp.example.net', tls: 'none', requireTls: false }], destinations: { relay: { tls, ...extra } } },
    });
    expect(issues(smarthost('require', {}))).toEqual([expect.stringMatching(/^delivery\.destinations\.relay\.tls: .*'require' cannot be met by smarthost relay, whose tls is 'none'/)]);
    expect(issues(smarthost('opportunistic', {}))).toEqual([]);
  });

  it('names the field path of every problem', () => {
    expect(issues({ ...minimal, listeners: [{ name: 'Bad Name', port: 70000, mode: 'ftp' }] })).toEqual(expect.arrayContaining([
      expect.stringMatching(/^listeners\.0\.name: /),
      expect.stringMatching(/^listeners\.0\.port: /),
      expect.stringMatching(/^listeners\.0\.mode: /),
    ]));
    expect(issues({ ...minimal, trustedNetworks: [{ cidrs: ['10.0.0.0/33'], domains: ['-bad-'] }] })).toEqual(expect.arrayContaining([
      expect.stringMatching(/^trustedNetworks\.0\.cidrs\.0: must be an IP address or CIDR/),
      expect.stringMatching(/^trustedNetworks\.0\.domains\.0: must be a domain name/),
    ]));
    expect(issues({ ...minimal, queue: { maxLifetime: 'forever' } })).toEqual([expect.stringMatching(/^queue\.maxLifetime: .*not a duration/)]);
    // a stray slash is a typo, never /0 (which would trust every address)
    for (const typo of ['10.0.0.0/', '10.0.0.0/8/8', '10.0.0.0/ 8', '10.0.0.0/+8']) {
      expect(issues({ ...minimal, trustedNetworks: [{ cidrs: [typo], domains: ['example.com'] }] }), typo)
        .toEqual([expect.stringMatching(/^trustedNetworks\.0\.cidrs\.0: must be an IP address or CIDR/)]);
    }
  });

  it('refuses a misspelt key, naming it, at any level', () => {
    expect(issues({ ...minimal, ratelimits: { perLogin: { perMinute: 10 } } })).toEqual(['ratelimits: unknown field (check its spelling and level)']);
    expect(issues({ ...minimal, delivery: { maxConnectionPerDestination: 5 } }))
      .toEqual(['delivery.maxConnectionPerDestination: unknown field (check its spelling and level)']);
    expect(issues({ ...minimal, listeners: [{ ...minimal.listeners[0], proxyprotocol: true }] }))
      .toEqual(['listeners.0.proxyprotocol: unknown field (check its spelling and level)']);
    expect(issues({ ...minimal, domains: [{ domain: 'example.com', dkim: { keys: [{ selector: 's', algorithm: 'rsa-sha256', privateKeyFile: '/k', private: 1 }] } }] }))
      .toEqual(['domains.0.dkim.keys.0.private: unknown field (check its spelling and level)']);
    expect(issues({ ...minimal, queue: { retries: ['1m'] }, http: { prot: 1 } })).toEqual([
      'queue.retries: unknown field (check its spelling and level)',
      'http.prot: unknown field (check its spelling and level)',
    ]);
  });

  it('refuses unsafe combinations: TLS listeners without a certificate, a plain listener without trusted networks', () => {
    expect(issues({ listeners: [{ name: 's', port: 587, mode: 'starttls' }] })).toEqual([expect.stringMatching(/^tls: TLS listeners need/)]);
    expect(issues({ listeners: [{ name: 'p', port: 25, mode: 'plain' }] })).toEqual([expect.stringMatching(/^trustedNetworks: a plain listener needs/)]);
    expect(issues({ ...minimal, listeners: [{ name: 'lb', port: 25, mode: 'plain', proxyProtocol: true }] }))
      .toEqual([expect.stringMatching(/^listeners\.0\.proxyFrom: proxyProtocol needs proxyFrom/)]);
    expect(issues({ ...minimal, domains: [{ domain: 'other.com' }] })).toEqual([expect.stringMatching(/^trustedNetworks\.0\.domains\.0: domain example\.com is not served/)]);
  });

  it('serves no unchecked domain: logins and trusted networks may only name served domains, even when domains is empty', () => {
    // Before, an empty domains list switched the check (and with it sender policy and From
    // alignment) off: a trusted network could send as anyone's domain.
    expect(issues({ ...minimal, domains: [] })).toEqual([expect.stringMatching(/^trustedNetworks\.0\.domains\.0: domain example\.com is not served by this relay: list it under domains/)]);
    expect(issues({ ...minimal, domains: undefined })).toEqual([expect.stringMatching(/^trustedNetworks\.0\.domains\.0: /)]);
    expect(issues({ ...minimal, credentials: [{ username: 'a', passwordHash: 'x', domains: ['example.com', 'someone-else.com'] }] }))
      .toEqual([expect.stringMatching(/^credentials\.0\.domains\.1: domain someone-else\.com is not served/)]);
  });

  it('the SIGTERM hand-off: off by default, needs peers, a misspelt key is refused, peer names and DNS servers checked', () => {
    const handoff = { port: 2526, tokenFile: '/run/fleet.token', peers: ['relay-headless.mail.svc:2526'] };
    const withTls = { ...minimal, tls: { selfSigned: true } };
    expect(parseConfig({ ...withTls, handoff }).handoff).toMatchObject({ onShutdown: false, connections: 4 });
    expect(parseConfig({ ...withTls, handoff: { ...handoff, onShutdown: true, dnsServers: ['127.0.0.1:5353'] } }).handoff).toMatchObject({ onShutdown: true, dnsServers: ['127.0.0.1:5353'] });
    expect(issues({ ...withTls, handoff: { ...handoff, peers: [], onShutdown: true } })).toEqual([expect.stringMatching(/^handoff\.onShutdown: onShutdown needs peers/)]);
    expect(issues({ ...withTls, handoff: { ...handoff, onShutDown: true } }).join('\n')).toMatch(/handoff.*onShutDown/);
    expect(issues({ ...withTls, handoff: { ...handoff, peers: ['evil host:25'], dnsServers: ['dns.example:53'] } })).toEqual(expect.arrayContaining([
      expect.stringMatching(/^handoff\.peers\.0: /), expect.stringMatching(/^handoff\.dnsServers\.0: /),
    ]));
  });

  it('refuses a zero retry step or lifetime, which would retry a deferring destination in a tight loop', () => {
    expect(issues({ ...minimal, queue: { retrySchedule: ['1m', '0s'] } })).toEqual([expect.stringMatching(/^queue\.retrySchedule\.1: /)]);
    expect(issues({ ...minimal, queue: { retrySchedule: [0] } })).toEqual([expect.stringMatching(/^queue\.retrySchedule\.0: /)]);
    expect(issues({ ...minimal, queue: { maxLifetime: '0s' } })).toEqual([expect.stringMatching(/^queue\.maxLifetime: /)]);
    expect(parseConfig({ ...minimal, queue: { retrySchedule: ['200ms'] } }).queue.retrySchedule).toEqual([200]);
  });

  it('reports YAML syntax errors as config errors', () => {
    expect(() => parseConfigText('listeners: [', 'x.yaml', '/')).toThrow(/invalid config x\.yaml:\n {2}YAML: /);
  });

  it('resolves *File paths against the config file directory', () => {
    const cfg = parseConfig({ ...minimal, tls: { certFile: 'certs/a.crt', keyFile: 'certs/a.key' } }, 'x', '/etc/mailfleet');
    expect(cfg.tls.certFile).toBe('/etc/mailfleet/certs/a.crt');
  });

  it('parses durations', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('5d')).toBe(432_000_000);
    expect(parseDuration(2)).toBe(2000);
    expect(() => parseDuration('5 weeks')).toThrow(/not a duration/);
  });

  it('`mailfleet config check` exits 1 with the errors, 0 on a good file; `config schema` prints JSON Schema', async () => {
    const run = (args: string[]) => promisify(execFile)(process.execPath, [path.join(repoRoot, 'bin/mailfleet.ts'), ...args], { encoding: 'utf8' });
    const dir = tempDir();
    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, 'listeners:\n  - name: x\n    port: -1\n    mode: plain\n');
    const err = await run(['config', 'check', bad]).then(() => undefined, (e: { code: number; stderr: string }) => e);
    expect(err?.code).toBe(1);
    expect(err?.stderr).toMatch(/listeners\.0\.port: /);
    expect((await run(['config', 'check', path.join(repoRoot, 'examples/relay.yaml'), '--schema-only'])).stdout).toMatch(/ok/);
    // A full check reads the files the config names.
    const missing = await run(['config', 'check', path.join(repoRoot, 'examples/relay.yaml')]).then(() => undefined, (e: { code: number; stderr: string }) => e);
    expect(missing?.stderr).toMatch(/credentials\.0\.passwordHashFile: cannot read/);
    const good = path.join(dir, 'good.yaml');
    fs.writeFileSync(path.join(dir, 'alice.hash'), 'scrypt$16384$8$1$c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n');
    fs.writeFileSync(good, 'listeners: [{name: s, port: 587, mode: starttls}]\ntls: {selfSigned: true}\ncredentials: [{username: alice, passwordHashFile: alice.hash, domains: [example.com]}]\ndomains: [{domain: example.com}]\n');
    expect((await run(['config', 'check', good])).stdout).toMatch(/ok/);
    const schema = JSON.parse((await run(['config', 'schema'])).stdout) as { properties: Record<string, unknown> };
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['listeners', 'delivery', 'domains', 'queue']));
  });
});
