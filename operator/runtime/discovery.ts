// Which optional APIs (Prometheus Operator, cert-manager, external-dns's DNSEndpoint) the cluster serves. Asked at start
// and on every resync, so installing one later needs no operator restart. Only a 404 means
// "not installed": any other failure keeps what we knew, so a flaky API server does not
// make every TLS relay Degraded.
import type { Logger } from 'pino';
import { ApiError, type Kube } from './kube.ts';

export interface OptionalApis {
  serviceMonitor: boolean;
  certManager: boolean;
  /** externaldns.k8s.io/v1alpha1 DNSEndpoint (the CRD external-dns reads with --source=crd). */
  dnsEndpoint: boolean;
}

export class Discovery {
  private current: OptionalApis = { serviceMonitor: false, certManager: false, dnsEndpoint: false };

  private readonly kube: Kube;
  private readonly log: Logger;

  constructor(kube: Kube, log: Logger) {
    this.kube = kube;
    this.log = log;
  }

  get apis(): OptionalApis {
    return this.current;
  }

  /** Asks again; true when the answer changed. */
  async refresh(): Promise<boolean> {
    const before = this.current;
    this.current = {
      serviceMonitor: await this.served('/apis/monitoring.coreos.com/v1', before.serviceMonitor),
      certManager: await this.served('/apis/cert-manager.io/v1', before.certManager),
      dnsEndpoint: await this.served('/apis/externaldns.k8s.io/v1alpha1', before.dnsEndpoint, 'dnsendpoints'),
    };
    const changed = (Object.keys(this.current) as (keyof OptionalApis)[]).some((k) => this.current[k] !== before[k]);
    if (changed) this.log.info({ apis: this.current }, 'optional APIs changed');
    return changed;
  }

  /** Whether the group version is served (and, given `plural`, has that resource: external-dns's group has another kind too). */
  private async served(path: string, known: boolean, plural?: string): Promise<boolean> {
    try {
      const list = await this.kube.request<{ resources?: { name?: string }[] }>('GET', path, { verb: 'discovery', resource: 'discovery' });
      return plural === undefined || (list?.resources ?? []).some((r) => r.name === plural);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return false;
      this.log.warn({ path, err: (e as Error).message }, 'API discovery failed; keeping the last answer');
      return known;
    }
  }
}
