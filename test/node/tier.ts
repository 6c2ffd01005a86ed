// Is the node tier runnable here? Root, the image tier's tools, the node's tools and CNI
// plugins, the control plane and a kubelet from build.sh. Skips loudly on a person's machine;
// with CI=true a missing piece is an error (a CI that silently skipped a tier is a lie).
import fs from 'node:fs';
import path from 'node:path';
import { cacheBinDir, clusterBinariesOrSkip, pinnedVersions, type Binaries } from '../cluster/harness.ts';
import { imageTierAvailable } from '../image/podman.ts';
import { inCI, which } from '../support/tools.ts';
import { CNI_PLUGINS, NODE_TOOLS } from './node.ts';

export interface NodeTier { binaries: Binaries; kubelet: string; kubeProxy: string }

function skip(msg: string): undefined {
  if (inCI) throw new Error(`[node] ${msg}; CI=true forbids skipping a tier`);
  console.warn(`\n*** SKIPPING TIER node: ${msg} ***\n`);
  return undefined;
}

/** kubelet or kube-proxy as build.sh made it (or MAILFLEET_KUBELET / MAILFLEET_KUBE_PROXY), with the pinned version's stamp. */
function nodeBinary(name: 'kubelet' | 'kube-proxy'): string | undefined {
  const variable = `MAILFLEET_${name.toUpperCase().replace(/-/g, '_')}`;
  const given = process.env[variable];
  if (given) return fs.existsSync(given) ? given : skip(`${variable}=${given} does not exist`);
  const bin = path.join(cacheBinDir(), name);
  let stamp = '';
  try { stamp = fs.readFileSync(path.join(cacheBinDir(), `.${name}.version`), 'utf8').trim(); } catch { /* none */ }
  if (fs.existsSync(bin) && stamp === pinnedVersions().K8S_VERSION) return bin;
  return skip(`no ${name} ${pinnedVersions().K8S_VERSION} in ${cacheBinDir()}: run npm run cluster:build`);
}

export function nodeTier(): NodeTier | undefined {
  if (!imageTierAvailable('node')) return undefined;
  // ip, iptables and mount live in /usr/sbin or /sbin, which a non-login PATH may lack
  const missingTools = NODE_TOOLS.filter((t) => !which(t) && !['/usr/sbin', '/sbin'].some((d) => fs.existsSync(path.join(d, t))));
  if (missingTools.length) return skip(`missing system tools: ${missingTools.join(', ')} (install them with .ci/install-deps)`);
  const missing = CNI_PLUGINS.filter((p) => !fs.existsSync(p));
  if (missing.length) return skip(`missing CNI plugins ${missing.join(', ')} (containernetworking-plugins; .ci/install-deps)`);
  if (!fs.existsSync('/bin/busybox')) return skip('missing /bin/busybox (busybox-static; .ci/install-deps), the pause image');
  const binaries = clusterBinariesOrSkip('node');
  if (!binaries) return undefined;
  const kubelet = nodeBinary('kubelet');
  const kubeProxy = nodeBinary('kube-proxy');
  return kubelet && kubeProxy ? { binaries, kubelet, kubeProxy } : undefined;
}
