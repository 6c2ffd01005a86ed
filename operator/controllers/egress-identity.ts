// Forward-confirmed reverse DNS of an MX-mode EmailRelay's declared egress addresses: for
// each address, its PTR names, and which of them resolve back to it — through the resolvers
// the DKIM DNS gate uses (--dns-servers, every one of them; or the system's). The answer is
// kept per relay and asked again on a schedule (records change without any Kubernetes event),
// or at once when the hostname or the addresses change.
import net from 'node:net';
import type { Resolver } from 'node:dns/promises';
import type { EmailRelaySpec } from '../api/emailrelay.ts';
import type { ConditionInput } from '../render/conditions.ts';
import { egressIdentityCondition, noEgressCondition, type AddressIdentity } from '../render/egress-identity.ts';
import { reverseName } from '../../relay/util/reverse-name.ts';
import { resolvers } from './dns-verification.ts';

/** "No such record" answers: a fact about DNS, not a failed lookup. */
const ABSENT = new Set(['ENOTFOUND', 'ENODATA']);

const codeOf = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

/** One resolver's view of one address. */
async function lookupOne(resolver: Resolver, address: string, where: string): Promise<AddressIdentity> {
  const family = net.isIPv6(address) ? 'ipv6' : 'ipv4';
  const out: AddressIdentity = { address, ptr: [], confirmed: [] };
  try {
    out.ptr = await resolver.resolvePtr(reverseName(address));
  } catch (e) {
    if (!ABSENT.has(codeOf(e))) out.error = `PTR: ${codeOf(e)}${where}`;
    return out;
  }
  const self = new net.BlockList();
  self.addAddress(address, family);
  for (const name of out.ptr) {
    try {
      const forward = family === 'ipv6' ? await resolver.resolve6(name) : await resolver.resolve4(name);
      if (forward.some((a) => self.check(a, family))) out.confirmed.push(name);
    } catch (e) {
      if (!ABSENT.has(codeOf(e))) out.error = `${family === 'ipv6' ? 'AAAA' : 'A'} ${name}: ${codeOf(e)}${where}`;
    }
  }
  return out;
}

/** Every resolver's view of one address, combined: a name counts only when every resolver says so. */
export async function lookupEgressIdentity(address: string, dnsServers: string[] | undefined): Promise<AddressIdentity> {
  const all = resolvers(dnsServers);
  const views = await Promise.all(all.map((r, i) => lookupOne(r, address, dnsServers?.length ? ` at ${dnsServers[i]}` : '')));
  const everywhere = (pick: (v: AddressIdentity) => string[]) =>
    (pick(views[0]!)).filter((n) => views.every((v) => pick(v).some((m) => m.toLowerCase() === n.toLowerCase())));
  const error = views.map((v) => v.error).filter((e) => e !== undefined).join(', ');
  return { address, ptr: everywhere((v) => v.ptr), confirmed: everywhere((v) => v.confirmed), ...(error ? { error } : {}) };
}

/** Single addresses (a /32 or /128 counts as one) and the ranges that cannot be checked one by one. */
export function splitAddresses(addresses: string[]): { single: string[]; ranges: string[] } {
  const single: string[] = [];
  const ranges: string[] = [];
  for (const a of addresses) {
    const [ip = '', prefix] = a.split('/');
    const max = net.isIPv6(ip) ? '128' : '32';
    if (prefix === undefined || prefix === max) single.push(ip);
    else ranges.push(a);
  }
  return { single, ranges };
}

export interface EgressIdentityOptions {
  dnsServers?: string[] | undefined;
  /** How long an answer is kept before DNS is asked again. */
  recheckMs: number;
  now?: () => number;
}

interface Checked {
  input: string;
  at: number;
  condition: ConditionInput;
}

export class EgressIdentityChecker {
  private readonly o: EgressIdentityOptions;
  private readonly checked = new Map<string, Checked>();

  constructor(o: EgressIdentityOptions) {
    this.o = o;
  }

  /**
   * The condition for relay `id` (namespace/name) and when to look again; nothing for a
   * smarthost relay, whose identity towards receivers is the provider's.
   */
  async check(id: string, spec: EmailRelaySpec): Promise<{ condition: ConditionInput; recheckInMs?: number } | undefined> {
    if (spec.delivery.mode !== 'mx' || !spec.hostname) {
      this.checked.delete(id);
      return undefined;
    }
    const addresses = spec.delivery.egress?.addresses ?? [];
    if (!addresses.length) {
      this.checked.delete(id);
      return { condition: noEgressCondition() };
    }
    const now = (this.o.now ?? Date.now)();
    const input = JSON.stringify([spec.hostname, addresses]);
    let c = this.checked.get(id);
    if (!c || c.input !== input || now - c.at >= this.o.recheckMs) {
      const { single, ranges } = splitAddresses(addresses);
      const results = await Promise.all(single.map((a) => lookupEgressIdentity(a, this.o.dnsServers)));
      c = { input, at: now, condition: egressIdentityCondition({ hostname: spec.hostname, results, ranges }) };
      this.checked.set(id, c);
    }
    return { condition: c.condition, recheckInMs: Math.max(1000, c.at + this.o.recheckMs - now) };
  }

  forget(id: string): void {
    this.checked.delete(id);
  }
}
