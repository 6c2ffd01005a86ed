// An EmailRelay's status from what the controller observed after applying: its workload's
// rollout (Ready once every wanted pod is updated and ready, else Progressing so GitOps tools
// keep waiting), the scale subresource's replicas and selector, the endpoint, and the number
// of SenderDomains it serves. Pure, like the SenderDomain's.
import type { EmailRelayStatus } from '../api/emailrelay.ts';
import { condition, mergeConditions, summaryConditions, type ConditionInput } from './conditions.ts';
import type { DrainCondition } from './drain.ts';
import { relayHost, relaySelector, selectorString, type EmailRelay, type KubeObject } from './objects.ts';

export type Workload = KubeObject & {
  metadata: { generation?: number };
  status?: { replicas?: number; readyReplicas?: number; updatedReplicas?: number; observedGeneration?: number };
};

export interface RelayStatusInput {
  relay: EmailRelay;
  /** The StatefulSet or Deployment as last seen, if it exists yet. */
  workload: Workload | undefined;
  ports: Record<string, number>;
  /** SenderDomains in the rendered config (none that was left out). */
  domains: number;
  /** namespace/name of the SenderDomains owning their domain here but left out of the config. */
  unservedSenderDomains?: string[];
  /** Those of them left out only because the relay's Secret or config is full. */
  overBudgetSenderDomains?: string[];
  /** trustedNetworks domains left out of the config. */
  unservedTrustedDomains?: string[];
  /** Conditions beside the summary ones (e.g. SmarthostAuthenticated). */
  extra?: ConditionInput[];
  /** A scale-down waiting for leaving pods to hand over their queues (operator/render/drain.ts). */
  drain?: DrainCondition;
  now: Date;
}

export function relayStatus(input: RelayStatusInput): { status: EmailRelayStatus; rolledOut: boolean } {
  const { relay, workload, now } = input;
  const { name, namespace = '' } = relay.metadata;
  const gen = relay.metadata.generation ?? 0;
  const want = relay.spec.replicas;
  const ws = workload?.status ?? {};
  const current = (workload?.metadata.generation ?? 0) === (ws.observedGeneration ?? -1);
  const readyN = ws.readyReplicas ?? 0;
  const rolledOut = !!workload && current && readyN >= want && (ws.updatedReplicas ?? 0) >= want && (ws.replicas ?? 0) === want;
  const unserved = input.unservedTrustedDomains ?? [];
  const trusted = (relay.spec.trustedNetworks ?? []).length === 0 ? [] : [condition('TrustedNetworksServed', unserved.length === 0,
    unserved.length ? 'TrustedDomainNotServed' : 'AllServed',
    unserved.length ? `trustedNetworks name domains this relay serves no SenderDomain for; left out: ${unserved.join(', ')}` : 'every trustedNetworks domain is served')];
  const conds = input.drain
    ? summaryConditions(input.drain.phase, input.drain.reason, input.drain.message)
    : rolledOut
      ? summaryConditions('Ready', 'Ready', `${readyN}/${want} pods ready`)
      : summaryConditions('Progressing', 'PodsNotReady', `${readyN}/${want} pods ready${workload ? '' : ' (workload not created yet)'}`);
  const status: EmailRelayStatus = {
    observedGeneration: gen,
    conditions: mergeConditions(relay.status?.conditions, [...conds, ...trusted, ...(input.extra ?? [])], gen, now),
    replicas: ws.replicas ?? 0,
    readyReplicas: readyN,
    selector: selectorString(relaySelector(name)),
    endpoint: { host: relayHost(name, namespace), ports: input.ports },
    domains: input.domains,
    ...(input.unservedSenderDomains?.length ? { unservedSenderDomains: input.unservedSenderDomains } : {}),
    ...(input.overBudgetSenderDomains?.length ? { overBudgetSenderDomains: input.overBudgetSenderDomains } : {}),
    ...(input.unservedTrustedDomains?.length ? { unservedTrustedDomains: input.unservedTrustedDomains } : {}),
  };
  return { status, rolledOut };
}
