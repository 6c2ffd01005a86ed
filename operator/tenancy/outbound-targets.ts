// Outbound targets a spec names (webhook URLs, smarthost hosts) that the relay would never
// connect to: loopback, link-local (the cloud metadata service at 169.254.169.254), the
// other metadata addresses. The relay refuses them at connect time whatever the config says
// (relay/outbound/targets.ts, on the resolved address); an operator-rendered config never
// lists outbound.allowAddresses, so no EmailRelay can opt out. This check only moves the
// refusal of an address written into the spec to where the author sees it — the object's
// status — instead of a log line in a relay pod. Names are left to the relay (they resolve
// there, and may resolve differently later).
//
// Pure; the same ranges as the relay, through its OutboundPolicy.
import { OutboundPolicy } from '../../relay/outbound/targets.ts';

export const TARGET_NOT_ALLOWED = 'TargetNotAllowed';

const policy = new OutboundPolicy();

/** The host as the relay would connect to it: IPv4 written as one number or in hex, IPv6 in brackets, all normalised. */
function normalHost(host: string): string {
  let h = host.trim().toLowerCase();
  try {
    h = new URL(`http://${h.includes(':') && !h.startsWith('[') ? `[${h}]` : h}/`).hostname;
  } catch { /* not a host a URL can hold: the relay's own checks report it */ }
  return h.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
}

/** Why the relay would refuse this host (a literal address or localhost), else undefined. */
function refusal(host: string): string | undefined {
  const h = normalHost(host);
  if (h === 'localhost' || h.endsWith('.localhost')) return 'loopback';
  return policy.refusal(h);
}

/** A smarthost host the relay would refuse: a message naming the field, else undefined. */
export function hostRefusal(host: string, field: string): string | undefined {
  const why = refusal(host);
  return why && `${field}: ${host} is a ${why} address; relays never connect to loopback, link-local or cloud metadata addresses (use a cluster Service or a public host)`;
}

/** A webhook URL whose host the relay would refuse: a message naming the field, else undefined. */
export function urlRefusal(url: string, field: string): string | undefined {
  let host: string;
  try { host = new URL(url).hostname; } catch { return undefined; } // the CRD and the relay's schema report a malformed URL
  const why = refusal(host);
  return why && `${field}: ${url} points at a ${why} address; relays never connect to loopback, link-local or cloud metadata addresses (use a cluster Service or a public host)`;
}

type Loose = Record<string, any> | undefined;

/** Every refused target an EmailRelay names (its smarthosts and webhooks). */
export function relayTargetRefusals(spec: Loose): string[] {
  const smarthosts: Loose[] = Array.isArray(spec?.delivery?.smarthosts) ? spec.delivery.smarthosts : [];
  const webhooks: Loose[] = Array.isArray(spec?.webhooks) ? spec.webhooks : [];
  return [
    ...smarthosts.flatMap((h, i) => typeof h?.host === 'string' ? [hostRefusal(h.host, `delivery.smarthosts[${i}].host`)] : []),
    ...webhooks.flatMap((w, i) => typeof w?.url === 'string' ? [urlRefusal(w.url, `webhooks[${i}].url`)] : []),
  ].filter((m): m is string => m !== undefined);
}

/** A SenderDomain's own smarthost, if the relay would refuse it. */
export function domainTargetRefusals(spec: Loose): string[] {
  const host = spec?.smarthost?.host;
  const m = typeof host === 'string' ? hostRefusal(host, 'smarthost.host') : undefined;
  return m ? [m] : [];
}
