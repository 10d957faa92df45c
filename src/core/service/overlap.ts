// Address space is global: two networks' subnets must not overlap, and an address routed to a VM
// (a routed pool) must not lie in any network's subnet nor cover a default route. Otherwise an apply
// routes one network's addresses into another (cutting its VMs off) and two pools hand out the
// same address. Checked on every write that changes subnets or pool entries.
import { IpvisorError } from '../model/errors.js';
import type { Family, Network, Pool } from '../model/types.js';
import { BITS, cidrLast, parseCidr } from '../ipam/addr.js';
import { type Interval, overlaps } from '../ipam/intervals.js';
import { entryIntervals } from '../ipam/pool-space.js';
import type { StoreTx } from '../store/store.js';

function subnetInterval(cidr: string): { family: Family; iv: Interval } {
  const c = parseCidr(cidr);
  return { family: c.family, iv: { start: c.network, end: cidrLast(c) } };
}

/** A network's subnets against every other network's subnets and every routed pool. */
export async function checkNetworkSubnetsFree(tx: StoreTx, n: Network): Promise<void> {
  if (n.subnets.length === 0) return;
  const networks = await tx.listNetworks();
  const names = new Map(networks.map((o) => [o.uuid, o.name]));
  for (const s of n.subnets) {
    const mine = subnetInterval(s.cidr);
    for (const o of networks) {
      if (o.uuid === n.uuid) continue;
      for (const t of o.subnets) {
        const theirs = subnetInterval(t.cidr);
        if (theirs.family === mine.family && overlaps(mine.iv, theirs.iv)) {
          throw new IpvisorError('OVERLAP', `subnet: ${s.cidr} overlaps subnet ${t.cidr} of network '${o.name}'`, { field: 'subnet', details: { network: o.name, subnet: t.cidr } });
        }
      }
    }
    for (const p of await tx.listPools()) {
      if (p.purpose !== 'routed' || p.family !== mine.family) continue;
      const hit = p.entries.find((_, i) => overlaps(mine.iv, entryIntervals(p)[i]));
      if (hit) {
        throw new IpvisorError('OVERLAP', `subnet: ${s.cidr} overlaps routed pool '${p.name}' (${hit.text}) of network '${names.get(p.networkUuid) ?? p.networkUuid}'`, { field: 'subnet', details: { pool: p.name, entry: hit.text } });
      }
    }
  }
}

/** A pool's entries: a routed pool against every network's subnets and the default route; every
 * pool against every other pool of its family, whatever its network. */
export async function checkPoolSpaceFree(tx: StoreTx, pool: Pool): Promise<void> {
  const mine = entryIntervals(pool);
  const fieldOf = (text: string) => (text.includes('/') ? 'cidr' : 'range');
  const networks = await tx.listNetworks();
  const names = new Map(networks.map((o) => [o.uuid, o.name]));
  if (pool.purpose === 'routed') {
    const all: Interval = { start: 0n, end: (1n << BigInt(BITS[pool.family])) - 1n };
    mine.forEach((iv, i) => {
      if (iv.start === all.start && iv.end === all.end) {
        const text = pool.entries[i].text;
        throw new IpvisorError('OVERLAP', `${fieldOf(text)}: ${text} covers the default route (${pool.family === 4 ? '0.0.0.0/0' : '::/0'}); a routed pool holds addresses routed to VMs, never all of them`, { field: fieldOf(text) });
      }
    });
    for (const o of networks) {
      for (const s of o.subnets) {
        const theirs = subnetInterval(s.cidr);
        if (theirs.family !== pool.family) continue;
        const i = mine.findIndex((iv) => overlaps(iv, theirs.iv));
        if (i >= 0) {
          const text = pool.entries[i].text;
          throw new IpvisorError('OVERLAP', `${fieldOf(text)}: ${text} overlaps subnet ${s.cidr} of network '${o.name}'; routed addresses must lie outside every network's subnets`, { field: fieldOf(text), details: { network: o.name, subnet: s.cidr } });
        }
      }
    }
  }
  for (const other of await tx.listPools()) {
    if (other.uuid === pool.uuid || other.family !== pool.family) continue;
    const theirs = entryIntervals(other);
    for (const [i, a] of mine.entries()) {
      if (!theirs.some((b) => overlaps(a, b))) continue;
      // name the option the overlapping entry came from (--cidr/--add-cidr or --range/--add-range)
      const text = pool.entries[i].text;
      const where = other.networkUuid === pool.networkUuid ? 'of the same network' : `of network '${names.get(other.networkUuid) ?? other.networkUuid}'`;
      throw new IpvisorError('OVERLAP', `${fieldOf(text)}: ${text} overlaps pool '${other.name}' (${other.entries.map((e) => e.text).join(', ')}) ${where}`, { field: fieldOf(text), details: { pool: other.name } });
    }
  }
}
