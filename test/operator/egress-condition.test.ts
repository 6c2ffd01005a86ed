// On the real control plane, with the operator's --dns-servers pointing at an authoritative
// server on loopback: an MX relay's EgressIdentityVerified follows PTR records added and
// removed during the test (a Warning Event when it turns False, Ready untouched), and its
// SenderDomain's SPF entry goes from incomplete to the egress addresses when the relay
// declares them — in status and in `mailfleet dns`.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reverseName, startDnsServer, type TestDnsServer, type Zone } from '../support/dns-server.ts';
import { eventually, getJson, readyCondition, startOperatorProcess, tryGetJson, useOperatorCluster, type OperatorProcess } from './support.ts';

const cluster = useOperatorCluster();
const NS = 'egress';
const HOST = 'mail.egress.test';
const ADDR = '192.0.2.25';

let dns: TestDnsServer;
let op: OperatorProcess | undefined;
beforeAll(async () => { dns = await startDnsServer(); });
afterAll(async () => {
  await op?.stop();
  await dns?.close();
}, 30_000);

const good: Zone = { [reverseName(ADDR)]: { PTR: [HOST] }, [HOST]: { A: [ADDR] } };
const cond = (o: any, type: string) => (o?.status?.conditions ?? []).find((c: any) => c.type === type);

describe.skipIf(!cluster.available)('EgressIdentityVerified and the SPF record (real control plane, loopback DNS)', () => {
  it('follows PTR records as they come and go, and the SPF entry follows the declared addresses', async () => {
    const c = cluster.get();
    await c.kubectl(['create', 'namespace', NS]);
    op = await startOperatorProcess(cluster.operatorKubeconfig(), ['--leader-elect=false', '--dns-servers', dns.address, '--egress-recheck', '2']);
    const apply = (obj: unknown) => c.kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
    const relay = (delivery: Record<string, unknown>) => ({
      apiVersion: 'mailfleet.io/v1alpha1', kind: 'EmailRelay', metadata: { name: 'edge', namespace: NS },
      spec: { hostname: HOST, replicas: 1, queue: { persistence: { enabled: false } }, delivery: { mode: 'mx', ...delivery } },
    });
    await apply(relay({}));
    await apply({ apiVersion: 'mailfleet.io/v1alpha1', kind: 'SenderDomain', metadata: { name: 'sender', namespace: NS },
      spec: { domain: 'sender.test', relayRef: { name: 'edge' }, dkim: { algorithm: 'ed25519' }, spf: { all: '-all' } } });

    // no addresses: the SPF record cannot be written, and there is nothing to check
    const incomplete = await eventually('SPF entry incomplete', async () => {
      const sd = await tryGetJson(c, ['get', 'senderdomain', 'sender', '-n', NS]);
      return cond(sd, 'SPFRecordComplete')?.status === 'False' ? sd : undefined;
    }, 120_000);
    expect(cond(incomplete, 'SPFRecordComplete').reason).toBe('EgressAddressesMissing');
    expect(incomplete.status.dnsRecords.find((r: any) => r.purpose === 'spf')).toMatchObject({ value: '', incomplete: expect.stringContaining('spec.delivery.egress.addresses') });
    const cli = () => execFileSync(process.execPath, [path.resolve(import.meta.dirname, '../../bin/mailfleet.ts'), 'dns', `${NS}/sender`, '--kubeconfig', c.kubeconfigPath], { encoding: 'utf8' });
    expect(cli()).toContain('; spf (incomplete)\n; sender.test. TXT (SPF) not known yet: EmailRelay edge delivers to MX hosts but lists no spec.delivery.egress.addresses');
    const bare = await eventually('relay Ready', async () => {
      const r = await tryGetJson(c, ['get', 'emailrelay', 'edge', '-n', NS]);
      return readyCondition(r)?.status === 'True' ? r : undefined;
    }, 120_000);
    expect(cond(bare, 'EgressIdentityVerified')).toMatchObject({ status: 'Unknown', reason: 'NoEgressAddresses' });

    // addresses declared, PTR not published yet
    await apply(relay({ egress: { addresses: [ADDR] } }));
    const missing = await eventually('PTRMissing', async () => {
      const r = await tryGetJson(c, ['get', 'emailrelay', 'edge', '-n', NS]);
      return cond(r, 'EgressIdentityVerified')?.reason === 'PTRMissing' ? r : undefined;
    }, 60_000);
    expect(readyCondition(missing)?.status).toBe('True');
    const spf = await eventually('SPF record written', async () => {
      const sd = await getJson(c, ['get', 'senderdomain', 'sender', '-n', NS]);
      return cond(sd, 'SPFRecordComplete')?.status === 'True' ? sd.status.dnsRecords.find((r: any) => r.purpose === 'spf') : undefined;
    }, 60_000);
    expect(spf).toMatchObject({ name: 'sender.test.', value: `v=spf1 ip4:${ADDR} -all`, zone: `sender.test. 3600 IN TXT "v=spf1 ip4:${ADDR} -all"` });
    expect(cli()).toContain(`; spf (suggested)\nsender.test. 3600 IN TXT "v=spf1 ip4:${ADDR} -all"`);

    // the records appear in DNS: found on a scheduled check, with no change to the object
    dns.setZone(good);
    await eventually('ForwardConfirmed', async () => cond(await tryGetJson(c, ['get', 'emailrelay', 'edge', '-n', NS]), 'EgressIdentityVerified')?.status === 'True', 60_000);

    // the A record goes: not forward-confirmed any more, a Warning Event says what to add
    dns.setZone({ [reverseName(ADDR)]: { PTR: [HOST] } });
    const broken = await eventually('NotForwardConfirmed', async () => {
      const r = await tryGetJson(c, ['get', 'emailrelay', 'edge', '-n', NS]);
      return cond(r, 'EgressIdentityVerified')?.reason === 'NotForwardConfirmed' ? r : undefined;
    }, 60_000);
    expect(cond(broken, 'EgressIdentityVerified').message).toBe(`${ADDR}'s PTR ${HOST} does not resolve back to ${ADDR} (add the A/AAAA record)`);
    expect(readyCondition(broken)?.status).toBe('True');
    await eventually('Warning Event', async () => {
      const ev = await getJson(c, ['get', 'events', '-n', NS, '--field-selector', 'involvedObject.kind=EmailRelay,involvedObject.name=edge']);
      return ev.items.some((e: any) => e.type === 'Warning' && e.reason === 'NotForwardConfirmed');
    }, 30_000);
  });
});
