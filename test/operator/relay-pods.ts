// Playing the kubelet for relay pods on the test control plane, whose pods (kwok's) run no
// containers: the test runs a relay process per pod and hands it what a kubelet would — the
// pod's annotations in its downward-API file — and asks it what the operator asks (/status).
import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import type { Cluster } from '../cluster/harness.ts';
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
