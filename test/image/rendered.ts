// The operator's pure renderer, called the way the operator calls it, for the image and node
// tiers: what the image is run with comes from here, never restated by the tests. (One file
// to follow the renderer if it moves.)
import { generateKeyPairSync } from 'node:crypto';
import { renderRelay as renderRelayObjects } from '../../operator/render/relay.ts';
import type { DomainInternal } from '../../operator/render/domain-internal.ts';
import { txtValue } from '../../operator/render/dns-records.ts';
import { hashPassword } from '../../relay/auth/password.ts';
import type { EmailRelaySpecInput } from '../../operator/api/emailrelay.ts';
import type { SenderDomainSpecInput } from '../../operator/api/senderdomain.ts';
import YAML from 'yaml';
import { domainObject, relayObject } from '../operator/fixtures.ts';
import { loopbackSinksConfig } from '../support/outbound.ts';

type Obj = Record<string, any>;

export interface RenderedRelay {
  objects: Obj[];
  workload: Obj;
  /** The DKIM TXT records the SenderDomain would publish, by name. */
  dkimTxt: Record<string, string>;
  login: { username: string; password: string };
}

export async function renderRelay(opts: {
  name: string; namespace: string; image: string; relay: EmailRelaySpecInput; domain: Omit<SenderDomainSpecInput, 'relayRef'>; password: string;
}): Promise<RenderedRelay> {
  const now = new Date();
  const pem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const selector = 'mf1';
  const internal: DomainInternal = {
    dkim: { keys: [{ selector, algorithm: 'rsa-sha256', generation: 1, publishedAt: now.toISOString(), activeAt: new Date(now.getTime() - 60_000).toISOString() }] },
    pems: { [selector]: pem },
    passwordHash: await hashPassword(opts.password),
  };
  const sd = domainObject('sender', { ...opts.domain, relayRef: { name: opts.name } }, opts.namespace);
  const out = renderRelayObjects({
    relay: relayObject(opts.name, opts.relay, opts.namespace),
    domains: [{ sd, internal }],
    userSecrets: new Map(),
    image: opts.image,
    apis: { serviceMonitor: false, certManager: false },
    now,
  });
  if (out.errors.length) throw new Error(`render failed: ${out.errors.join('; ')}`);
  // The one change to what the operator rendered: the sink lives on loopback (in the pod's
  // network namespace), an outbound target the relay refuses unless its config allows it,
  // which is the opt-in every test that delivers to a loopback sink makes.
  for (const o of out.objects as Obj[]) {
    if (o.kind !== 'ConfigMap' || typeof o.data?.['relay.yaml'] !== 'string') continue;
    o.data['relay.yaml'] = YAML.stringify({ ...YAML.parse(o.data['relay.yaml']), outbound: loopbackSinksConfig });
  }
  const workload = out.objects.find((o) => o.kind === 'StatefulSet' || o.kind === 'Deployment') as Obj;
  return {
    objects: out.objects as Obj[],
    workload,
    dkimTxt: { [`${selector}._domainkey.${sd.spec.domain}`]: txtValue(pem, 'rsa-sha256') },
    login: { username: sd.spec.credentials.username ?? sd.spec.domain, password: opts.password },
  };
}
