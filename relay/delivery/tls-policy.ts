// Which TLS a destination gets, decided once per attempt: an explicit per-destination
// policy (destinations.<name>.tls) wins; otherwise, in MX mode, the domain's MTA-STS policy
// (mta-sts.ts); otherwise the route's defaults (mx.requireTls, the smarthost's own
// settings). Also names the metric labels, which stay bounded: a destination is its own
// label only when the config names it (or it is a smarthost), every other is 'other'.
import { validateMx } from 'mailauth/lib/mta-sts.js';
import type { StsPolicy } from './mta-sts.ts';

export type TlsPolicyName = 'require' | 'opportunistic' | 'mta-sts-enforce' | 'mta-sts-testing' | 'none';
export type TlsResult = 'verified' | 'encrypted' | 'opportunistic' | 'failed' | 'mx_mismatch' | 'testing_failure';

export interface TlsDecision {
  policy: TlsPolicyName;
  /** Metric label of the destination. */
  label: string;
  requireTls: boolean;
  /** The certificate must verify against the host name. */
  verify: boolean;
  sts?: StsPolicy;
}

/** An MX host name the policy lists (mailauth's matching: exact, or `*.` for one left-most label). */
export function mxAllowed(host: string, sts: StsPolicy): boolean {
  return validateMx(host, { id: sts.id, mode: sts.mode, mx: sts.mx }).valid;
}

/** What a transaction that got an answer says about TLS under this decision. */
export function answeredResult(d: Pick<TlsDecision, 'requireTls' | 'verify'>): TlsResult {
  return d.verify ? 'verified' : d.requireTls ? 'encrypted' : 'opportunistic';
}

/** The decision for an explicit policy (`require` / `opportunistic`), or undefined without one. */
export function explicitDecision(tls: 'require' | 'opportunistic' | undefined, label: string): TlsDecision | undefined {
  if (tls === 'require') return { policy: 'require', label, requireTls: true, verify: true };
  if (tls === 'opportunistic') return { policy: 'opportunistic', label, requireTls: false, verify: false };
  return undefined;
}

/** MX mode without an explicit policy: the MTA-STS policy if there is one, else the mx defaults. */
export function mxDecision(sts: StsPolicy | undefined, label: string, defaults: { requireTls: boolean; verify: boolean }): TlsDecision {
  if (sts?.mode === 'enforce') return { policy: 'mta-sts-enforce', label, requireTls: true, verify: true, sts };
  if (sts?.mode === 'testing') return { policy: 'mta-sts-testing', label, ...defaults, sts };
  return { policy: 'none', label, ...defaults };
}
