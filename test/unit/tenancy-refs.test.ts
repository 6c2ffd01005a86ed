// What the operator checks in a spec before it renders anything of it (operator/tenancy):
// every Secret reference, with the field that names it (the consent check and the Secret
// watch's mapping both depend on this list being complete), and every outbound target the
// relay would never connect to. Pure; the cluster tier (test/operator/tenancy.test.ts)
// attacks them end to end.
import { describe, expect, it } from 'vitest';
import { emailRelaySpec } from '../../operator/api/emailrelay.ts';
import { senderDomainSpec } from '../../operator/api/senderdomain.ts';
import { domainTargetRefusals, hostRefusal, relayTargetRefusals, urlRefusal } from '../../operator/tenancy/outbound-targets.ts';
import { domainRelaySecretRefs, domainSecretRefs, relaySecretRefs } from '../../operator/tenancy/secret-refs.ts';

describe('Secret references', () => {
  it('lists every Secret an EmailRelay names, with its field; the TLS Secret as mounted', () => {
    const spec = emailRelaySpec.parse({
      tls: { secretName: 'cert' },
      delivery: { mode: 'smarthost', smarthosts: [
        { host: 'smtp.a.example', credentialsSecretRef: { name: 'a-login' } },
        { host: 'smtp.b.example', oauth2: { user: 'u@b.example', secretRef: { name: 'b-oauth' }, google: {} }, tls: 'implicit', port: 465 },
      ] },
      redis: { url: 'redis://redis:6379', passwordSecretRef: { name: 'redis' } },
      webhooks: [{ url: 'https://hooks.example/x', secretRef: { name: 'hook' } }],
    });
    expect(relaySecretRefs(spec)).toEqual([
      { field: 'tls.secretName', name: 'cert', mounted: true },
      { field: 'delivery.smarthosts[0].credentialsSecretRef', name: 'a-login' },
      { field: 'delivery.smarthosts[1].oauth2.secretRef', name: 'b-oauth' },
      { field: 'redis.passwordSecretRef', name: 'redis' },
      { field: 'webhooks[0].secretRef', name: 'hook' },
    ]);
    expect(relaySecretRefs(emailRelaySpec.parse({ hostname: 'mail.example.net', tls: { issuerRef: { name: 'le' } } }))).toEqual([]); // cert-manager's Secret is ours, not a reference
  });

  it("lists a SenderDomain's DKIM key and smarthost login; the relay reads only the login", () => {
    const spec = senderDomainSpec.parse({
      domain: 'a.example', relayRef: { name: 'edge' }, dkim: { secretRef: { name: 'key' } }, credentials: { secretName: 'app-login' },
      smarthost: { host: 'smtp.a.example', credentialsSecretRef: { name: 'login' } },
    });
    expect(domainSecretRefs(spec)).toEqual([{ field: 'dkim.secretRef', name: 'key' }, { field: 'smarthost.credentialsSecretRef', name: 'login' }]);
    expect(domainRelaySecretRefs(spec)).toEqual([{ field: 'smarthost.credentialsSecretRef', name: 'login' }]);
  });

  it('reads specs the schema would refuse without throwing (a Secret event is mapped before anything is parsed)', () => {
    expect(relaySecretRefs(undefined)).toEqual([]);
    expect(relaySecretRefs({ delivery: { smarthosts: 'nope' }, webhooks: [null, { secretRef: { name: 7 } }], tls: { secretName: '' } })).toEqual([]);
    expect(domainSecretRefs({ dkim: null, smarthost: { oauth2: {} } })).toEqual([]);
  });
});

describe('outbound targets the relay never connects to', () => {
  it('refuses loopback, link-local and metadata hosts in every spelling a URL or resolver accepts, naming the field', () => {
    for (const url of ['http://169.254.169.254/latest/meta-data/iam', 'http://2852039166/', 'http://0xA9FEA9FE/', 'http://[::ffff:169.254.169.254]/',
      'http://127.1:8080/', 'http://localhost/', 'http://api.localhost./', 'https://[::1]/', 'http://[fd00:ec2::254]/', 'http://100.100.100.200/']) {
      expect(urlRefusal(url, 'webhooks[0].url'), url).toMatch(/^webhooks\[0\]\.url: .* points at a (loopback|link-local|cloud metadata) address; relays never connect/);
    }
    for (const host of ['127.0.0.1', '169.254.169.254', '::1', '[::1]', 'LOCALHOST', '0x7f000001', '0.0.0.0']) {
      expect(hostRefusal(host, 'smarthost.host'), host).toMatch(/^smarthost\.host: .* is a .* address/);
    }
  });

  it('leaves private ranges (cluster Services) and names to the relay', () => {
    for (const url of ['http://10.0.0.5/hook', 'https://hooks.mail.svc.cluster.local/x', 'http://[fd00::5]/', 'https://metadata.google.internal/']) expect(urlRefusal(url, 'w'), url).toBeUndefined();
    for (const host of ['smtp.example.com', '192.168.1.10', 'smtp.mail.svc']) expect(hostRefusal(host, 'h'), host).toBeUndefined();
  });

  it('collects them per spec', () => {
    expect(relayTargetRefusals({ delivery: { smarthosts: [{ host: 'ok.example' }, { host: '127.0.0.1' }] }, webhooks: [{ url: 'http://169.254.169.254/' }] }))
      .toEqual([expect.stringMatching(/^delivery\.smarthosts\[1\]\.host: 127\.0\.0\.1 is a loopback/), expect.stringMatching(/^webhooks\[0\]\.url: .* link-local/)]);
    expect(domainTargetRefusals({ smarthost: { host: '169.254.169.254' } })).toEqual([expect.stringMatching(/^smarthost\.host:/)]);
    expect(domainTargetRefusals({})).toEqual([]);
  });
});
