// The SPF record a SenderDomain should publish, from the route its mail actually takes
// (RFC 7208): through a provider, the provider's include; straight to MX hosts, the egress
// addresses the relay's mail leaves from. A generic `a mx` would authorize the wrong hosts
// (the domain's web server and inbound MX, which send none of this mail), so when the route
// does not say who sends, no record is suggested: the reason says what to declare. Pure.
import net from 'node:net';
import type { EmailRelaySpec } from '../api/emailrelay.ts';
import type { SenderDomainSpec } from '../api/senderdomain.ts';

/** RFC 7208 §4.6.4: at most 10 mechanisms that cost a DNS lookup (include, a, mx, ptr, exists, redirect). */
export const SPF_LOOKUP_LIMIT = 10;

type Smarthost = NonNullable<EmailRelaySpec['delivery']['smarthosts']>[number];

export interface SpfInput {
  relayName: string;
  /** The relay's parsed spec; 'missing' when it does not exist, 'invalid' when its spec does not parse. */
  relay: EmailRelaySpec | 'missing' | 'invalid';
  /** The SenderDomain's own smarthost, which takes its mail instead of the relay's route. */
  own: Smarthost | undefined;
  policy: SenderDomainSpec['spf'];
}

export type SpfResult =
  | { value: string; lookups: number }
  | { incomplete: string; reason: 'RelayNotFound' | 'RelayInvalid' | 'SmarthostIncludeMissing' | 'EgressAddressesMissing' | 'TooManyDNSLookups' };

const smarthostName = (h: Smarthost) => h.name ?? `${h.host}:${h.port}`;

/** `ip4:`/`ip6:` for an address or CIDR (validated by the CRD and the operator's schema). */
export function ipMechanism(address: string): string {
  const ip = address.split('/')[0] ?? '';
  return `${net.isIPv6(ip) ? 'ip6' : 'ip4'}:${address}`;
}

/** The mechanisms of the route, or what is missing to know them. */
function routeMechanisms(input: SpfInput): string[] | Extract<SpfResult, { incomplete: string }> {
  const { relay, relayName, own } = input;
  if (own) {
    return own.spf ? [`include:${own.spf.include}`] : {
      reason: 'SmarthostIncludeMissing',
      incomplete: `this SenderDomain's smarthost ${smarthostName(own)} has no spf.include (the provider's SPF domain, e.g. amazonses.com)`,
    };
  }
  if (relay === 'missing') return { reason: 'RelayNotFound', incomplete: `EmailRelay ${relayName} not found: the route its mail takes is unknown` };
  if (relay === 'invalid') return { reason: 'RelayInvalid', incomplete: `EmailRelay ${relayName} has an invalid spec: the route its mail takes is unknown` };
  if (relay.delivery.mode === 'smarthost') {
    // Failover: any of them may send, so each must be authorized.
    const hosts = relay.delivery.smarthosts ?? [];
    const without = hosts.filter((h) => !h.spf).map(smarthostName);
    if (without.length) {
      return {
        reason: 'SmarthostIncludeMissing',
        incomplete: `EmailRelay ${relayName}: smarthost ${without.join(', ')} has no spf.include (the provider's SPF domain, e.g. amazonses.com)`,
      };
    }
    return hosts.map((h) => `include:${h.spf!.include}`);
  }
  const addresses = relay.delivery.egress?.addresses ?? [];
  if (!addresses.length) {
    return {
      reason: 'EgressAddressesMissing',
      incomplete: `EmailRelay ${relayName} delivers to MX hosts but lists no spec.delivery.egress.addresses: the addresses its mail leaves from are unknown`,
    };
  }
  return addresses.map(ipMechanism);
}

export function spfRecord(input: SpfInput): SpfResult {
  const route = routeMechanisms(input);
  if (!Array.isArray(route)) return route;
  const mechanisms = [...new Set([...route, ...(input.policy.include ?? []).map((d) => `include:${d}`)])];
  const lookups = mechanisms.filter((m) => m.startsWith('include:')).length;
  if (lookups > SPF_LOOKUP_LIMIT) {
    return {
      reason: 'TooManyDNSLookups',
      incomplete: `${lookups} includes exceed SPF's limit of ${SPF_LOOKUP_LIMIT} DNS lookups (RFC 7208 §4.6.4): receivers would answer permerror`,
    };
  }
  return { value: ['v=spf1', ...mechanisms, input.policy.all].join(' '), lookups };
}
