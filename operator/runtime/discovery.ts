// Which optional APIs (Prometheus Operator, cert-manager) the cluster serves. Asked at start
// and on every resync, so installing one later needs no operator restart. Only a 404 means
// "not installed": any other failure keeps what we knew, so a flaky API server does not
// make every TLS relay Degraded.
import type { Logger } from 'pino';
import { ApiError, type Kube } from './kube.ts';

export interface OptionalApis {
  serviceMonitor: boolean;
  certManager: boolean;
}

export class Discovery {
  private current: OptionalApis = { serviceMonitor: false, certManager: false };

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
    };
    const changed = this.current.serviceMonitor !== before.serviceMonitor || this.current.certManager !== before.certManager;
    if (changed) this.log.info({ apis: this.current }, 'optional APIs changed');
    return changed;
  }

  private async served(path: string, known: boolean): Promise<boolean> {
    try {
      await this.kube.request('GET', path, { verb: 'discovery', resource: 'discovery' });
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return false;
      this.log.warn({ path, err: (e as Error).message }, 'API discovery failed; keeping the last answer');
      return known;
    }
  }
}
