// Thin runner and parser for `nft` (store-free; the dom0 binder bundles it). observe reads
// `nft -j`, apply feeds one transaction to `nft -f -`.
import type { NftElements, NftFamily } from '../../core/compile/nft-ruleset.js';
import { NFT_TABLE, emptyElements, ipv6Hex, setNames } from '../../core/compile/nft-ruleset.js';
import type { HostRunner } from './exec.js';

export interface ObservedNftTable {
  family: NftFamily;
  present: boolean;
  /** Chain name -> rule count. */
  chains: Record<string, number>;
  /** Set names present. */
  sets: string[];
}

export interface ObservedNft {
  tables: Record<NftFamily, ObservedNftTable>;
  elements: NftElements;
}

/** Runs one nft transaction from text. Nothing is applied when any line fails. */
export async function nftApply(runner: HostRunner, script: string): Promise<void> {
  if (!script.trim()) return;
  await runner.run(['nft', '-f', '-'], { input: script });
}

/** Names of the tables that exist, as "family name". (Slow with big sets: nft 1.0.6 loads them.) */
export async function nftListTables(runner: HostRunner): Promise<string[]> {
  const res = await runner.run(['nft', '-j', 'list', 'tables']);
  const doc = JSON.parse(res.stdout || '{"nftables":[]}') as { nftables: Array<Record<string, any>> };
  return doc.nftables.filter((o) => o.table).map((o) => `${o.table.family} ${o.table.name}`);
}

/**
 * Chain names of ipvisor's tables, by family ("list chains" loads no set elements: ~3 ms at
 * 20,000 VIFs, where "list tables" takes ~0.2 s). A family missing from the result has no table.
 */
export async function nftListOwnChains(runner: HostRunner): Promise<Partial<Record<NftFamily, string[]>>> {
  const res = await runner.run(['nft', '-j', 'list', 'chains']);
  const doc = JSON.parse(res.stdout || '{"nftables":[]}') as { nftables: Array<Record<string, any>> };
  const out: Partial<Record<NftFamily, string[]>> = {};
  for (const o of doc.nftables) {
    if (!o.chain || o.chain.table !== NFT_TABLE || (o.chain.family !== 'bridge' && o.chain.family !== 'inet')) continue;
    (out[o.chain.family as NftFamily] ??= []).push(o.chain.name);
  }
  return out;
}

type Json = any;

/** Canonical text of one element as nft -j prints it: the same text the compiler produces. */
export function elementText(e: Json): string {
  if (typeof e === 'string') {
    if (/^0x[0-9a-f]+$/i.test(e)) return ipv6Hex(BigInt(e));
    if (/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(e)) return e.toLowerCase();
    if (/^[0-9.]+$/.test(e) || e.includes(':')) return e;
    return `"${e}"`;
  }
  if (typeof e === 'number') return String(e);
  if (e && typeof e === 'object') {
    if ('elem' in e) return elementText(e.elem.val);
    if ('concat' in e) return (e.concat as Json[]).map(elementText).join(' . ');
    if ('prefix' in e) return `${e.prefix.addr}/${e.prefix.len}`;
    if ('range' in e) return `${elementText(e.range[0])}-${elementText(e.range[1])}`;
  }
  return JSON.stringify(e);
}

/** ifnames that look like addresses ("1", "a:b") would be mistaken above; quote by set type instead. */
function elementTextTyped(e: Json, types: string[]): string {
  if (e && typeof e === 'object' && 'concat' in e) {
    return (e.concat as Json[]).map((c, i) => (types[i] === 'ifname' ? `"${c}"` : elementText(c))).join(' . ');
  }
  if (types[0] === 'ifname' && typeof e === 'string') return `"${e}"`;
  if (e && typeof e === 'object' && 'elem' in e) return elementTextTyped(e.elem.val, types);
  return elementText(e);
}

export async function nftObserve(runner: HostRunner, families: NftFamily[] = ['bridge', 'inet']): Promise<ObservedNft> {
  const tables = {} as Record<NftFamily, ObservedNftTable>;
  const elements = emptyElements();
  const existing = await nftListOwnChains(runner);
  for (const family of families) {
    const t: ObservedNftTable = { family, present: false, chains: {}, sets: [] };
    tables[family] = t;
    if (!existing[family]) continue;
    const res = await runner.run(['nft', '-j', 'list', 'table', family, NFT_TABLE], { allowFail: true });
    if (res.code !== 0) continue;
    t.present = true;
    const doc = JSON.parse(res.stdout) as { nftables: Array<Record<string, Json>> };
    const els = elements[family] as Record<string, string[]>;
    const known = new Set(setNames(family));
    for (const o of doc.nftables) {
      if (o.chain) t.chains[o.chain.name] ??= 0;
      else if (o.rule) t.chains[o.rule.chain] = (t.chains[o.rule.chain] ?? 0) + 1;
      else if (o.set) {
        t.sets.push(o.set.name);
        if (!known.has(o.set.name)) continue;
        const type = o.set.type;
        const types = (Array.isArray(type) ? type : [type]).map((t) => (typeof t === 'string' ? t : ''));
        els[o.set.name] = ((o.set.elem ?? []) as Json[]).map((e) => elementTextTyped(e, types));
      }
    }
  }
  return { tables, elements };
}
