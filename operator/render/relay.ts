// EmailRelay → every object it owns, in apply order (config and secrets before the
// workload), and the owned kinds that must not exist. Pure; nothing is rendered when the
// config is refused.
import type { RelayConfigInput } from '../../relay/config/schema.ts';
import { relayNames } from './objects.ts';
import type { KubeObject } from './objects.ts';
import { relayHostname, renderRelayConfig, tlsSecretName, type LeftOutDomain, type RelayInput } from './relay-config.ts';
import {
  certificate, configMap, deployment, headlessService, horizontalPodAutoscaler, mainService, networkPolicy, podDisruptionBudget, secret,
  serviceMonitor, statefulSet,
} from './relay-objects.ts';
import { relayPodTemplate } from './relay-pod.ts';
import type { OAuth2Check } from './smarthost-oauth2.ts';

export type { AttachedDomain, LeftOutDomain, RelayInput } from './relay-config.ts';

export interface RelayOutput {
  /** Objects to apply, in order (config and secrets before the workload). */
  objects: KubeObject[];
  /** Owned kinds that must not exist (e.g. the HPA after autoscaling was removed). */
  absent: { apiVersion: string; kind: string; name: string }[];
  /** The rendered config input (already validated), for tests and logs. */
  config?: RelayConfigInput;
  /** Problems of the relay's own spec and Secrets; any of them means nothing is applied. */
  errors: string[];
  /** Names of the listeners and their ports, for status.endpoint. */
  ports: Record<string, number>;
  /** OAuth2 smarthost credentials the controller may check with the identity provider. */
  oauth2Checks: OAuth2Check[];
  /** trustedNetworks domains left out of the config (no SenderDomain served for them). */
  unservedTrustedDomains: string[];
  /** SenderDomains left out of the config for problems of their own (the others are served). */
  leftOut: LeftOutDomain[];
}

export function renderRelay(input: RelayInput): RelayOutput {
  const { relay } = input;
  const spec = relay.spec;
  const n = relayNames(relay.metadata.name);
  const { config, secretData, ports, errors, oauth2Checks, unservedTrustedDomains, leftOut } = renderRelayConfig(input);
  if (errors.length) return { objects: [], absent: [], errors, ports, oauth2Checks: [], unservedTrustedDomains, leftOut };

  const objects: KubeObject[] = [configMap(relay, config), secret(relay, secretData)];
  const absent: RelayOutput['absent'] = [];
  if (spec.tls?.issuerRef) objects.push(certificate(relay, spec.tls.issuerRef, relayHostname(relay)));
  objects.push(mainService(relay, ports), headlessService(relay, ports));

  const handoff = config.handoff !== undefined;
  const template = relayPodTemplate({ relay, image: input.image, tlsSecret: tlsSecretName(relay), ports, handoff });
  if (spec.queue.persistence.enabled) {
    objects.push(statefulSet(relay, template, input.workloadReplicas));
    absent.push({ apiVersion: 'apps/v1', kind: 'Deployment', name: n.workload });
  } else {
    objects.push(deployment(relay, template));
    absent.push({ apiVersion: 'apps/v1', kind: 'StatefulSet', name: n.workload });
  }

  if (spec.podDisruptionBudget.enabled) objects.push(podDisruptionBudget(relay));
  else absent.push({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', name: n.pdb });

  if (spec.autoscaling) objects.push(horizontalPodAutoscaler(relay, spec.autoscaling));
  else absent.push({ apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', name: n.hpa });

  if (spec.networkPolicy.enabled) objects.push(networkPolicy(relay, ports, handoff));
  else absent.push({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', name: n.networkPolicy });

  // Without the Prometheus Operator there is no ServiceMonitor kind to create or delete.
  if (spec.metrics.serviceMonitor.enabled && input.apis.serviceMonitor) objects.push(serviceMonitor(relay));
  else if (input.apis.serviceMonitor) absent.push({ apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', name: n.serviceMonitor });

  return { objects, absent, config, errors, ports, oauth2Checks, unservedTrustedDomains, leftOut };
}
