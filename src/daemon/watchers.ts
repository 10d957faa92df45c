// Every watcher `ipvisor serve` runs. Other areas append theirs here with a one-line edit.
import type { DaemonWatcher } from '../core/watcher.js';

export async function loadWatchers(): Promise<DaemonWatcher[]> {
  const watchers: DaemonWatcher[] = [];
  watchers.push((await import('../agent/nft-monitor.js')).createNftMonitorWatcher());
  watchers.push((await import('../server/xapi/watcher.js')).createXapiWatcher());
  watchers.push((await import('../agent/guest/watcher.js')).createGuestPushWatcher());
  watchers.push((await import('../agent/libvirt/watcher.js')).createLibvirtWatcher());
  return watchers;
}
