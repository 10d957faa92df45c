// The reference corpus of real network_data.json documents (each with its .macs NIC-name file).
import { existsSync, readdirSync, readFileSync } from 'node:fs';

export const CORPUS_DIR = process.env.IPVISOR_GUEST_CORPUS ?? '/work/shared/reference/guest/netdata';
const LOCAL = new URL('./corpus/', import.meta.url).pathname;

export interface CorpusDoc {
  name: string;
  doc: unknown;
  /** MAC -> NIC name, from the .macs file. */
  nics: Record<string, string>;
}

/** Prefers the copy committed under test/guest/corpus (CI has no /work/shared). */
export function corpusDir(): string {
  return existsSync(LOCAL) ? LOCAL : CORPUS_DIR;
}

export function loadCorpus(): CorpusDoc[] {
  const dir = corpusDir();
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const macsFile = `${dir}/${f.replace(/\.json$/, '.macs')}`;
      const nics: Record<string, string> = {};
      if (existsSync(macsFile)) {
        for (const line of readFileSync(macsFile, 'utf8').split('\n')) {
          const [name, mac] = line.trim().split(',');
          if (name && mac) nics[mac] = name;
        }
      }
      return { name: f.replace(/\.json$/, ''), doc: JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')), nics };
    });
}

/** Documents the parser must reject, and the element their error must name (NOTES.md). */
export const REJECTED: Record<string, RegExp> = {
  '16-NEG-cloudinit-invalid-ipv6-route-netmask': /^networks\[0\]\.routes\[0\]\.netmask: 'ff:ff:ff:ff::' is not a contiguous mask$/,
  // (24, Ironic's sample, puts static IPs on a bond member: accepted, they go on the bond.)
};
