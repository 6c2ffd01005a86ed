// The relay's Secret holds every attached tenant's files: their names must never meet
// (operator/render/relay-secret-keys.ts), one tenant's broken Secret leaves out that tenant
// alone, and a name written twice is refused rather than overwritten. Pure renders; the same
// attacks on a real control plane, with a relay logging in and signing from what was
// rendered: test/operator/tenant-files.test.ts.
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { DomainInternal } from '../../operator/render/domain-internal.ts';
import { decodeSecretData, type SenderDomain } from '../../operator/render/objects.ts';
import { redisKeyPrefix } from '../../operator/render/relay-config.ts';
import { DOMAIN_FILES_MAX, budgetRefusal, domainEntryRefusal } from '../../operator/render/relay-domains.ts';
import { OBJECT_DATA_MAX } from '../../operator/render/relay-secret-files.ts';
import { RELAY_FILES, SECRET_KEY_MAX, domainFileOwner, domainFiles, isDomainFile, validSecretKey } from '../../operator/render/relay-secret-keys.ts';
import { renderRelay, type AttachedDomain, type RelayInput } from '../../operator/render/relay.ts';
import { SELECTOR_RE } from '../../operator/api/common.ts';
import { eventName } from '../../operator/runtime/apply.ts';
import { parseDomain, validDomains } from '../../operator/controllers/specs.ts';
import { domainObject, relayObject, domainInternal, RENDER_NOW } from './fixtures.ts';

const now = RENDER_NOW;
const SECRETS = '/var/run/mailfleet/secrets/';

const internalFor = domainInternal;

const relay = relayObject('edge', {
  tls: { secretName: 'edge-cert' }, senderDomains: { namespaces: { from: 'All' }, requireVerification: false },
  delivery: { mode: 'smarthost', smarthosts: [{ host: 'smtp.platform.example', credentialsSecretRef: { name: 'platform-login' } }] },
});
const platformLogin = new Map([['platform-login', { username: 'platform', password: 'platform-pw' }]]);

function input(domains: AttachedDomain[], over: Partial<RelayInput> = {}): RelayInput {
  return { relay, domains, userSecrets: platformLogin, image: 'img', apis: { serviceMonitor: false, certManager: false }, now, ...over };
}

const rendered = (i: RelayInput) => {
  const out = renderRelay(i);
  expect(out.errors).toEqual([]);
  const secret = decodeSecretData(out.objects.find((o) => o.kind === 'Secret') as { data?: Record<string, string> });
  const file = (p: string | undefined) => secret[p!.slice(SECRETS.length)];
  return { out, cfg: out.config!, secret, file };
};
const entry = (cfg: NonNullable<ReturnType<typeof renderRelay>['config']>, domain: string) => cfg.domains!.find((d) => d.domain === domain)!;
const login = (cfg: NonNullable<ReturnType<typeof renderRelay>['config']>, user: string) => cfg.credentials!.find((c) => c.username === user)!;
const passwordFile = (smarthost: { auth?: unknown } | undefined) => (smarthost!.auth as { passwordFile: string }).passwordFile;

describe('file names in the relay Secret', () => {
  it('never meet: the old collisions (a.b here vs b in namespace a; a-b + c vs a + b-c) get apart names', () => {
    expect(domainFileOwner('mail', 'x.y')).not.toBe(domainFileOwner('x', 'y'));
    expect(domainFiles('mail', 'x.y').login).toBe('sd_mail_x.y_login.hash');
    expect(domainFiles('x', 'y').login).toBe('sd_x_y_login.hash');
    expect(domainFiles('t', 'a-b').dkim('c')).not.toBe(domainFiles('t', 'a').dkim('b-c'));
    expect(domainFiles('t', 'a.b').dkim('c')).not.toBe(domainFiles('t', 'a').dkim('b.c'));
    // `_` is in no namespace, name or selector: the separator cannot be forged
    expect(new RegExp(SELECTOR_RE).test('a_b')).toBe(false);
    // the relay's own files live apart from every SenderDomain's
    for (const f of [RELAY_FILES.smarthost(0), RELAY_FILES.redisPassword, RELAY_FILES.webhookSecret(0), RELAY_FILES.fleetToken]) expect(isDomainFile(f), f).toBe(false);
    expect(isDomainFile(domainFiles('mail', '0').smarthost)).toBe(true);
  });

  it('fit a Secret key for the longest names (a readable prefix and a hash of namespace/name), and stay apart', () => {
    const ns = 'n'.repeat(63);
    const long = `${'a'.repeat(250)}.bc`; // 253 characters, a valid object name
    const twin = `${'a'.repeat(250)}.bd`;
    const selector = `${'s'.repeat(61)}.t`.slice(0, 63);
    for (const name of [long, twin, 'short']) {
      const f = domainFiles(ns, name);
      for (const key of [f.login, f.dkim(selector), `${f.smarthost}.password`, `${f.smarthost}.service-account.json`]) {
        expect(key.length, key).toBeLessThanOrEqual(SECRET_KEY_MAX);
        expect(validSecretKey(key), key).toBe(true);
      }
    }
    expect(domainFileOwner(ns, long)).toMatch(new RegExp(`^sdh_[0-9a-f]{32}_${ns}_a{50}`));
    expect(domainFileOwner(ns, long)).not.toBe(domainFileOwner(ns, twin));
    expect(domainFileOwner(ns, long)).toBe(domainFileOwner(ns, long));
  });

  it('render apart: mail/x.y and x/y each sign with their own key and log in with their own hash', () => {
    const owner = domainObject('x.y', { domain: 'owner.test', relayRef: { name: 'edge' } }, 'mail');
    const tenant = domainObject('y', { domain: 'tenant.test', relayRef: { name: 'edge', namespace: 'mail' } }, 'x');
    const ownerInternal = internalFor('mailfleet', 'scrypt$16384$8$1$b3duZXI=$b3duZXI=');
    const tenantInternal = internalFor('mailfleet', 'scrypt$16384$8$1$dGVuYW50$dGVuYW50');
    const { cfg, file } = rendered(input([{ sd: owner, internal: ownerInternal }, { sd: tenant, internal: tenantInternal }]));
    expect(file(login(cfg, 'owner.test').passwordHashFile)).toBe(ownerInternal.passwordHash);
    expect(file(login(cfg, 'tenant.test').passwordHashFile)).toBe(tenantInternal.passwordHash);
    expect(file(entry(cfg, 'owner.test').dkim!.keys[0]!.privateKeyFile)).toBe(ownerInternal.pems.mailfleet);
    expect(file(entry(cfg, 'tenant.test').dkim!.keys[0]!.privateKeyFile)).toBe(tenantInternal.pems.mailfleet);
  });

  it("render apart: a SenderDomain named 0 with a smarthost never takes the relay's smarthosts[0] login", () => {
    const zero = domainObject('0', { domain: 'zero.test', relayRef: { name: 'edge' }, smarthost: { host: 'smtp.zero.example', credentialsSecretRef: { name: 'zero-login' } } }, 'mail');
    const { cfg, file } = rendered(input([{ sd: zero, internal: internalFor('mailfleet'), secrets: new Map([['zero-login', { username: 'zero', password: 'zero-pw' }]]) }]));
    expect(file(passwordFile(cfg.delivery!.smarthosts![0]!))).toBe('platform-pw');
    expect(file(passwordFile(entry(cfg, 'zero.test').smarthost))).toBe('zero-pw');
    expect(cfg.delivery!.smarthosts![0]!.auth).toMatchObject({ passwordFile: `${SECRETS}smarthost-0.password` });
  });

  it('a name written twice with other contents is refused, not overwritten: the second writer is left out', () => {
    const sd = domainObject('app', { domain: 'app.test', relayRef: { name: 'edge' } }, 'mail');
    const first = internalFor('mailfleet');
    // the same SenderDomain twice (claims never let this happen): its files would be written twice
    const twin = { ...sd, spec: { ...sd.spec, domain: 'zzz.test', credentials: { ...sd.spec.credentials, username: 'other' } } } as SenderDomain;
    const { out, cfg, file } = rendered(input([{ sd, internal: first }, { sd: twin, internal: internalFor('mailfleet') }]));
    expect(cfg.domains!.map((d) => d.domain)).toEqual(['app.test']);
    expect(file(entry(cfg, 'app.test').dkim!.keys[0]!.privateKeyFile)).toBe(first.pems.mailfleet);
    expect(out.leftOut).toEqual([{ senderDomain: 'mail/app', domain: 'zzz.test', errors: [expect.stringMatching(/file sd_mail_app_dkim_mailfleet\.pem of the relay's Secret is already written with other contents; refused rather than overwritten/)] }]);
  });
});

describe("one tenant's broken Secret", () => {
  const good = domainObject('good', { domain: 'good.test', relayRef: { name: 'edge' } }, 'mail');
  const broken = domainObject('broken', {
    domain: 'broken.test', relayRef: { name: 'edge', namespace: 'mail' },
    smarthost: { host: 'smtp.broken.example', credentialsSecretRef: { name: 'half' } },
  }, 'x');
  const half = new Map([['half', { username: 'u' }]]);

  it('leaves out that domain alone; the relay renders for the others and counts only what it serves', () => {
    const { out, cfg } = rendered(input([{ sd: good, internal: internalFor('mailfleet') }, { sd: broken, internal: internalFor('mailfleet'), secrets: half }]));
    expect(cfg.domains!.map((d) => d.domain)).toEqual(['good.test']);
    expect(cfg.credentials!.map((c) => c.username)).toEqual(['good.test']);
    expect(out.leftOut).toEqual([{ senderDomain: 'x/broken', domain: 'broken.test', errors: ['SenderDomain broken smarthost credentials: Secret half has no key password'] }]);
    // none of its files are in the Secret
    const secret = decodeSecretData(out.objects.find((o) => o.kind === 'Secret') as { data?: Record<string, string> });
    expect(Object.keys(secret).filter((k) => k.startsWith('sd_x_broken_'))).toEqual([]);
  });

  it('is reported on its SenderDomain, by the same code the relay renders with', () => {
    expect(domainEntryRefusal({ sd: broken, internal: internalFor('mailfleet'), secrets: half }, now)).toEqual({
      reason: 'SecretUnusable', message: 'not served: SenderDomain broken smarthost credentials: Secret half has no key password',
    });
    expect(domainEntryRefusal({ sd: broken, internal: internalFor('mailfleet'), secrets: new Map([['half', { username: 'u', password: 'p' }]]) }, now)).toBeUndefined();
  });

  it('an oversized smarthost Secret leaves out that domain alone (it would fill what every tenant shares)', () => {
    const fat = new Map([['half', { username: 'u', password: 'p'.repeat(DOMAIN_FILES_MAX) }]]);
    const { out, cfg } = rendered(input([{ sd: good, internal: internalFor('mailfleet') }, { sd: broken, internal: internalFor('mailfleet'), secrets: fat }]));
    expect(cfg.domains!.map((d) => d.domain)).toEqual(['good.test']);
    expect(out.leftOut[0]?.errors[0]).toMatch(/^its files in the relay's Secret would take \d+ bytes, more than 32768/);
    expect(domainEntryRefusal({ sd: broken, internal: internalFor('mailfleet'), secrets: fat }, now)?.reason).toBe('SecretUnusable');
  });

  it("many tenants filling the Secret past what the API server stores: the newest are left out, the relay still renders, the oldest are served", () => {
    const domains = Array.from({ length: 40 }, (_, i) => ({
      sd: domainObject(`t${String(i).padStart(2, '0')}`, {
        domain: `t${i}.test`, relayRef: { name: 'edge', namespace: 'mail' },
        smarthost: { host: 'smtp.t.example', credentialsSecretRef: { name: 'login' } },
      }, `ns${i}`, `2025-01-01T00:00:${String(i).padStart(2, '0')}Z`),
      internal: internalFor('mailfleet'),
      secrets: new Map([['login', { username: 'u', password: 'p'.repeat(DOMAIN_FILES_MAX - 2048) }]]),
    }));
    const { out, cfg, secret } = rendered(input(domains.reverse()));
    const size = Object.entries(secret).reduce((n, [k, v]) => n + k.length + v.length, 0);
    expect(size).toBeLessThanOrEqual(OBJECT_DATA_MAX);
    const served = cfg.domains!.map((d) => d.domain);
    expect(served.length).toBeGreaterThan(20);
    expect(out.leftOut.length).toBe(40 - served.length);
    // by age: every one served is older than every one left out
    const index = (d: string) => Number(d.slice(1, -5));
    expect(Math.max(...served.map(index))).toBeLessThan(Math.min(...out.leftOut.map((l) => index(l.domain))));
    expect(out.leftOut[0]!.errors).toEqual([`the relay's Secret would pass the ${OBJECT_DATA_MAX} bytes the API server stores; SenderDomains are served oldest first`]);
    // marked as such, for the relay's status.overBudgetSenderDomains and their own SecretBudgetExceeded
    expect(out.leftOut.every((l) => l.overBudget)).toBe(true);
    expect(budgetRefusal('mail/edge')).toMatchObject({ reason: 'SecretBudgetExceeded' });
    expect(budgetRefusal('mail/edge').message).toMatch(/^not served: EmailRelay mail\/edge has no room left .* at most 1032192 bytes \(1 MiB − 16 KiB.* at most 32768 per SenderDomain/);
  });

  it('a DKIM key the relay would refuse (RSA under 1024 bits) leaves out that domain, not the whole config', () => {
    const weak = generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const internal: DomainInternal = {
      dkim: { keys: [{ selector: 'old', algorithm: 'rsa-sha256', generation: 1, publishedAt: now.toISOString(), activeAt: now.toISOString(), external: true }] },
      pems: { old: weak },
    };
    const weakSd = domainObject('weak', { domain: 'weak.test', relayRef: { name: 'edge', namespace: 'mail' } }, 'x');
    const { out, cfg } = rendered(input([{ sd: good, internal: internalFor('mailfleet') }, { sd: weakSd, internal }]));
    expect(cfg.domains!.map((d) => d.domain)).toEqual(['good.test']);
    expect(out.leftOut[0]?.errors).toEqual([expect.stringMatching(/selector old\): RSA key of 512 bits is too short; RFC 8301 requires at least 1024$/)]);
  });

  it("the relay's own broken Secret still stops the relay's render", () => {
    const out = renderRelay(input([{ sd: good, internal: internalFor('mailfleet') }], { userSecrets: new Map([['platform-login', { username: 'platform' }]]) }));
    expect(out.errors).toEqual(['delivery.smarthosts[0] credentials: Secret platform-login has no key password']);
    expect(out.objects).toEqual([]);
  });
});

describe('other names derived from what a tenant chooses', () => {
  const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

  it('relays sharing one Redis get key prefixes none of which starts with another', () => {
    const relays = [relayObject('edge', {}, 'mail'), relayObject('edge', {}, 'team'), relayObject('edge.a', {}, 'mail'), relayObject('e', {}, 'mail')];
    const prefixes = relays.map(redisKeyPrefix);
    expect(prefixes[0]).toBe('mailfleet:mail/edge:');
    for (const a of prefixes) for (const b of prefixes) if (a !== b) expect(b.startsWith(a), `${a} / ${b}`).toBe(false);
    // nor the relay's own default (a relay run without the operator)
    for (const p of prefixes) expect(p.startsWith('mailfleet:rl:')).toBe(false);
    const withRedis = relayObject('edge', { tls: { secretName: 'edge-cert' }, redis: { url: 'redis://redis.mail.svc:6379' } }, 'team');
    expect(renderRelay(input([], { relay: withRedis })).config!.redis).toEqual({ url: 'redis://redis.mail.svc:6379', keyPrefix: 'mailfleet:team/edge:' });
  });

  it("a tenant's smarthost is named by its SenderDomain (metrics, /status, destinations): never the platform's name or another tenant's", () => {
    const h = { host: 'smtp.office365.com', credentialsSecretRef: { name: 'login' } };
    const a = domainObject('app', { domain: 'a.test', relayRef: { name: 'edge', namespace: 'mail' }, smarthost: h }, 'team-a');
    const b = domainObject('app', { domain: 'b.test', relayRef: { name: 'edge', namespace: 'mail' }, smarthost: { ...h, name: 'platform' } }, 'team-b');
    const login = new Map([['login', { username: 'u', password: 'p' }]]);
    const named = relayObject('edge', { ...relay.spec, delivery: { mode: 'smarthost', smarthosts: [{ name: 'platform', host: 'smtp.platform.example', credentialsSecretRef: { name: 'platform-login' } }] } });
    const { cfg } = rendered(input([{ sd: a, internal: internalFor('mailfleet'), secrets: login }, { sd: b, internal: internalFor('mailfleet'), secrets: login }], { relay: named }));
    expect(cfg.delivery!.smarthosts![0]!.name).toBe('platform');
    expect(entry(cfg, 'a.test').smarthost!.name).toBe('team-a/app/smtp.office365.com');
    expect(entry(cfg, 'b.test').smarthost!.name).toBe('team-b/app/platform');
  });

  it('an Event name fits a DNS subdomain for the longest object names', () => {
    for (const name of ['short', 'a'.repeat(253), `${'a'.repeat(236)}-${'b'.repeat(16)}`, `${'a'.repeat(230)}.${'b'.repeat(22)}`]) {
      const e = eventName(name);
      expect(e.length, name).toBeLessThanOrEqual(253);
      expect(e, name).toMatch(DNS_SUBDOMAIN);
      expect(e.startsWith(name.slice(0, 200))).toBe(true);
    }
    expect(eventName('x')).not.toBe(eventName('x'));
  });

  it('a SenderDomain whose name cannot label its Secrets (over 63 characters) is refused whole and claims nothing', () => {
    const long = domainObject('a'.repeat(64), { domain: 'long.test', relayRef: { name: 'edge' } });
    expect(parseDomain(long)).toEqual({ error: expect.stringMatching(/^metadata\.name: .*at most 63 characters \(this one has 64\)/) });
    expect(validDomains([long])).toEqual([]);
    expect('sd' in parseDomain(domainObject('a'.repeat(63), { domain: 'ok.test', relayRef: { name: 'edge' } }))).toBe(true);
    // its relay's name labels its Secrets too
    expect(parseDomain(domainObject('short', { domain: 'r.test', relayRef: { name: 'r'.repeat(64) } }))).toEqual({ error: expect.stringMatching(/^relayRef\.name: .*this one has 64$/) });
  });
});
