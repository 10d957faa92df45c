// One host's desired state read from the store: its slice of one snapshot and its settings (default
// route, narrowed prefixes; a host's own setting before the store-wide one). The control plane sends
// it to agents; a one-box host applier and `doctor` read it directly.
import type { HostDesired } from '../compile/host-desired.js';
import { DOC_HOST_SETTING, hostSettingKey, hostSnapshot } from '../compile/host-desired.js';
import type { HostGatewaySetting, HostNarrowSetting, HostSettings } from '../compile/host-plan.js';
import { loadSnapshot } from '../model/snapshot.js';
import type { Store } from '../store/store.js';

export async function loadHostSettings(store: Store, host: string): Promise<HostSettings> {
  const gw = (await store.getDoc<HostGatewaySetting | null>(DOC_HOST_SETTING, hostSettingKey('gateway', host))) ?? (await store.getDoc<HostGatewaySetting | null>(DOC_HOST_SETTING, 'gateway'));
  const narrow = (await store.getDoc<HostNarrowSetting[]>(DOC_HOST_SETTING, hostSettingKey('narrow', host))) ?? (await store.getDoc<HostNarrowSetting[]>(DOC_HOST_SETTING, 'narrow'));
  return { gateway: gw?.value ?? null, narrow: narrow?.value ?? [] };
}

export async function loadHostDesired(store: Store, host: string): Promise<HostDesired> {
  const snapshot = await loadSnapshot(store);
  return { host, snapshot: hostSnapshot(snapshot, host), settings: await loadHostSettings(store, host) };
}
