// What the node tier must leave as found on the machine: a snapshot before, compared after.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { kubepodsCgroups, WATCHED_SYSCTLS } from './node.ts';

const sh = (cmd: string, args: string[]) => {
  try { return execFileSync(cmd, args, { encoding: 'utf8', env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` }, stdio: ['ignore', 'pipe', 'ignore'] }); } catch { return '(unavailable)'; }
};

export interface MachineState {
  sysctls: Record<string, string>;
  /** iptables-save without counters and comments, v4 and v6. */
  iptables: string;
  links: string[];
  mounts: string[];
  netns: string;
  kubepods: string[];
}

export function machineState(): MachineState {
  const sysctls: Record<string, string> = {};
  for (const k of WATCHED_SYSCTLS) {
    try { sysctls[k] = fs.readFileSync(`/proc/sys/${k}`, 'utf8').trim(); } catch { /* not on this kernel */ }
  }
  const rules = (tool: string) => sh(tool, []).split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/, '')).join('\n');
  return {
    sysctls,
    iptables: `${rules('iptables-save')}\n${rules('ip6tables-save')}`,
    // Other work on the machine mounts and unmounts (podman's overlays): only what a node makes counts.
    links: sh('ip', ['-o', 'link', 'show']).split('\n').map((l) => l.split(':')[1]?.trim() ?? '').filter((l) => /^(veth|mfnode|cni|kube)/.test(l)).sort(),
    mounts: fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '')
      .filter((m) => /mailfleet-node|kubelet|containerd|\/netns|\/proc\/sys\/(kernel|vm)/.test(m)).sort(),
    netns: sh('ip', ['netns', 'list']),
    kubepods: kubepodsCgroups(),
  };
}
