// Every watcher `ipvisor serve` runs. Other areas append theirs here with a one-line edit.
import type { DaemonWatcher } from './watcher.js';

export async function loadWatchers(): Promise<DaemonWatcher[]> {
  const watchers: DaemonWatcher[] = [];
  watchers.push((await import('./nft-monitor.js')).createNftMonitorWatcher());
  watchers.push((await import('../drivers/xapi/watcher.js')).createXapiWatcher());
  watchers.push((await import('../guest/watcher.js')).createGuestPushWatcher());
  watchers.push((await import('../drivers/libvirt/watcher.js')).createLibvirtWatcher());
  return watchers;
}
