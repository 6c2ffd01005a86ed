// Every relay metric lives here so that names stay stable for dashboards
// (mailfleet_ prefix, low-cardinality labels). One Registry per relay process.
import client from 'prom-client';

export function createMetrics(registry = new client.Registry()) {
  client.collectDefaultMetrics({ register: registry, prefix: 'mailfleet_process_' });
  const c = <T extends string>(name: string, help: string, labelNames: T[] = []) =>
    new client.Counter<T>({ name, help, labelNames, registers: [registry] });
  const g = <T extends string>(name: string, help: string, labelNames: T[] = []) =>
    new client.Gauge<T>({ name, help, labelNames, registers: [registry] });
  return {
    registry,
    connections: c('mailfleet_connections_total', 'SMTP connections accepted, by listener', ['listener']),
    activeSessions: g('mailfleet_sessions_active', 'Open SMTP sessions, by listener', ['listener']),
    authSuccesses: c('mailfleet_auth_successes_total', 'Successful AUTH attempts', ['mechanism']),
    authFailures: c('mailfleet_auth_failures_total', 'Failed AUTH attempts, by reason', ['reason']),
    refusals: c('mailfleet_smtp_refusals_total', 'SMTP commands refused, by reason', ['reason']),
    received: c('mailfleet_messages_received_total', 'Messages accepted into the queue (250 sent)', ['listener']),
    receivedBytes: c('mailfleet_received_bytes_total', 'Bytes of accepted messages'),
    delivered: c('mailfleet_messages_delivered_total', 'Recipients delivered', ['route']),
    deliveredBytes: c('mailfleet_delivered_bytes_total', 'Bytes handed to destinations'),
    deferred: c('mailfleet_messages_deferred_total', 'Recipients deferred after a temporary failure', ['route']),
    bounced: c('mailfleet_messages_bounced_total', 'Recipients failed permanently or expired', ['reason']),
    dsnSent: c('mailfleet_dsn_generated_total', 'Delivery status notifications generated'),
    queueMessages: g('mailfleet_queue_messages', 'Messages in the queue'),
    queueOldest: g('mailfleet_queue_oldest_age_seconds', 'Age of the oldest queued message'),
    queueMemoryCopyBytes: g('mailfleet_queue_memory_copy_bytes', 'Bytes of new messages held in memory for their first delivery attempt (queue.memoryCopyBytes)'),
    deliveryDuration: new client.Histogram<'outcome'>({
      name: 'mailfleet_delivery_duration_seconds',
      help: 'Duration of one delivery attempt to one destination',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    intakeDuration: new client.Histogram({
      name: 'mailfleet_intake_commit_seconds',
      help: 'Time from end of DATA to the durable 250 reply',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    deliveryTls: c('mailfleet_delivery_tls_total',
      'TLS per delivery transaction, by destination (a destinations key with a tls policy, a smarthost name, else other), '
      + 'policy (require, opportunistic, mta-sts-enforce, mta-sts-testing, none) and result (verified, encrypted, opportunistic, failed, mx_mismatch, testing_failure)',
      ['destination', 'policy', 'result']),
    mtaStsLookups: c('mailfleet_mta_sts_lookups_total', 'MTA-STS policy lookups, by result (fetched, cached, none, error)', ['result']),
    configReloads: c('mailfleet_config_reloads_total', 'Config reload attempts, by result', ['result']),
    counter: c,
    gauge: g,
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
