// Operator metrics (mailfleet_operator_ prefix). API requests are counted by verb, so a
// quiet cluster can be shown to get zero writes from us.
import client from 'prom-client';

export function createOperatorMetrics(registry = new client.Registry()) {
  client.collectDefaultMetrics({ register: registry, prefix: 'mailfleet_operator_process_' });
  return {
    registry,
    reconciles: new client.Counter<'kind' | 'result'>({ name: 'mailfleet_operator_reconciles_total', help: 'Reconciles by kind and result (ok, error)', labelNames: ['kind', 'result'], registers: [registry] }),
    reconcileDuration: new client.Histogram<'kind'>({ name: 'mailfleet_operator_reconcile_duration_seconds', help: 'Duration of one reconcile', labelNames: ['kind'], buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] }),
    queueDepth: new client.Gauge({ name: 'mailfleet_operator_queue_depth', help: 'Keys waiting in the work queue', registers: [registry] }),
    apiRequests: new client.Counter<'verb' | 'resource' | 'code'>({ name: 'mailfleet_operator_api_requests_total', help: 'Kubernetes API requests by verb (get, list, apply, create, update, delete), resource and HTTP code', labelNames: ['verb', 'resource', 'code'], registers: [registry] }),
    watchRestarts: new client.Counter<'kind' | 'reason'>({ name: 'mailfleet_operator_watch_restarts_total', help: 'Watches restarted, by kind and reason (gone, error)', labelNames: ['kind', 'reason'], registers: [registry] }),
    dkimRotationBlocked: new client.Gauge<'namespace' | 'name'>({ name: 'mailfleet_operator_dkim_rotation_blocked', help: '1 while a SenderDomain\'s DKIM rotation waits on records that did not appear in DNS within publishWithin (signing stays with the old key)', labelNames: ['namespace', 'name'], registers: [registry] }),
    leader: new client.Gauge({ name: 'mailfleet_operator_leader', help: '1 while this replica holds the lease', registers: [registry] }),
  };
}

export type OperatorMetrics = ReturnType<typeof createOperatorMetrics>;
