// A relay's one Secret full, on a real control plane. Every SenderDomain of relay mail/edge
// names a smarthost login of ~30 KB (under the 32 KiB a SenderDomain may take), so the
// relay's Secret (at most 1 MiB − 16 KiB) holds about 34 of the 37: the newest are left out
// (oldest first), and each of those says so itself — not Ready, Degraded SecretBudgetExceeded
// naming the relay and the budget, a Warning Event — while every other one is Ready and
// served. Deleting an older one makes room: the first one left out is served and Ready.
// The budget itself as pure functions: test/operator/relay-secret-keys.test.ts.
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import type { RelayConfigInput } from '../../relay/config/schema.ts';
import { OBJECT_DATA_MAX } from '../../operator/render/relay-secret-files.ts';
import { DOMAIN_FILES_MAX, SECRET_BUDGET_EXCEEDED } from '../../operator/render/relay-domains.ts';
import { conditionOf as cond, eventually, getJson, startOperatorProcess, tryGetJson, useOperatorCluster, type OperatorProcess, senderDomainObject as sd } from './support.ts';

const cluster = useOperatorCluster();
const NS = 'mail';
const GROUP = 'mailfleet.io/v1alpha1';
const COUNT = 37;
const PASSWORD_BYTES = 30_000;
const names = Array.from({ length: COUNT }, (_, i) => `d${String(i).padStart(2, '0')}`);

let op: OperatorProcess | undefined;
afterAll(async () => { await op?.stop(); }, 30_000);

const apply = (obj: unknown) => cluster.get().kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
const relayConfig = async (): Promise<RelayConfigInput> => YAML.parse((await getJson(cluster.get(), ['get', 'configmap', 'edge-config', '-n', NS])).data['relay.yaml']);
const served = async () => new Set((await relayConfig()).domains?.map((d) => d.domain));
const domains = async (): Promise<Map<string, any>> =>
  new Map((await getJson(cluster.get(), ['get', 'senderdomains', '-n', NS])).items.map((o: any) => [o.metadata.name, o]));
const edge = () => tryGetJson(cluster.get(), ['get', 'emailrelay', 'edge', '-n', NS]);
const overBudget = (relay: any): string[] => relay?.status?.overBudgetSenderDomains ?? [];

/** Every SenderDomain settled: those over budget Degraded SecretBudgetExceeded, the others Ready, all for their current generation. */
async function settled(left: string[]): Promise<Map<string, any> | undefined> {
  const all = await domains();
  for (const [name, o] of all) {
    const want = left.includes(`${NS}/${name}`) ? { type: 'Degraded', reason: SECRET_BUDGET_EXCEEDED } : { type: 'Ready', reason: 'Ready' };
    const c = cond(o, want.type);
    if (c?.status !== 'True' || c.reason !== want.reason || o.status.observedGeneration !== o.metadata.generation) return undefined;
  }
  return all;
}

describe.skipIf(!cluster.available)("SenderDomains left out for the relay Secret's size budget (real control plane)", { timeout: 300_000 }, () => {
  it('setup: relay mail/edge and a smarthost login of 30 KB every SenderDomain names', async () => {
    expect(PASSWORD_BYTES).toBeLessThan(DOMAIN_FILES_MAX - 2048);
    expect(COUNT * PASSWORD_BYTES).toBeGreaterThan(OBJECT_DATA_MAX + 2 * PASSWORD_BYTES);
    const c = cluster.get();
    await c.kubectl(['create', 'namespace', NS]);
    for (const [name, password] of [['platform-login', 'platform-pw'], ['fat-login', 'p'.repeat(PASSWORD_BYTES)]] as const) {
      await apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS, labels: { 'mailfleet.io/use': 'true' } }, stringData: { username: name, password } });
    }
    op = await startOperatorProcess(cluster.operatorKubeconfig(), ['--resync', '3600']);
    await apply({
      apiVersion: GROUP, kind: 'EmailRelay', metadata: { name: 'edge', namespace: NS },
      spec: {
        hostname: 'mail.example.net', replicas: 1, queue: { persistence: { enabled: false } },
        senderDomains: { requireVerification: false },
        delivery: { mode: 'smarthost', smarthosts: [{ host: 'smtp.platform.example', credentialsSecretRef: { name: 'platform-login' } }] },
      },
    });
  });

  it('the newest that do not fit are Degraded SecretBudgetExceeded, naming the relay and the budget, with a Warning Event; the others are Ready and served', async () => {
    const c = cluster.get();
    // one by one in name order, so that creation order (the claim order) is name order
    for (const name of names) {
      await apply(sd(NS, name, {
        domain: `${name}.test`, relayRef: { name: 'edge' }, dkim: { algorithm: 'ed25519' },
        smarthost: { host: 'smtp.budget.example', port: 587, credentialsSecretRef: { name: 'fat-login' } },
      }));
    }
    const relay = await eventually('edge lists SenderDomains over budget, all of them rendered', async () => {
      const o = await edge();
      const left = overBudget(o);
      return left.length && (o.status.domains ?? 0) + left.length === COUNT ? o : undefined;
    }, 180_000);
    const left = overBudget(relay);
    // oldest first: those left out are the newest
    expect(left).toEqual(names.slice(COUNT - left.length).map((n) => `${NS}/${n}`));
    expect(relay.status.unservedSenderDomains).toEqual(left);
    expect(cond(relay, 'Degraded')?.status).not.toBe('True');

    const all = await eventually('every SenderDomain settled: over budget Degraded, the others Ready', () => settled(left), 120_000);
    const newest = all.get(names[COUNT - 1]!);
    expect(cond(newest, 'Ready')).toMatchObject({ status: 'False', reason: SECRET_BUDGET_EXCEEDED });
    expect(cond(newest, 'Degraded')!.message).toContain(`EmailRelay ${NS}/edge has no room left for its files`);
    expect(cond(newest, 'Degraded')!.message).toContain(`at most ${OBJECT_DATA_MAX} bytes (1 MiB − 16 KiB`);
    expect(cond(newest, 'Stalled')).toMatchObject({ status: 'True', reason: SECRET_BUDGET_EXCEEDED });
    await eventually('a Warning Event SecretBudgetExceeded on the newest', async () =>
      (await getJson(c, ['get', 'events', '-n', NS, '--field-selector', `involvedObject.name=${names[COUNT - 1]}`])).items
        .some((e: any) => e.type === 'Warning' && e.reason === SECRET_BUDGET_EXCEEDED && e.message.includes(`EmailRelay ${NS}/edge`)));

    const inConfig = await served();
    for (const n of names) expect(inConfig.has(`${n}.test`), n).toBe(!left.includes(`${NS}/${n}`));
    const secret = await getJson(c, ['get', 'secret', 'edge-secrets', '-n', NS]);
    expect(Object.keys(secret.data).filter((k) => left.some((l) => k.startsWith(`sd_${NS}_${l.split('/')[1]}_`)))).toEqual([]);
  });

  it('deleting an older SenderDomain makes room: the first one left out is served and Ready, the rest stay out', async () => {
    const c = cluster.get();
    const before = overBudget(await edge());
    await c.kubectl(['delete', 'senderdomain', names[0]!, '-n', NS, '--wait=true']);
    const first = before[0]!;
    const relay = await eventually(`${first} served once d00 is gone`, async () => {
      const o = await edge();
      return !overBudget(o).includes(first) && (await served()).has(`${first.split('/')[1]}.test`) ? o : undefined;
    }, 120_000);
    expect(overBudget(relay)).toEqual(before.slice(1));
    await eventually(`${first} Ready, the others settled`, () => settled(before.slice(1)), 120_000);
  });
});
