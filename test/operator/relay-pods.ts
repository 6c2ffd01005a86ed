// Playing the kubelet for relay pods on the test control plane, whose pods (kwok's) run no
// containers: the test runs a relay process per pod and hands it what a kubelet would — the
// pod's annotations in its downward-API file — and asks it what the operator asks (/status).
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import YAML from 'yaml';
import type { Cluster } from '../cluster/harness.ts';
import { loopbackSinksConfig } from '../support/outbound.ts';
import type { Sink } from '../support/sink.ts';
import { tryGetJson } from './support.ts';

export interface RelayStatus { draining: boolean; queued: number; sessions?: number }

/** A relay's /status, undefined while it does not answer. */
export async function relayStatus(httpPort: number): Promise<RelayStatus | undefined> {
  try {
    return await (await fetch(`http://127.0.0.1:${httpPort}/status`)).json() as RelayStatus;
  } catch {
    return undefined;
  }
}

/** The downward-API file as the kubelet writes it: one key="value" per annotation. */
export function annotationsFileText(annotations: Record<string, string>): string {
  return Object.keys(annotations).sort().map((k) => `${k}=${JSON.stringify(annotations[k])}`).join('\n');
}

/** One plain SMTP message to a relay on loopback. */
export async function sendTo(smtpPort: number, subject: string): Promise<void> {
  const client = nodemailer.createTransport({ host: '127.0.0.1', port: smtpPort, ignoreTLS: true });
  try {
    await client.sendMail({ envelope: { from: 'app@example.test', to: ['rcpt@dest.test'] }, raw: `From: app@example.test\r\nTo: rcpt@dest.test\r\nSubject: ${subject}\r\n\r\n${subject}\r\n` });
  } finally {
    client.close();
  }
}

export const subjects = (sink: Sink) => sink.messages.map((m) => /^Subject: (.*)$/m.exec(m.data!.toString())?.[1] ?? '?');

/**
 * The kubelet's part for the annotations: every 300 ms, each pod's annotations into its
 * relay's file (swapped in whole, as the kubelet does). `pods()` names them as they are now.
 * Returns the function that stops the loop (and waits for it).
 */
export function kubeletAnnotations(c: Cluster, namespace: string, pods: () => Array<{ pod: string; dir: string }>): () => Promise<void> {
  const written = new Map<string, string>();
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const { pod, dir } of pods()) {
        const live = await tryGetJson(c, ['get', 'pod', pod, '-n', namespace]);
        const text = annotationsFileText(live?.metadata?.annotations ?? {});
        if (live && text !== written.get(pod)) {
          fs.writeFileSync(path.join(dir, 'annotations.tmp'), text);
          fs.renameSync(path.join(dir, 'annotations.tmp'), path.join(dir, 'annotations'));
          written.set(pod, text);
        }
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  })();
  return async () => { running = false; await loop; };
}

export interface PodOnLoopback { dir: string; smtpPort: number; httpPort: number; handoffPort: number }

/**
 * What the kubelet would mount for a pod, moved onto loopback: writes the fleet token, an
 * empty annotations file and the rendered config (from the relay's ConfigMap) with the pod's
 * own ports, data dir and files, delivering to `sink`; returns the config file. `handoff`
 * overrides the hand-off block (the peers, resolved to loopback ports).
 */
export function writeLoopbackPodConfig(rendered: any, token: string, pod: PodOnLoopback, sink: { host: string; port: number }, handoff: Record<string, unknown>): string {
  const { dir } = pod;
  fs.writeFileSync(path.join(dir, 'fleet.token'), token);
  fs.writeFileSync(path.join(dir, 'annotations'), '');
  const configFile = path.join(dir, 'relay.yaml');
  fs.writeFileSync(configFile, YAML.stringify({
    ...rendered,
    dataDir: path.join(dir, 'data'),
    listeners: [{ name: 'plain', host: '127.0.0.1', port: pod.smtpPort, mode: 'plain' }],
    trustedNetworks: [{ cidrs: ['127.0.0.0/8'], domains: ['example.test'] }],
    domains: [{ domain: 'example.test' }],
    recipientChecks: { dns: false },
    queue: { ...rendered.queue, retrySchedule: ['1s'] },
    delivery: { mode: 'smarthost', smarthosts: [{ host: sink.host, port: sink.port, tls: 'none', requireTls: false }] },
    outbound: loopbackSinksConfig,
    http: { host: '127.0.0.1', port: pod.httpPort },
    handoff: { ...rendered.handoff, host: '127.0.0.1', port: pod.handoffPort, tokenFile: path.join(dir, 'fleet.token'), annotationsFile: path.join(dir, 'annotations'), ...handoff },
  }));
  return configFile;
}
