// `mailfleet dns NAMESPACE/SENDERDOMAIN`: the zone-file snippet of what a SenderDomain asks
// its owner to publish, read from its status through the user's kubeconfig (so it shows
// what the user's own RBAC lets them read, nothing more).
import { UsageError, parseCommand } from './args.ts';

export async function dnsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(args, { kubeconfig: { type: 'string' } }, true);
  const [ref, ...extra] = positionals;
  if (extra.length) throw new UsageError(`unexpected argument '${extra[0]}'`);
  const m = ref ? /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-.a-z0-9]*[a-z0-9])?)$/.exec(ref) : null;
  if (!m) throw new UsageError('give the SenderDomain as NAMESPACE/NAME');
  const [namespace, name] = [m[1]!, m[3]!];
  const { Kube, loadKubeConfig } = await import('../operator/runtime/kube.ts');
  const { zoneSnippet } = await import('../operator/render/dns-records.ts');
  const kube = new Kube({ kubeconfig: loadKubeConfig(values.kubeconfig ?? process.env.KUBECONFIG?.split(':')[0]), timeoutMs: 15_000 });
  const sd = await kube.getOrUndefined<{ spec?: { domain?: string }; status?: { dnsRecords?: { zone: string; purpose: string; required: boolean; incomplete?: string }[] } }>(
    'mailfleet.io/v1alpha1', 'SenderDomain', name, namespace);
  if (!sd) throw new Error(`SenderDomain ${namespace}/${name} not found`);
  const records = sd.status?.dnsRecords ?? [];
  if (!records.length) throw new Error(`SenderDomain ${namespace}/${name} has no DNS records in its status yet (is the operator running?)`);
  process.stdout.write(zoneSnippet(sd.spec?.domain ?? name, records));
  return 0;
}
