// Smarthost oauth2 in the operator: the CRD fields render into the relay's auth.oauth2 with
// the Secret's values as files of the relay's own Secret, missing keys are errors naming the
// Secret and key, and the checks the render hands the controller go to a real (loopback)
// identity provider whose answer becomes the SmarthostAuthenticated condition.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { relayConfigSchema } from '../../relay/config/schema.ts';
import { OAuth2ProbeCache } from '../../relay/delivery/oauth2/probe.ts';
import { parseInternal } from '../../operator/render/domain-internal.ts';
import { decodeSecretData } from '../../operator/render/objects.ts';
import { renderRelay, type RelayInput } from '../../operator/render/relay.ts';
import { domainSecretRefs, relaySecretRefs } from '../../operator/tenancy/secret-refs.ts';
import { oauth2CheckFromSecret, smarthostAuthCondition } from '../../operator/render/smarthost-oauth2.ts';
import { renderSenderDomain } from '../../operator/render/sender-domain.ts';
import { testCert } from '../support/certs.ts';
import { startIdentityProvider, type IdentityProvider } from '../support/identity-provider.ts';
import { domainObject, relayObject } from './fixtures.ts';

const now = new Date('2025-03-01T12:00:00Z');
const app = testCert(['mailfleet-test-app']);
let idp: IdentityProvider;

beforeAll(async () => { idp = await startIdentityProvider({ clients: { 'app-1': { secret: 'right' } } }); });
afterAll(async () => { await idp?.close(); });

function input(over: Partial<RelayInput>): RelayInput {
  return { relay: relayObject('edge'), domains: [], userSecrets: new Map(), image: 'img', apis: { serviceMonitor: false, certManager: false }, now, ...over };
}

const m365 = (microsoft: Record<string, unknown>) => relayObject('edge', {
  tls: { secretName: 'edge-cert' },
  delivery: { mode: 'smarthost', smarthosts: [{ name: 'm365', host: 'smtp.office365.com', oauth2: { user: 'relay@contoso.com', secretRef: { name: 'm365-app' }, microsoft: { tenantId: 'contoso.onmicrosoft.com', clientId: 'app-1', ...microsoft } } }] },
});
const configOf = (out: ReturnType<typeof renderRelay>) => relayConfigSchema.parse(YAML.parse((out.objects.find((o) => o.kind === 'ConfigMap') as any).data['relay.yaml']));
const secretOf = (out: ReturnType<typeof renderRelay>) => decodeSecretData(out.objects.find((o) => o.kind === 'Secret') as any);

describe('smarthost oauth2 rendering', () => {
  it('a Microsoft client secret becomes a file of the relay Secret and auth.oauth2 in the config', () => {
    const relay = m365({});
    expect(relaySecretRefs(relay.spec).map((r) => r.name)).toEqual(['edge-cert', 'm365-app']);
    const out = renderRelay(input({ relay, userSecrets: new Map([['m365-app', { 'client-secret': 's3cr3t' }]]) }));
    expect(out.errors).toEqual([]);
    expect(configOf(out).delivery.smarthosts[0]!.auth).toEqual({
      user: 'relay@contoso.com',
      oauth2: {
        mechanism: 'auto', userFromSender: false,
        microsoft: { tenantId: 'contoso.onmicrosoft.com', clientId: 'app-1', scope: 'https://outlook.office365.com/.default', clientSecretFile: '/var/run/mailfleet/secrets/smarthost-0.client-secret' },
      },
    });
    expect(secretOf(out)['smarthost-0.client-secret']).toBe('s3cr3t');
    expect(out.oauth2Checks).toEqual([expect.objectContaining({ what: 'delivery.smarthosts[0] (m365)', user: 'relay@contoso.com', secrets: { clientSecret: 's3cr3t' } })]);
    // the ConfigMap carries paths, never the secret
    expect(JSON.stringify(out.objects.find((o) => o.kind === 'ConfigMap'))).not.toContain('s3cr3t');
  });

  it('a certificate credential takes tls.crt and tls.key (a kubernetes.io/tls Secret), and a missing key names Secret and key', () => {
    const relay = m365({ credential: 'certificate' });
    expect(renderRelay(input({ relay, userSecrets: new Map([['m365-app', { 'tls.crt': app.cert }]]) })).errors)
      .toEqual(['delivery.smarthosts[0] (m365) oauth2: Secret m365-app has no key tls.key']);
    expect(renderRelay(input({ relay })).errors[0]).toBe('delivery.smarthosts[0] (m365) oauth2: Secret m365-app not found');
    const out = renderRelay(input({ relay, userSecrets: new Map([['m365-app', { 'tls.crt': app.cert, 'tls.key': app.key }]]) }));
    expect(out.errors).toEqual([]);
    expect(configOf(out).delivery.smarthosts[0]!.auth!.oauth2!.microsoft).toMatchObject({
      certificateFile: '/var/run/mailfleet/secrets/smarthost-0.tls.crt', privateKeyFile: '/var/run/mailfleet/secrets/smarthost-0.tls.key',
    });
  });

  it('a SenderDomain routes through Google with its own service account; a refresh token without a client secret is a public client', () => {
    const internal = parseInternal({});
    const sd = domainObject('acme', {
      domain: 'acme.test', relayRef: { name: 'edge' },
      smarthost: { host: 'smtp.gmail.com', port: 465, tls: 'implicit', oauth2: { user: 'relay@acme.test', userFromSender: true, secretRef: { name: 'sa' }, google: {} } },
    });
    const relay = relayObject('edge', {
      tls: { secretName: 'edge-cert' },
      delivery: { mode: 'smarthost', smarthosts: [{ host: 'smtp.example.net', oauth2: { user: 'ops@example.net', secretRef: { name: 'rt' }, refreshToken: { clientId: 'c1' } } }] },
    });
    expect(relaySecretRefs(relay.spec).map((r) => r.name)).toEqual(['edge-cert', 'rt']);
    expect(domainSecretRefs(sd.spec)).toEqual([{ field: 'smarthost.oauth2.secretRef', name: 'sa' }]);
    // the relay's Secrets and the SenderDomain's come apart: each is read in its owner's namespace
    const userSecrets = new Map<string, Record<string, string>>([['rt', { 'refresh-token': '1//r' }]]);
    const domainSecrets = (sa: string) => new Map<string, Record<string, string>>([['sa', { 'service-account.json': sa }]]);
    // a key the relay could not use leaves that domain out (the relay renders for the others)
    const unusable = renderRelay(input({ relay, domains: [{ sd, internal, secrets: domainSecrets('{"client_email":"x"}') }], userSecrets }));
    expect(unusable.errors).toEqual([]);
    expect(configOf(unusable).domains).toEqual([]);
    expect(unusable.leftOut).toEqual([{ senderDomain: 'mail/acme', domain: 'acme.test', errors: ['SenderDomain acme smarthost oauth2: Secret sa: the service account key has no client_email or private_key'] }]);
    // the domain's Secret among the relay's is not the domain's: not found
    expect(renderRelay(input({ relay, domains: [{ sd, internal }], userSecrets: new Map([...userSecrets, ...domainSecrets('{}')]) })).leftOut[0]?.errors)
      .toEqual(['SenderDomain acme smarthost oauth2: Secret sa not found']);
    const out = renderRelay(input({ relay, domains: [{ sd, internal, secrets: domainSecrets(JSON.stringify({ client_email: 'relay@p.iam.gserviceaccount.com', private_key: app.key })) }], userSecrets }));
    expect(out.errors).toEqual([]);
    const cfg = configOf(out);
    expect(cfg.domains[0]!.smarthost!.auth!.oauth2).toMatchObject({ userFromSender: true, google: { serviceAccountKeyFile: '/var/run/mailfleet/secrets/sd_mail_acme_smarthost.service-account.json', scope: 'https://mail.google.com/' } });
    expect(cfg.delivery.smarthosts[0]!.auth!.oauth2!.refreshToken).toEqual({ clientId: 'c1', refreshTokenFile: '/var/run/mailfleet/secrets/smarthost-0.refresh-token', tokenUrl: 'https://oauth2.googleapis.com/token' });
  });
});

describe('SmarthostAuthenticated condition', () => {
  const checksFor = (secret: string) => {
    const relay = m365({ tokenUrl: idp.url });
    const out = renderRelay(input({ relay, userSecrets: new Map([['m365-app', { 'client-secret': secret }]]) }));
    // the loopback provider's certificate is from the test CA; a real one is publicly trusted
    return out.oauth2Checks.map((c) => ({ ...c, secrets: { ...c.secrets, ca: testCert().cert } }));
  };
  const conditionFor = async (probes: OAuth2ProbeCache, secret: string) =>
    smarthostAuthCondition(await Promise.all(checksFor(secret).map(async (c) => ({ what: c.what, result: await probes.check(c.config, c.secrets, c.user) }))));

  it('carries the identity provider\'s words when it refuses, True once the Secret is right, and nothing without oauth2', async () => {
    const probes = new OAuth2ProbeCache();
    expect(await conditionFor(probes, 'wrong')).toEqual({
      type: 'SmarthostAuthenticated', status: 'False', reason: 'TokenRefused',
      message: `delivery.smarthosts[0] (m365): ${idp.url}: invalid_client: AADSTS7000215: Invalid client secret provided. (mail for these smarthosts is deferred, not bounced)`,
    });
    expect(await conditionFor(probes, 'right')).toMatchObject({ status: 'True', reason: 'TokenIssued' });
    idp.setDown(true);
    try {
      expect(await conditionFor(new OAuth2ProbeCache(), 'right')).toMatchObject({ status: 'False', reason: 'TokenEndpointUnavailable' });
    } finally {
      idp.setDown(false);
    }
    expect(smarthostAuthCondition([])).toBeUndefined();
  });
});

describe('SenderDomain smarthost check', () => {
  const sd = domainObject('acme', {
    domain: 'acme.test', relayRef: { name: 'edge' },
    smarthost: { name: 'm365', host: 'smtp.office365.com', oauth2: { user: 'relay@acme.test', secretRef: { name: 'acme-m365' }, microsoft: { tenantId: 't', clientId: 'app-1', tokenUrl: 'https://127.0.0.1:1/token' } } },
  });
  const oauth2 = (sd.spec as any).smarthost.oauth2;

  it('a missing Secret or key is a failed check naming it; the condition lands in the SenderDomain status', async () => {
    const missing = oauth2CheckFromSecret(oauth2, undefined, 'smarthost m365');
    expect(missing).toMatchObject({ what: 'smarthost m365', result: { ok: false, kind: 'invalid', message: 'smarthost m365 oauth2: Secret acme-m365 not found' } });
    expect(oauth2CheckFromSecret(oauth2, { other: 'x' }, 'smarthost m365')).toMatchObject({ result: { message: 'smarthost m365 oauth2: Secret acme-m365 has no key client-secret' } });
    const auth = smarthostAuthCondition(['result' in missing ? missing : { what: '', result: { ok: true, message: '', checkedAt: 0 } }])!;
    expect(auth).toMatchObject({ status: 'False', reason: 'CredentialUnusable' });
    const out = renderSenderDomain({ sd, relay: relayObject('edge'), internal: parseInternal({}), host: 'h', port: 587, now, smarthostAuth: auth });
    expect(out.status.conditions!.find((c) => c.type === 'SmarthostAuthenticated')).toMatchObject({ status: 'False', reason: 'CredentialUnusable', message: expect.stringContaining('Secret acme-m365 not found') });
  });

  it('a complete Secret gives a check the probe can run', () => {
    const c = oauth2CheckFromSecret(oauth2, { 'client-secret': 'v' }, 'smarthost m365');
    expect(c).toMatchObject({ what: 'smarthost m365', user: 'relay@acme.test', secrets: { clientSecret: 'v' }, config: { microsoft: { clientId: 'app-1' } } });
  });
});
